"""Fairness of what was actually served, per demographic group, one window (a day) at a time.

A version's report (``fairness.services``) measures a model on held-out ratings. This one
measures what people got, from the provenance rows and the stream, whatever served them
(stable, canary, cold start, a degraded answer, exploration). For gender, age bracket and
occupation and the intersections gender x age and gender x occupation:

- **follow rate**: the share of the group's answers followed by a watch of one of their movies
  within ``FAIRNESS_FOLLOW_HOURS`` (the definition the canary analysis uses), with a bootstrap
  interval that resamples viewers, not answers (one viewer's answers are not independent), and
  its disparity between the groups large enough to compare;
- **how the group was served**: its share of the answers against its share of the viewers
  served and of all viewers, cold-start and explored shares;
- **diversity**: the genre entropy of what the group was shown against what it started
  watching in the window, the genre diversity within a list, the popularity of what it was
  shown;
- **exposure** over the catalogue: coverage, Gini, movies never shown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from catalog.demographics import DIMENSIONS
from catalog.models import Movie, Watch
from core.db import integer_columns
from core.notifications import notification_send
from core.replica import replica_reads
from fairness import metrics
from fairness.models import ServedFairnessReport
from fairness.services import FairnessError, GroupTable, group_table_load
from provenance.models import Recommendation
from provenance.selectors import ServedAnswers, answers_followed, served_answers
from recommender.models import ModelVersion

logger = logging.getLogger(__name__)

DIVERSITY_SAMPLE = 200_000  # answers whose list diversity is computed (a seeded sample past it)
CATCH_UP_DAYS = 7  # the daily task fills in missing days this far back


@dataclass(frozen=True)
class _Catalogue:
    """The catalogue as arrays indexed by movie pk."""

    known: np.ndarray  # a movie has this pk
    slugs: np.ndarray
    genres: sp.csr_matrix  # pk x genre, 0/1
    popularity: np.ndarray  # share of viewers who watched it


@replica_reads()
def served_report_create(
    *,
    start: datetime,
    end: datetime,
    bootstrap: int | None = None,
    seed: int = 0,
    min_group: int | None = None,
    follow_hours: float | None = None,
) -> ServedFairnessReport:
    """Compute the report on the answers served in [start, end), store it (replacing one of the
    same window), and notify people of disparities past the bounds."""
    started = time.perf_counter()
    if end <= start:
        raise FairnessError(f"the window must end after it starts ({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M})")
    bootstrap = settings.FAIRNESS_BOOTSTRAP if bootstrap is None else bootstrap
    min_group = settings.FAIRNESS_MIN_GROUP_VIEWERS if min_group is None else min_group
    follow_hours = settings.FAIRNESS_FOLLOW_HOURS if follow_hours is None else follow_hours
    answers = served_answers(start=start, end=end)
    if not len(answers):
        raise FairnessError(f"no answer was served from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}")
    followed = answers_followed(answers, within=timedelta(hours=follow_hours))
    catalogue = _catalogue()
    groups = group_table_load()
    watched = integer_columns(
        Watch.objects.filter(first_seen_at__gte=start, first_seen_at__lt=end).values_list("viewer_id", "movie_id")
    )
    served = _Served.of(answers, followed, catalogue, _list_diversity(answers, catalogue, seed=seed), groups, watched)
    figures: dict[str, Any] = {
        "answers": len(answers),
        "viewers": len(np.unique(answers.viewers)),
        "followed": round(float(followed.mean()), 5),
        "versions": _versions(answers),
        "strategies": _counts(answers.strategies),
        "degraded": int(answers.degraded.sum()),
        "exposure": _exposure(answers, catalogue),
    }
    sections = {
        dimension: _dimension(dimension, served, groups, bootstrap=bootstrap, seed=seed, min_group=min_group)
        for dimension in DIMENSIONS
    }
    _disparities(figures, sections)
    flags = _flags(figures)
    report, _ = ServedFairnessReport.objects.update_or_create(
        start=start,
        end=end,
        defaults={
            "computed_at": timezone.now(),
            "follow_hours": follow_hours,
            "bootstrap": bootstrap,
            "seed": seed,
            "min_group_viewers": min_group,
            "answers": len(answers),
            "figures": figures,
            "flags": flags,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    if flags:
        notification_send(
            subject=f"fairness: what was served {start:%Y-%m-%d} has {len(flags)} disparities past the bounds",
            body="\n".join(flags),
        )
    logger.info("%s: %d answers, %d flags in %.1fs", report, len(answers), len(flags), report.seconds)
    return report


def served_reports_catch_up(*, now: datetime | None = None) -> list[ServedFairnessReport]:
    """The daily task: each whole day (UTC) of the last ``CATCH_UP_DAYS`` that had answers and
    has no report yet, once ``FAIRNESS_FOLLOW_HOURS`` of the next day has passed (so that its
    last answers had their time to be followed). A missed day is filled in on the next run."""
    now = now or timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    reports = []
    for back in range(CATCH_UP_DAYS, 0, -1):
        start = today - timedelta(days=back)
        end = start + timedelta(days=1)
        if end + timedelta(hours=settings.FAIRNESS_FOLLOW_HOURS) > now:
            continue
        if ServedFairnessReport.objects.filter(start=start, end=end).exists():
            continue
        if not Recommendation.objects.filter(served_at__gte=start, served_at__lt=end, status=200).exists():
            continue
        reports.append(served_report_create(start=start, end=end))
    return reports


def _catalogue() -> _Catalogue:
    rows = list(Movie.objects.values_list("id", "slug", "genres"))
    span = max((pk for pk, _, _ in rows), default=0) + 1
    known = np.zeros(span, dtype=bool)
    slugs = np.full(span, "", dtype=object)
    names = sorted({genre for _, _, genres in rows for genre in genres})
    column = {genre: index for index, genre in enumerate(names)}
    pairs = [(pk, column[genre]) for pk, _, genres in rows for genre in genres]
    for pk, slug, _ in rows:
        known[pk] = True
        slugs[pk] = slug
    watches = integer_columns(Watch.objects.order_by().values_list("movie_id").annotate(n=Count("id")))
    viewers = max(int(Watch.objects.values("viewer_id").distinct().count()), 1) if len(watches) else 1
    popularity = np.zeros(span)
    if len(watches):
        inside = watches[:, 0] < span
        popularity[watches[inside, 0]] = watches[inside, 1] / viewers
    return _Catalogue(
        known=known,
        slugs=slugs,
        genres=sp.csr_matrix(
            (np.ones(len(pairs), np.float32), ([pk for pk, _ in pairs], [g for _, g in pairs])),
            shape=(span, len(names)),
        ),
        popularity=popularity,
    )


def _versions(answers: ServedAnswers) -> list[dict[str, int | None]]:
    pks, counts = np.unique(answers.versions, return_counts=True)
    numbers = dict(ModelVersion.objects.filter(pk__in=pks.tolist()).values_list("pk", "version"))
    return [
        {"version": numbers.get(int(pk)), "answers": int(count)}
        for pk, count in sorted(zip(pks.tolist(), counts.tolist(), strict=True), key=lambda pair: -pair[1])
    ]


def _counts(values: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(values.astype(str), return_counts=True)
    return {str(name): int(count) for name, count in zip(names, counts, strict=True)}


def _exposure(answers: ServedAnswers, catalogue: _Catalogue) -> dict[str, Any]:
    shown = answers.items[answers.items >= 0]
    counts = np.bincount(shown, minlength=len(catalogue.known))[: len(catalogue.known)]
    known = catalogue.known
    return metrics.exposure_summary(counts[known], catalogue.popularity[known], catalogue.slugs[known].tolist())


def _list_diversity(answers: ServedAnswers, catalogue: _Catalogue, *, seed: int) -> np.ndarray:
    """Each answer's intra-list genre diversity (NaN where not computed): of every answer up to
    ``DIVERSITY_SAMPLE``, of a seeded sample past it (its cost grows with the slots squared)."""
    result = np.full(len(answers), np.nan)
    rows = np.arange(len(answers))
    if len(rows) > DIVERSITY_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(rows, DIVERSITY_SAMPLE, replace=False))
    result[rows] = metrics.list_diversities(answers.items[rows], catalogue.genres)
    return result


@dataclass(frozen=True)
class _Served:
    """What every dimension reads, worked out once: per answer, per distinct viewer and per
    combination of gender, age and occupation (``GroupTable``'s rows: a few hundred), so that a
    dimension's groups are sums over combinations rather than another pass over the answers."""

    answers: ServedAnswers
    viewers: np.ndarray  # the distinct viewers served
    viewer_of: np.ndarray  # per answer: its viewer's row in ``viewers``
    combinations: np.ndarray  # per distinct viewer: its row in the group table's labels
    followed: np.ndarray  # per distinct viewer: answers followed
    answered: np.ndarray  # per distinct viewer: answers
    places: np.ndarray  # per answer: movies listed
    explored: np.ndarray  # per answer: places given by exploration
    cold: np.ndarray  # per answer: a cold-start answer
    popularity: np.ndarray  # per answer: mean popularity of its movies (NaN for none)
    diversity: np.ndarray  # per answer: list diversity (NaN where not computed)
    shown: sp.csr_matrix  # combinations x genres: genres of the movies listed to them
    watched: sp.csr_matrix  # combinations x genres: genres of the movies they started watching
    population: np.ndarray  # per combination: known viewers

    @classmethod
    def of(
        cls,
        answers: ServedAnswers,
        followed: np.ndarray,
        catalogue: _Catalogue,
        diversity: np.ndarray,
        groups: GroupTable,
        watched: np.ndarray,
    ) -> _Served:
        viewers, viewer_of = np.unique(answers.viewers, return_inverse=True)
        combinations = groups.combinations_of(viewers)
        count = len(next(iter(groups.labels.values())))
        valid = answers.items >= 0
        places = valid.sum(axis=1)
        shown = np.where(valid, catalogue.popularity[np.maximum(answers.items, 0)], 0.0).sum(axis=1)
        watched_inside = watched[:, 1] < len(catalogue.known)
        return cls(
            answers=answers,
            viewers=viewers,
            viewer_of=viewer_of,
            combinations=combinations,
            followed=np.bincount(viewer_of, weights=followed, minlength=len(viewers)),
            answered=np.bincount(viewer_of, minlength=len(viewers)).astype(np.float64),
            places=places,
            explored=(answers.explored & valid).sum(axis=1),
            cold=answers.strategies == Recommendation.Strategy.COLD_START,
            popularity=np.where(places > 0, shown / np.maximum(places, 1), np.nan),
            diversity=diversity,
            shown=_genre_counts(np.repeat(combinations[viewer_of], places), answers.items[valid], count, catalogue),
            watched=_genre_counts(
                groups.combinations_of(watched[watched_inside, 0]), watched[watched_inside, 1], count, catalogue
            ),
            population=np.bincount(groups.codes, minlength=count),
        )


def _dimension(
    dimension: str,
    served: _Served,
    groups: GroupTable,
    *,
    bootstrap: int,
    seed: int,
    min_group: int,
) -> tuple[dict[str, Any], metrics.GroupedMetric]:
    # A viewer is in one group: groups are found per combination, then spread to viewers and answers.
    every_name, name_of = np.unique(groups.labels[dimension].astype(str), return_inverse=True)
    used = np.unique(name_of[served.combinations])  # the groups of the viewers served
    position = np.full(len(every_name), -1, dtype=np.int64)
    position[used] = np.arange(len(used))
    names = every_name[used]
    count = len(names)
    of_combination = position[name_of]  # -1: a group none of the viewers served is in
    viewer_codes = of_combination[served.combinations]
    codes = viewer_codes[served.viewer_of]
    answered = np.bincount(codes, minlength=count)
    served_viewers = np.bincount(viewer_codes, minlength=count)
    in_group = of_combination >= 0
    # groups x combinations, to sum what was counted per combination
    members = sp.csr_matrix(
        (np.ones(int(in_group.sum())), (of_combination[in_group], np.flatnonzero(in_group))),
        shape=(count, len(of_combination)),
    )
    shown_genres = np.asarray((members @ served.shown).todense())
    watched_genres = np.asarray((members @ served.watched).todense())
    population = np.bincount(name_of, weights=served.population, minlength=len(every_name))[used]
    known_viewers = max(len(groups.ids), 1)
    # Per viewer: answers followed (truth) and answers (estimate); a group's ratio of the sums is
    # its share of answers followed, and resampling these rows resamples viewers.
    follow = metrics.grouped_metric(
        metrics.RATIO_OF_SUMS,
        served.followed,
        served.answered,
        names[viewer_codes],
        n_boot=bootstrap,
        seed=seed,
    )
    slots = np.bincount(codes, weights=served.places, minlength=count)
    explored = np.bincount(codes, weights=served.explored, minlength=count)
    cold = np.bincount(codes, weights=served.cold, minlength=count)
    popularity = _group_means(codes, served.popularity, count)
    diversity = _group_means(codes, served.diversity, count)
    rows: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names.tolist()):
        figure = follow.groups.get(name, metrics.GroupFigure(None, None, None))
        rows[name] = {
            "viewers": int(served_viewers[index]),
            "answers": int(answered[index]),
            "small": bool(served_viewers[index] < min_group),
            "follow_rate": figure.rounded(),
            "cold_start_share": round(float(cold[index] / answered[index]), 5),
            "explored_share": round(float(explored[index] / slots[index]), 5) if slots[index] else 0.0,
            "answer_share": round(float(answered[index] / len(served.answers)), 5),
            "served_viewer_share": round(float(served_viewers[index] / max(len(served.viewers), 1)), 5),
            "population_share": round(float(population[index]) / known_viewers, 5),
            "recommended_entropy": round(metrics.entropy(shown_genres[index]), 4),
            "watched_entropy": (
                round(metrics.entropy(watched_genres[index]), 4) if watched_genres[index].any() else None
            ),
            "intra_list_diversity": _round(diversity[index], 4),
            "popularity": _round(popularity[index], 5),
        }
    return {"groups": rows, "overall_follow_rate": follow.overall.rounded()}, follow


def _disparities(figures: dict[str, Any], sections: dict[str, tuple[dict[str, Any], metrics.GroupedMetric]]) -> None:
    """Each dimension's disparity of the follow rate, its intervals corrected for every pair of
    groups the report compares (``fairness.metrics.corrected_confidence``)."""
    compared = {
        dimension: {name: row["follow_rate"][0] for name, row in section["groups"].items() if not row["small"]}
        for dimension, (section, _) in sections.items()
    }
    comparisons = sum(metrics.pairs(len(groups)) for groups in compared.values())
    confidence = metrics.corrected_confidence(settings.FAIRNESS_ALPHA, comparisons)
    figures.update(comparisons=comparisons, alpha=settings.FAIRNESS_ALPHA, confidence=round(confidence, 6))
    figures["dimensions"] = {}
    for dimension, (section, follow) in sections.items():
        gap = metrics.disparity(
            compared[dimension], higher_is_better=True, resamples=follow.resamples, confidence=confidence
        )
        figures["dimensions"][dimension] = {**section, "disparity": {"follow_rate": gap.__dict__}}


def _group_means(codes: np.ndarray, values: np.ndarray, count: int) -> list[float | None]:
    """Each group's mean of the finite ``values`` (None for a group without one)."""
    finite = np.isfinite(values)
    sums = np.bincount(codes[finite], weights=values[finite], minlength=count)
    sizes = np.bincount(codes[finite], minlength=count)
    return [float(total / size) if size else None for total, size in zip(sums, sizes, strict=True)]


def _genre_counts(codes: np.ndarray, movies: np.ndarray, rows: int, catalogue: _Catalogue) -> sp.csr_matrix:
    """rows x genres: how many times each row (a combination) met each genre among ``movies``
    (counted per row and movie first: a few hundred rows by the catalogue, whatever the number
    of answers)."""
    span = catalogue.genres.shape[0]
    per_movie = np.bincount(codes * span + movies, minlength=rows * span).reshape(rows, span)
    return sp.csr_matrix(per_movie.astype(np.float32)) @ catalogue.genres


def _round(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else round(value, digits)


def _flags(figures: dict[str, Any]) -> list[str]:
    """A flag where the follow rate's ratio lies wholly below the bound (beyond its interval)."""
    flags = []
    bound = settings.FAIRNESS_MIN_FOLLOW_RATIO
    for dimension, section in figures["dimensions"].items():
        gap = metrics.Disparity(**section["disparity"]["follow_rate"])
        if gap.ratio_below(bound):
            flags.append(
                f"{dimension}: the lists served to {gap.worst} were followed {gap.ratio:.0%} as often as "
                f"{gap.best}'s ({gap.interval_text('ratio')}; bound {bound:.0%})"
            )
    return flags
