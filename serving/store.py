"""The models a worker serves, held in memory.

Each worker process holds the artifacts of the versions it serves, loaded once and checked
against their sha256 (``ModelStore``). The request path does no training-time work: a known
viewer's list is the precomputed top list minus what they rated or finished since; a viewer with
a changed or new history is scored by the ranker (a sparse row-sum over item-item weights, or
ALS's fold-in: one k-by-k solve) and a partial sort; a viewer with no history gets the
cold-start list for their demographics.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from django.conf import settings
from django.db import DatabaseError
from prometheus_client import Counter, Gauge

from catalog.demographics import age_bucket
from recommender.artifacts import Artifact, ArtifactError, artifact_load
from recommender.learning.ranking import RankerModel
from recommender.models import ModelVersion

logger = logging.getLogger(__name__)

LOADED_VERSION = Gauge(
    "recsite_model_version_loaded", "Model version a worker serves", ["pool"], multiprocess_mode="liveall"
)
LOAD_FAILURES = Counter("recsite_model_load_failures_total", "Artifacts that failed to load", ["pool"])


@dataclass
class Answer:
    items: list[str]
    strategy: str  # personalized | history | cold-start
    degraded: bool = False
    explored: list[str] = field(default_factory=list)  # those of the items placed by exploration


@dataclass
class ServingModel:
    """One loaded artifact, with the lookups the request path needs.

    The arrays are memory-mapped (shared by the host's workers); a viewer's row is found by
    binary search in the sorted viewer ids, so nothing here grows with the number of viewers."""

    version: int
    version_id: int
    artifact: Artifact
    movies: list[str] = field(init=False)
    movie_index: dict[str, int] = field(init=False)
    cold: dict[str, np.ndarray] = field(init=False)
    ranker: RankerModel = field(init=False)

    def __post_init__(self) -> None:
        self.movies = [str(movie) for movie in self.artifact["movies"]]
        self.movie_index = {movie: column for column, movie in enumerate(self.movies)}
        self.cold = dict(
            zip((str(key) for key in self.artifact["cold_keys"]), self.artifact["cold_lists"], strict=True)
        )
        self.ranker = self.artifact.ranker()

    @cached_property
    def exposure(self) -> np.ndarray:
        """How many known viewers' top 20 hold each movie. Counted on the first explored answer,
        not at load: exploration is off by default, and the count reads every viewer's list."""
        top = np.asarray(self.artifact["top"][:, :20]).ravel()
        return np.bincount(top[top >= 0], minlength=len(self.movies))

    def explore(
        self, answer: Answer, *, viewer_id: int, request_id: str, slots: int, finished: set[str] | None = None
    ) -> Answer:
        """Give the last ``slots`` places of a personalized list to movies the model ranks for
        this viewer further down (its top 100) that are among the least shown to anyone; which
        ones is drawn from the viewer and request ids, so the same request gets the same list.

        Only lists ranked from the viewer's own row are explored: a cold list has no ranking of
        the viewer's to draw relevance from."""
        if slots <= 0 or answer.strategy != "personalized" or len(answer.items) <= slots:
            return answer
        row = self.viewer_row(viewer_id)
        if row is None:
            return answer
        served = {self.movie_index[item] for item in [*answer.items, *(finished or ())] if item in self.movie_index}
        ranked = [int(column) for column in self.artifact["top"][row].tolist() if column >= 0 and column not in served]
        if not ranked:
            return answer
        # Relevant (ranked for the viewer) and under-exposed (the less-shown half of those).
        candidates = sorted(ranked, key=lambda column: (int(self.exposure[column]), column))
        candidates = candidates[: max(slots, len(candidates) // 2)]
        chosen = random.Random(f"{self.version}:{viewer_id}:{request_id}").sample(
            candidates, min(slots, len(candidates))
        )
        explored = [self.movies[column] for column in chosen]
        items = answer.items[: len(answer.items) - len(explored)] + explored
        return Answer(items, answer.strategy, answer.degraded, explored)

    @classmethod
    def load(cls, version: ModelVersion) -> ServingModel:
        artifact = artifact_load(version.artifact_file, sha256=version.artifact_sha256)
        return cls(version=version.version, version_id=version.pk, artifact=artifact)

    def viewer_row(self, viewer_id: int) -> int | None:
        viewers = self.artifact["viewers"]
        row = int(np.searchsorted(viewers, viewer_id))
        return row if row < len(viewers) and int(viewers[row]) == viewer_id else None

    def seen_at_training(self, row: int) -> np.ndarray:
        indptr = self.artifact["seen_indptr"]
        return self.artifact["seen_indices"][indptr[row] : indptr[row + 1]]

    def recommend(
        self,
        *,
        viewer_id: int,
        history: set[str],
        finished: set[str],
        demographics: tuple[int | None, str] | None,
        count: int,
    ) -> Answer:
        """``history``: movies the viewer rated or watched (now); ``finished``: rated or watched
        to the end (never recommended again)."""
        exclude = {self.movie_index[m] for m in finished if m in self.movie_index}
        row = self.viewer_row(viewer_id)
        if row is not None:
            listed = [column for column in self.artifact["top"][row].tolist() if column >= 0 and column not in exclude]
            if len(listed) >= count:
                return Answer([self.movies[c] for c in listed[:count]], "personalized")
        known = {self.movie_index[m] for m in history if m in self.movie_index}
        if row is not None:
            known |= {int(column) for column in self.seen_at_training(row)}
        if known and self.ranker.kind != "popularity":
            columns = np.fromiter(sorted(known), dtype=np.int64)
            scores = self.ranker.score_history(columns)
            scores[columns] = -np.inf
            if exclude:
                scores[np.fromiter(exclude, dtype=np.int64)] = -np.inf
            count = min(count, int(np.isfinite(scores).sum()))
            best = np.argpartition(-scores, count - 1)[:count] if count else np.array([], dtype=np.int64)
            best = best[np.argsort(-scores[best], kind="stable")]
            return Answer([self.movies[c] for c in best], "history")
        return Answer(self._cold_start(demographics, exclude | known, count), "cold-start")

    def _cold_start(self, demographics: tuple[int | None, str] | None, exclude: set[int], count: int) -> list[str]:
        candidates = []
        if demographics is not None:
            age, gender = demographics
            bucket = age_bucket(age) if age is not None else None
            if gender and bucket:
                candidates.append(f"gender:{gender}|age:{bucket}")
            if gender:
                candidates.append(f"gender:{gender}")
            if bucket:
                candidates.append(f"age:{bucket}")
        ranked = next((self.cold[key] for key in candidates if key in self.cold), self.artifact["popular"])
        chosen = [int(c) for c in ranked if int(c) not in exclude][:count]
        if len(chosen) < count:  # a group list runs short: top up from overall popularity
            chosen += [int(c) for c in self.artifact["popular"] if int(c) not in exclude and int(c) not in chosen]
        return [self.movies[c] for c in chosen[:count]]


class ModelStore:
    """The version one pool serves in this process.

    A version whose artifact failed to load (missing, corrupt) is not tried again before its
    back-off ends (1 s, doubling to 5 min): reading and hashing a large file under the lock on
    every request of a worker with nothing loaded helped no one. Requests never retry during
    the back-off; the watcher thread does once it ends.
    """

    FIRST_BACKOFF_SECONDS = 1.0
    LONGEST_BACKOFF_SECONDS = 300.0

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.current: ServingModel | None = None
        self._lock = threading.Lock()
        # version id -> (monotonic time of the next attempt, back-off that led to it)
        self._failed: dict[int, tuple[float, float]] = {}

    def reset(self) -> None:
        """Forget the loaded model and every failure (tests; a worker would simply restart)."""
        with self._lock:
            self._set(None)
            self._failed.clear()

    def backing_off(self) -> bool:
        """Whether every version that failed is still in its back-off (so a request that finds
        nothing loaded should not try again)."""
        now = time.monotonic()
        return bool(self._failed) and all(retry_at > now for retry_at, _ in self._failed.values())

    def wanted(self) -> ModelVersion | None:
        """The version this pool should serve: stable, or for the canary pool the version in
        canary (or stable, when the canary pool runs on its own servers with no canary)."""
        if self.pool == "canary":
            canary = ModelVersion.objects.filter(status=ModelVersion.Status.CANARY).order_by("-version").first()
            if canary is not None or settings.RELEASE_MODE == "embedded":
                return canary
        return ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).order_by("-version").first()

    def refresh(self) -> ServingModel | None:
        """Load the wanted version if it is not the one held; keep the old one if loading fails."""
        with self._lock:
            try:
                wanted = self.wanted()
            except DatabaseError:
                logger.warning("could not ask the registry which version to serve; keeping v%s", self._held())
                return self.current
            if wanted is None:
                if self.pool == "canary" and settings.RELEASE_MODE == "embedded":
                    self._set(None)  # the canary ended: free its memory
                return self.current
            if self.current is not None and self.current.version_id == wanted.pk:
                return self.current
            retry_at, backoff = self._failed.get(wanted.pk, (0.0, 0.0))
            if time.monotonic() < retry_at:
                return self.current
            try:
                started = time.perf_counter()
                loaded = ServingModel.load(wanted)
            except ArtifactError as error:
                LOAD_FAILURES.labels(pool=self.pool).inc()
                backoff = min(max(backoff * 2, self.FIRST_BACKOFF_SECONDS), self.LONGEST_BACKOFF_SECONDS)
                self._failed[wanted.pk] = (time.monotonic() + backoff, backoff)
                logger.error(
                    "cannot serve v%s: %s; keeping v%s, next try in %.0fs", wanted.version, error, self._held(), backoff
                )
                return self.current
            self._failed.clear()
            self._set(loaded)
            logger.info(
                "serving v%s in the %s pool (loaded in %.2fs)", loaded.version, self.pool, time.perf_counter() - started
            )
            return loaded

    def _set(self, model: ServingModel | None) -> None:
        self.current = model
        LOADED_VERSION.labels(pool=self.pool).set(model.version if model else 0)

    def _held(self) -> str:
        return str(self.current.version) if self.current else "none"
