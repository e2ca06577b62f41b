"""Writes to the recommender's data: importing MovieLens datasets; training, gating and
registering model versions."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_q.tasks import async_task

from provenance.dvc import DvcError, dvc_track
from provenance.models import DataSnapshot
from provenance.services import SnapshotError, snapshot_create, snapshot_load
from recommender import movielens
from recommender.artifacts import ArtifactError, artifact_build, artifact_write
from recommender.learning import SVD_DEFAULTS, Interaction, train_and_evaluate
from recommender.models import ModelStatusChange, ModelVersion, Movie, Rating, Viewer
from recsite.db import bulk_upsert
from recsite.notifications import notification_send

_RATINGS_BATCH = 5000


@dataclass
class MovieLensImport:
    layout: str
    movies: int = 0
    viewers: int = 0
    ratings: int = 0
    ratings_new: int = 0

    def summary(self) -> str:
        return (
            f"imported MovieLens ({self.layout}): {self.movies:,} movies, {self.viewers:,} viewers, "
            f"{self.ratings:,} ratings read, {self.ratings_new:,} new"
        )


def movielens_import(*, path: Path, progress: Callable[[int], None] | None = None) -> MovieLensImport:
    """Import a MovieLens directory (ml-100k or ml-1m layout); idempotent.

    Movies keep their MovieLens id as ``source_id`` and get the platform's slug; viewers keep
    their MovieLens id. Ratings are optional (the simulator writes only movies and viewers).
    ``progress`` is called with the number of rating lines read since the last call.
    """
    layout = movielens.detect(path)
    result = MovieLensImport(layout=layout.name)
    with transaction.atomic():
        movie_ids = _import_movies(path, layout)
        result.movies = len(set(movie_ids.values()))
        viewers = [
            Viewer(id=v.id, age=v.age, gender=v.gender, occupation=v.occupation)
            for v in movielens.read_viewers(path, layout)
        ]
        bulk_upsert(Viewer, viewers, unique_fields=["id"], update_fields=["age", "gender", "occupation"])
        result.viewers = len(viewers)
    for batch in _rating_batches(path, layout, movie_ids):
        before = Rating.objects.count()
        with transaction.atomic():
            Viewer.objects.bulk_create(
                [Viewer(id=viewer_id) for viewer_id in {r.viewer_id for r in batch}], ignore_conflicts=True
            )
            Rating.objects.bulk_create(batch, ignore_conflicts=True, batch_size=2000)
        result.ratings += len(batch)
        result.ratings_new += Rating.objects.count() - before
        if progress:
            progress(len(batch))
    return result


def _import_movies(directory: Path, layout: movielens.Layout) -> dict[int, int]:
    """Create or update the movies; returns MovieLens id -> our movie id."""
    runtimes = movielens.read_runtimes(directory)
    movies: dict[str, Movie] = {}
    slug_of_source: dict[int, str] = {}
    for row in movielens.read_movies(directory, layout):
        # MovieLens lists a few titles twice under two ids; both ids map to one movie.
        movies.setdefault(
            row.slug,
            Movie(
                slug=row.slug,
                title=row.title[:300],
                year=row.year,
                genres=row.genres,
                source_id=row.source_id,
                runtime_minutes=runtimes.get(row.slug),
            ),
        )
        slug_of_source[row.source_id] = row.slug
    bulk_upsert(
        Movie,
        list(movies.values()),
        unique_fields=["slug"],
        update_fields=["title", "year", "genres", "source_id", "runtime_minutes"],
    )
    ids = dict(Movie.objects.filter(slug__in=movies.keys()).values_list("slug", "id"))
    return {source_id: ids[slug] for source_id, slug in slug_of_source.items()}


def _rating_batches(directory: Path, layout: movielens.Layout, movie_ids: dict[int, int]) -> Iterator[list[Rating]]:
    batch: list[Rating] = []
    for row in movielens.read_ratings(directory, layout):
        if row.movie_source_id not in movie_ids:
            raise movielens.MovieLensFormatError(
                directory / layout.ratings, row.line, f"movie id {row.movie_source_id} is not in the movie file"
            )
        batch.append(
            Rating(
                viewer_id=row.viewer_id,
                movie_id=movie_ids[row.movie_source_id],
                score=row.score,
                rated_at=datetime.fromtimestamp(row.timestamp, tz=UTC),
                source=Rating.Source.MOVIELENS,
            )
        )
        if len(batch) >= _RATINGS_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# --- Training, the gate and the registry ---------------------------------------------------


class TrainingError(Exception):
    """Training could not produce a model (bad snapshot, failed fit); the message says why."""


def model_train(
    *,
    rating_algorithm: str | None = None,
    ranker: str | None = None,
    snapshot: DataSnapshot | None = None,
    tune: bool = False,
    seed: int | None = None,
    actor: str = "",
    progress: Callable[[str], None] = lambda step: None,
) -> ModelVersion:
    """Snapshot (or take ``snapshot``), train, evaluate, gate and register one model version.

    1. Take a data snapshot; one that failed its quality check stops here (nothing trains on it).
    2. Register version N as ``training``, with the code revision and parameters.
    3. Train the rating model and the ranker on the snapshot's training split; measure them.
    4. Write the artifact, hash it, track it with DVC.
    5. Gate it: ``candidate`` or ``rejected``; the first version of an empty registry becomes
       ``stable`` directly (later ones are for the release process).
    6. Notify people of the outcome: passed with figures, rejected with reasons, failed with the error.
    """
    rating_algorithm = rating_algorithm or settings.TRAIN_RATING_ALGORITHM
    ranker = ranker or settings.TRAIN_RANKER
    seed = settings.TRAIN_SEED if seed is None else seed
    progress("snapshot")
    if snapshot is None:
        snapshot = snapshot_create()
    if not snapshot.is_usable:
        message = f"{snapshot} failed its quality check: {'; '.join(snapshot.failure_reasons)}"
        notification_send(subject="training skipped: data failed its quality check", body=message)
        raise TrainingError(message)

    version = _register(rating_algorithm=rating_algorithm, ranker=ranker, snapshot=snapshot, actor=actor)
    try:
        data = snapshot_load(snapshot)
        interactions = [
            Interaction(viewer=viewer, movie=movie, score=score)
            for viewer, movie, minutes, _, score in data.interactions
            if score is not None or minutes >= settings.WATCH_MIN_MINUTES
        ]
        if not interactions:
            raise TrainingError(f"{snapshot} has no interactions to learn from")
        models = train_and_evaluate(
            interactions=interactions,
            demographics=data.viewers,
            catalogue=sorted(data.movies),
            rating_algorithm=rating_algorithm,
            ranker=ranker,
            seed=seed,
            tune=tune,
            progress=progress,
        )
        progress("artifact")
        meta = {"version": version.version, "ranker": ranker, "rating_algorithm": rating_algorithm}
        arrays = artifact_build(models, demographics=data.viewers, meta=meta)
        path = Path(settings.MODEL_DIR) / f"v{version.version:04d}-{snapshot.content_hash[:12]}.npz"
        version.artifact_sha256, version.artifact_bytes = artifact_write(path, arrays)
        version.artifact_path = path.name
        record = dvc_track(path=path, repo=Path(settings.MODEL_DIR))
        version.dvc_md5, version.dvc_file = record.md5, record.dvc_file
    except Exception as error:
        version.status = ModelVersion.Status.FAILED
        version.error = f"{type(error).__name__}: {error}"
        version.training_finished_at = timezone.now()
        version.save()
        _status_change(version, from_status=ModelVersion.Status.TRAINING, reason=version.error, actor=actor)
        notification_send(subject=f"training of v{version.version} failed", body=version.error)
        if isinstance(error, TrainingError | ArtifactError | DvcError | SnapshotError):
            raise TrainingError(f"v{version.version}: {error}") from error
        raise

    version.params = {
        "rating": models.rating_params or dict(SVD_DEFAULTS if rating_algorithm in ("svd", "blend") else {}),
        "ranker": models.ranker_params,
        "seed": seed,
        "tuned": tune,
        "watch_min_minutes": settings.WATCH_MIN_MINUTES,
    }
    version.metrics = {**models.metrics, "artifact_bytes": version.artifact_bytes}
    version.group_metrics = models.group_metrics
    version.training_finished_at = timezone.now()
    version.metrics["training_seconds"] = round(version.training_seconds or 0.0, 3)
    version.gate = model_gate(candidate=version)
    version.save()
    _after_gate(version, actor=actor)
    return version


def _register(*, rating_algorithm: str, ranker: str, snapshot: DataSnapshot, actor: str) -> ModelVersion:
    for _ in range(5):
        number = (ModelVersion.objects.aggregate(highest=Max("version"))["highest"] or 0) + 1
        try:
            with transaction.atomic():
                version = ModelVersion.objects.create(
                    version=number,
                    rating_algorithm=rating_algorithm,
                    ranker=ranker,
                    snapshot=snapshot,
                    training_started_at=timezone.now(),
                    code_revision=code_revision(),
                )
                _status_change(version, from_status="", reason=f"training on {snapshot}", actor=actor)
                return version
        except IntegrityError:
            continue  # another training took this number first
    raise TrainingError("could not allocate a version number")


def model_gate(*, candidate: ModelVersion) -> dict[str, object]:
    """The gate: RMSE below the bound, and not worse than stable beyond the tolerances."""
    stable = ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).exclude(pk=candidate.pk).first()
    rmse, ndcg = candidate.rmse, candidate.ndcg_at_10
    reasons: list[str] = []
    if rmse is None:
        reasons.append("no RMSE: the held-out split had no ratings")
    elif rmse >= settings.GATE_MAX_RMSE:
        reasons.append(f"RMSE {rmse:.4f} is not below {settings.GATE_MAX_RMSE}")
    if ndcg is None:
        reasons.append("no NDCG@10: the held-out split had no viewers with held-out items")
    if stable is not None:
        if rmse is not None and stable.rmse is not None and rmse > stable.rmse + settings.GATE_RMSE_TOLERANCE:
            reasons.append(
                f"RMSE {rmse:.4f} is worse than stable v{stable.version}'s {stable.rmse:.4f} "
                f"by more than {settings.GATE_RMSE_TOLERANCE}"
            )
        if (
            ndcg is not None
            and stable.ndcg_at_10 is not None
            and ndcg < stable.ndcg_at_10 - settings.GATE_NDCG_TOLERANCE
        ):
            reasons.append(
                f"NDCG@10 {ndcg:.4f} is worse than stable v{stable.version}'s {stable.ndcg_at_10:.4f} "
                f"by more than {settings.GATE_NDCG_TOLERANCE}"
            )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "inputs": {
            "rmse": rmse,
            "ndcg@10": ndcg,
            "max_rmse": settings.GATE_MAX_RMSE,
            "rmse_tolerance": settings.GATE_RMSE_TOLERANCE,
            "ndcg_tolerance": settings.GATE_NDCG_TOLERANCE,
            "stable_version": stable.version if stable else None,
            "stable_rmse": stable.rmse if stable else None,
            "stable_ndcg@10": stable.ndcg_at_10 if stable else None,
        },
        "decided_at": timezone.now().isoformat(),
    }


def _after_gate(version: ModelVersion, *, actor: str) -> None:
    if not version.gate["passed"]:
        reasons = "; ".join(version.gate["reasons"])  # type: ignore[arg-type]
        model_version_set_status(version=version, status=ModelVersion.Status.REJECTED, reason=reasons, actor=actor)
        notification_send(
            subject=f"v{version.version} rejected by the gate", body=f"{reasons}\n\n{model_version_figures(version)}"
        )
        return
    model_version_set_status(
        version=version, status=ModelVersion.Status.CANDIDATE, reason="passed the gate", actor=actor
    )
    if not ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).exists():
        model_version_set_status(
            version=version,
            status=ModelVersion.Status.STABLE,
            reason="first version of an empty registry",
            actor=actor,
        )
    notification_send(
        subject=f"v{version.version} passed the gate ({version.status})", body=model_version_figures(version)
    )
    if version.status == ModelVersion.Status.CANDIDATE and settings.RELEASE_AUTO_START:
        # By name: the releases app builds on this one, not the other way round.
        transaction.on_commit(lambda: async_task("releases.tasks.release_start_candidate", version.pk))


def model_version_set_status(*, version: ModelVersion, status: str, reason: str = "", actor: str = "") -> ModelVersion:
    """Move a version to ``status``, recording the change; a new stable retires the old one."""
    with transaction.atomic():
        if status == ModelVersion.Status.STABLE:
            for previous in (
                ModelVersion.objects.select_for_update()
                .filter(status=ModelVersion.Status.STABLE)
                .exclude(pk=version.pk)
            ):
                old = previous.status
                previous.status = ModelVersion.Status.RETIRED
                previous.save(update_fields=["status"])
                _status_change(previous, from_status=old, reason=f"replaced by v{version.version}", actor=actor)
        old = version.status
        version.status = status
        version.save(update_fields=["status"])
        _status_change(version, from_status=old, reason=reason, actor=actor)
    return version


def _status_change(version: ModelVersion, *, from_status: str, reason: str, actor: str) -> None:
    ModelStatusChange.objects.create(
        model_version=version,
        from_status=from_status,
        to_status=version.status,
        at=timezone.now(),
        reason=reason[:2000],
        actor=actor[:150],
    )


def model_version_figures(version: ModelVersion) -> str:
    metrics = version.metrics
    popularity = metrics.get("popularity", {})
    lines = [
        f"v{version.version}: {version.ranker} ranker + {version.rating_algorithm} rating model",
        f"status: {version.status}",
        f"data: {version.snapshot}",
        f"code: {version.code_revision or 'unknown'}",
        f"RMSE {metrics.get('rmse')}, MAE {metrics.get('mae')}",
        f"NDCG@10 {metrics.get('ndcg@10')} (popularity {popularity.get('ndcg@10')}), "
        f"precision@10 {metrics.get('precision@10')}, recall@10 {metrics.get('recall@10')}",
        f"coverage@20 {metrics.get('coverage@20')}, training {metrics.get('training_seconds')}s, "
        f"artifact {version.artifact_bytes} bytes",
    ]
    return "\n".join(lines)


def code_revision() -> str:
    """The git commit of the running code (``+dirty`` when it has uncommitted changes), or
    ``CODE_REVISION`` where there is no git checkout (a container image)."""
    if settings.CODE_REVISION:
        return settings.CODE_REVISION
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}+dirty" if dirty else commit
