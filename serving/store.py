"""The models a worker serves, held in memory.

Each worker process holds the artifacts of the versions it serves, loaded once and checked
against their sha256 (``ModelStore``). The request path does no training-time work: a known
viewer's list is the precomputed top list minus what they rated or finished since; a viewer with
a changed or new history is scored by the ranker (a sparse row-sum over item-item weights, or
ALS's fold-in: one k-by-k solve) and a partial sort; a viewer with no history gets the
cold-start list for their demographics.

What a worker serves must not depend on the database or on one file staying intact. Each pool
remembers the last versions this host served (``MODEL_DIR/serving/<pool>.json``), so a worker
that starts while the registry cannot be read serves the last of them. A loaded artifact is hashed
again every ``SERVING_VERIFY_SECONDS``; when it no longer matches, or the wanted version's
artifact will not load, the newest older good artifact stands in (its answers recorded as
degraded), the fault is stored for the console and people are told.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DatabaseError
from prometheus_client import Counter, Gauge

from catalog.demographics import cold_start_keys
from provenance.models import Recommendation
from recommender.artifacts import Artifact, ArtifactError, artifact_load, artifact_verify
from recommender.learning.ranking import Ranker
from recommender.models import ModelVersion
from recommender.selectors import model_version_canary, model_version_stable

Strategy = Recommendation.Strategy
logger = logging.getLogger(__name__)

LOADED_VERSION = Gauge(
    "recsite_model_version_loaded", "Model version a worker serves", ["pool"], multiprocess_mode="liveall"
)
LOAD_FAILURES = Counter("recsite_model_load_failures_total", "Artifacts that failed to load", ["pool"])
CORRUPTED = Counter(
    "recsite_model_artifact_corrupted_total", "Served artifacts found no longer matching their sha256", ["pool"]
)
STAND_IN = Gauge(
    "recsite_model_stand_in_version",
    "Older version a worker serves in place of a damaged one (0: none)",
    ["pool"],
    multiprocess_mode="liveall",
)
# How many versions each pool remembers having served on this host.
REMEMBERED = 3


@dataclass
class Answer:
    items: list[str]
    strategy: str  # a Recommendation.Strategy
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
    ranker: Ranker = field(init=False)
    # The version whose artifact is damaged and which this one answers for (its answers are degraded).
    stands_in_for: int | None = None

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
        if slots <= 0 or answer.strategy != Strategy.PERSONALIZED or len(answer.items) <= slots:
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
        return cls.load_remembered(served_entry(version))

    @classmethod
    def load_remembered(cls, remembered: dict[str, Any], *, stands_in_for: int | None = None) -> ServingModel:
        artifact = artifact_load(Path(settings.MODEL_DIR) / remembered["path"], sha256=remembered["sha256"])
        return cls(
            version=int(remembered["version"]),
            version_id=int(remembered["version_id"]),
            artifact=artifact,
            stands_in_for=stands_in_for,
        )

    def remembered(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "version_id": self.version_id,
            "path": os.path.relpath(self.artifact.path, settings.MODEL_DIR),
            "sha256": self.artifact.sha256,
        }

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
                return Answer([self.movies[c] for c in listed[:count]], Strategy.PERSONALIZED)
        known = {self.movie_index[m] for m in history if m in self.movie_index}
        if row is not None:
            known |= {int(column) for column in self.seen_at_training(row)}
        if known and self.ranker.personal:
            columns = np.fromiter(sorted(known), dtype=np.int64)
            best = self.ranker.top_history(columns, count, exclude=np.fromiter(exclude, dtype=np.int64))
            return Answer([self.movies[c] for c in best], Strategy.HISTORY)
        return Answer(self._cold_start(demographics, exclude | known, count), Strategy.COLD_START)

    def _cold_start(self, demographics: tuple[int | None, str] | None, exclude: set[int], count: int) -> list[str]:
        candidates = cold_start_keys(*demographics) if demographics is not None else []
        ranked = next((self.cold[key] for key in candidates if key in self.cold), self.artifact["popular"])
        chosen = [int(c) for c in ranked if int(c) not in exclude][:count]
        if len(chosen) < count:  # a group list runs short: top up from overall popularity
            chosen += [int(c) for c in self.artifact["popular"] if int(c) not in exclude and int(c) not in chosen]
        return [self.movies[c] for c in chosen[:count]]


def served_entry(version: ModelVersion) -> dict[str, Any]:
    """A registry row as the store loads it, and as ``ServingModel.remembered`` writes it down."""
    return {
        "version": version.version,
        "version_id": version.pk,
        "path": version.artifact_path,
        "sha256": version.artifact_sha256,
    }


def served_path(pool: str) -> Path:
    return Path(settings.MODEL_DIR) / "serving" / f"{pool}.json"


def served_recall(pool: str) -> list[dict[str, Any]]:
    """The versions this host served in ``pool``, newest first (empty if none or unreadable)."""
    try:
        recalled = json.loads(served_path(pool).read_text())["served"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [entry for entry in recalled if isinstance(entry, dict)] if isinstance(recalled, list) else []


def served_remember(pool: str, model: ServingModel) -> None:
    """Put ``model`` first among the versions this host served (written only when that changes,
    atomically: a worker starting at the same moment reads the old list or the new one)."""
    recalled = served_recall(pool)
    if recalled and recalled[0] == model.remembered():
        return
    entries = [model.remembered(), *(e for e in recalled if e.get("version_id") != model.version_id)][:REMEMBERED]
    path = served_path(pool)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps({"served": entries}, indent=1))
        os.replace(temporary, path)
    except OSError as error:  # serving goes on; only a later start without the database loses
        logger.warning("could not remember v%s as served: %s", model.version, error)


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
        self._verify_at = 0.0
        # (damaged version id, what was found, stand-in version id) not yet stored
        self._faults: list[tuple[int, str, int | None]] = []

    def reset(self) -> None:
        """Forget the loaded model and every failure (tests; a worker would simply restart)."""
        with self._lock:
            self._set(None)
            self._failed.clear()
            self._faults.clear()
            self._verify_at = 0.0

    def backing_off(self) -> bool:
        """Whether every version that failed is still in its back-off (so a request that finds
        nothing loaded should not try again)."""
        now = time.monotonic()
        return bool(self._failed) and all(retry_at > now for retry_at, _ in self._failed.values())

    def wanted(self) -> ModelVersion | None:
        """The version this pool should serve: stable, or for the canary pool the version in
        canary (or stable, when the canary pool runs on its own servers with no canary)."""
        if self.pool == "canary":
            canary = model_version_canary()
            if canary is not None or settings.RELEASE_MODE == "embedded":
                return canary
        return model_version_stable()

    def refresh(self) -> ServingModel | None:
        """Load the wanted version if it is not the one held; keep the old one if loading fails,
        or have an older good artifact stand in when nothing good is held."""
        self._verify()
        try:
            return self._refresh()
        finally:
            self._record_faults()

    def _refresh(self) -> ServingModel | None:
        with self._lock:
            try:
                wanted = self.wanted()
            except DatabaseError:
                if self.current is None:
                    self._stand_in(None, reason="the registry cannot be read")
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
                self._back_off(wanted.pk, backoff)
                logger.error("cannot serve v%s: %s; keeping v%s", wanted.version, error, self._held())
                if self.current is None:
                    self._stand_in(wanted, reason=str(error))
                return self.current
            self._failed.clear()
            self._set(loaded)
            served_remember(self.pool, loaded)
            logger.info(
                "serving v%s in the %s pool (loaded in %.2fs)", loaded.version, self.pool, time.perf_counter() - started
            )
            return loaded

    def _verify(self) -> None:
        """Hash the held artifact again once ``SERVING_VERIFY_SECONDS`` have passed (outside the
        lock: requests go on meanwhile). A damaged one is replaced by an older good one."""
        model = self.current
        if model is None or not settings.SERVING_VERIFY_SECONDS or time.monotonic() < self._verify_at:
            return
        self._verify_at = time.monotonic() + settings.SERVING_VERIFY_SECONDS
        try:
            artifact_verify(model.artifact)
        except ArtifactError as error:
            with self._lock:
                if self.current is not model:
                    return
                CORRUPTED.labels(pool=self.pool).inc()
                self._back_off(model.version_id, 0.0)
                logger.error("v%s's artifact is damaged: %s", model.version, error)
                # A stand-in that broke in turn is replaced by the next older one in the same way.
                self._stand_in(None, reason=str(error), failed_id=model.version_id, failed_version=model.version)

    def _stand_in(
        self,
        failed: ModelVersion | None,
        *,
        reason: str,
        failed_id: int | None = None,
        failed_version: int | None = None,
    ) -> None:
        """Serve the newest good artifact older than the failed version (this host's memory of
        what it served as stable, then the registry's stable and retired versions); with no
        failed version (the registry is away), the newest this pool served on this host."""
        failed_id = failed.pk if failed is not None else failed_id
        failed_version = failed.version if failed is not None else failed_version
        # In place of a damaged version, only what served as stable will do (a canary pool's
        # earlier versions may have been aborted); with the registry away, what this pool served.
        memory = self.pool if failed_version is None else "stable"
        candidates = [e for e in served_recall(memory) if e.get("version_id") != failed_id]
        if failed_version is not None:
            candidates = [e for e in candidates if int(e.get("version", 0)) < failed_version]
            with contextlib.suppress(DatabaseError):
                older = ModelVersion.objects.filter(
                    status__in=[ModelVersion.Status.STABLE, ModelVersion.Status.RETIRED], version__lt=failed_version
                ).exclude(artifact_path="")
                known = {int(e.get("version_id", 0)) for e in candidates} | {failed_id or 0}
                candidates += [served_entry(v) for v in older.exclude(pk__in=known).order_by("-version")[:REMEMBERED]]
            candidates.sort(key=lambda entry: -int(entry.get("version", 0)))
        for entry in candidates:
            try:
                model = ServingModel.load_remembered(entry, stands_in_for=failed_version)
            except (ArtifactError, KeyError, ValueError, TypeError) as error:
                logger.warning("v%s cannot stand in: %s", entry.get("version"), error)
                continue
            self._set(model)
            if failed_id is not None:
                self._faults.append((failed_id, reason, model.version_id))
            logger.warning("serving v%s in the %s pool: %s", model.version, self.pool, reason)
            return
        if failed_id is not None and self.current is not None and self.current.version_id == failed_id:
            self._faults.append((failed_id, reason, None))
            logger.error("no older good artifact: the damaged v%s goes on serving", failed_version)

    def _record_faults(self) -> None:
        """Store the faults found so far (the database may have been away when they were)."""
        from serving.services import artifact_fault_record  # the services answer with this store's models

        if not self._faults:
            return
        with self._lock:
            faults, self._faults = self._faults, []
        while faults:
            version_id, detail, stand_in_id = faults[0]
            try:
                artifact_fault_record(version_id=version_id, pool=self.pool, detail=detail, stand_in_id=stand_in_id)
            except DatabaseError as error:
                logger.warning("could not store the artifact fault (kept for the next refresh): %s", error)
                with self._lock:
                    self._faults[:0] = faults
                return
            faults.pop(0)

    def _back_off(self, version_id: int, backoff: float) -> None:
        backoff = min(max(backoff * 2, self.FIRST_BACKOFF_SECONDS), self.LONGEST_BACKOFF_SECONDS)
        self._failed[version_id] = (time.monotonic() + backoff, backoff)

    def _set(self, model: ServingModel | None) -> None:
        self.current = model
        self._verify_at = time.monotonic() + settings.SERVING_VERIFY_SECONDS
        LOADED_VERSION.labels(pool=self.pool).set(model.version if model else 0)
        STAND_IN.labels(pool=self.pool).set(model.version if model and model.stands_in_for is not None else 0)

    def _held(self) -> str:
        return str(self.current.version) if self.current else "none"
