"""Training, gating and registering model versions.

``model_train`` runs the steps its docstring lists, each a function below; the gate and the
status changes are services of their own because the release process uses them too.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_q.tasks import async_task

from core.locks import LockHeld, named_lock
from core.notifications import notification_send
from core.revision import code_revision
from recommender.artifacts import ArtifactError, artifact_build, artifact_write
from recommender.dvc import DvcError, dvc_track
from recommender.gate import Bounds, Figures, gate_checks, gate_passed, gate_reasons
from recommender.learning.pipeline import TrainedModels, train_and_evaluate
from recommender.models import DataSnapshot, ModelStatusChange, ModelVersion
from recommender.selectors import model_version_stable
from recommender.snapshots import SnapshotData, SnapshotError, snapshot_create, snapshot_load

# A training can run no longer than django-q2's task timeout: a lock older than that is stale.
TRAINING_LOCK = "training"
RETRAIN_TASK = "recommender.tasks.model_retrain"


class TrainingError(Exception):
    """Training could not produce a model (bad snapshot, failed fit); the message says why."""


class RegistryError(Exception):
    """A status change that would leave two stable or two canary versions; the message says why."""


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

    One training at a time, across processes and hosts: a second one (the schedule while a person
    trains) raises ``TrainingError`` naming the one running, and touches nothing. Two at once
    could delete each other's snapshot directory.

    1. Snapshot: take one; one that failed its quality check stops here (nothing trains on it).
    2. Register version N as ``training``, with the code revision.
    3. Fit and evaluate the rating model and the ranker on the snapshot's training split; with
       ``TRAIN_RANKER=auto`` model selection chooses the ranker first (the version records it).
    4. Store the artifact: write it, hash it, track it with DVC.
    5. Gate it: ``candidate`` or ``rejected``; the first version of an empty registry becomes
       ``stable`` directly (later ones are for the release process).
    6. Notify people of the outcome: passed with figures, rejected with reasons, failed with the error.
    """
    try:
        with named_lock(TRAINING_LOCK, stale_after=timedelta(seconds=settings.Q_TIMEOUT)):
            return _train(
                rating_algorithm=rating_algorithm,
                ranker=ranker,
                snapshot=snapshot,
                tune=tune,
                seed=seed,
                actor=actor,
                progress=progress,
            )
    except LockHeld as held:
        raise TrainingError(f"another training is running ({held}); this one did not start") from None


def _train(
    *,
    rating_algorithm: str | None,
    ranker: str | None,
    snapshot: DataSnapshot | None,
    tune: bool,
    seed: int | None,
    actor: str,
    progress: Callable[[str], None],
) -> ModelVersion:
    rating_algorithm = rating_algorithm or settings.TRAIN_RATING_ALGORITHM
    ranker = ranker or settings.TRAIN_RANKER
    seed = settings.TRAIN_SEED if seed is None else seed
    progress("snapshot")
    snapshot = _usable_snapshot(snapshot)
    version = model_version_register(rating_algorithm=rating_algorithm, ranker=ranker, snapshot=snapshot, actor=actor)
    try:
        data = snapshot_load(snapshot)
        models = _fit(version, data=data, tune=tune, seed=seed, progress=progress)
        version.ranker = models.ranker  # what selection chose, when it was asked to choose
        progress("artifact")
        _artifact_store(version, models=models, data=data)
        _record_figures(version, models=models, tune=tune, seed=seed)
        version.gate = model_gate(candidate=version)
        version.save()
        _after_gate(version, actor=actor)
    except Exception as error:
        # Whatever step failed, the version does not stay "training", and people are told; a
        # failure after the gate decided (a notification, a queued task) leaves its verdict.
        if ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.TRAINING).exists():
            _fail(version, error=error, actor=actor)
        if isinstance(error, TrainingError | ArtifactError | DvcError | SnapshotError):
            raise TrainingError(f"v{version.version}: {error}") from error
        raise
    return version


def _usable_snapshot(snapshot: DataSnapshot | None) -> DataSnapshot:
    snapshot = snapshot_create() if snapshot is None else snapshot
    if not snapshot.is_usable:
        message = f"{snapshot} failed its quality check: {'; '.join(snapshot.failure_reasons)}"
        notification_send(subject="training skipped: data failed its quality check", body=message)
        raise TrainingError(message)
    return snapshot


def _fit(
    version: ModelVersion, *, data: SnapshotData, tune: bool, seed: int, progress: Callable[[str], None]
) -> TrainedModels:
    interactions = data.interactions
    kept = ~np.isnan(interactions.scores) | (data.minutes >= settings.WATCH_MIN_MINUTES)
    interactions = interactions.subset(kept)
    if not len(interactions):
        raise TrainingError(f"{version.snapshot} has no interactions to learn from")
    return train_and_evaluate(
        interactions=interactions,
        demographics=data.viewers,
        rating_algorithm=version.rating_algorithm,
        ranker=version.ranker,
        seed=seed,
        tune=tune,
        evaluation_viewers=settings.TRAIN_EVALUATION_VIEWERS,
        selection_seconds=settings.TRAIN_SELECTION_SECONDS,
        selection_viewers=settings.TRAIN_SELECTION_VIEWERS,
        progress=progress,
    )


def _artifact_store(version: ModelVersion, *, models: TrainedModels, data: SnapshotData) -> None:
    meta = {"version": version.version, "ranker": version.ranker, "rating_algorithm": version.rating_algorithm}
    meta, arrays = artifact_build(models, demographics=data.viewers, meta=meta)
    content_hash = version.snapshot.content_hash if version.snapshot else "nosnapshot"
    path = Path(settings.MODEL_DIR) / f"v{version.version:04d}-{content_hash[:12]}"
    version.artifact_sha256, version.artifact_bytes = artifact_write(path, meta=meta, arrays=arrays)
    version.artifact_path = path.name
    record = dvc_track(path=path, repo=Path(settings.MODEL_DIR))
    version.dvc_md5, version.dvc_file = record.md5, record.dvc_file


def _fail(version: ModelVersion, *, error: BaseException, actor: str) -> None:
    """Mark a training failed, with the reason; remove the files it left (a failed version is
    never served) and tell people."""
    version.status = ModelVersion.Status.FAILED
    version.error = f"{type(error).__name__}: {error}"
    version.training_finished_at = timezone.now()
    version.artifact_path = ""
    version.save()
    _status_change(version, from_status=ModelVersion.Status.TRAINING, reason=version.error, actor=actor)
    for leftover in Path(settings.MODEL_DIR).glob(f"v{version.version:04d}-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    notification_send(subject=f"training of v{version.version} failed", body=version.error)


class TrainingInterrupted(Exception):
    """The process that trained a version is gone: killed, or stopped by a deploy."""


def model_training_recover(*, actor: str = "recover_work") -> list[ModelVersion]:
    """Versions left in ``training`` by a process that is gone (SIGKILL, out of memory, a deploy
    that outlasted the stop grace period), found when the worker starts.

    1. Take the training lock, over a dead holder at once (``core.locks``); a live training
       anywhere holds it, and then nothing here is orphaned: return.
    2. Mark each version still ``training`` failed, with the reason, and remove its files.
    3. Queue a new training at once when any was interrupted, and drop the interrupted task
       from django-q2's queue, which would otherwise run it again only after ``Q_TIMEOUT``.
    """
    from django_q.models import OrmQ

    try:
        with named_lock(TRAINING_LOCK, stale_after=timedelta(seconds=settings.Q_TIMEOUT)):
            orphans = list(ModelVersion.objects.filter(status=ModelVersion.Status.TRAINING).order_by("version"))
            for version in orphans:
                error = TrainingInterrupted("the process training it stopped before it finished (a deploy or a crash)")
                _fail(version, error=error, actor=actor)
    except LockHeld:
        return []
    if orphans:
        # A claimed (locked) queue entry for a training is the interrupted one: this worker is the
        # cluster that claimed it, and it has just started.
        for queued in OrmQ.objects.exclude(lock=None):
            if queued.func() == RETRAIN_TASK:
                queued.delete()
        async_task(RETRAIN_TASK)
    return orphans


def _record_figures(version: ModelVersion, *, models: TrainedModels, tune: bool, seed: int) -> None:
    version.params = {
        "rating": models.rating_params,
        "ranker": models.ranker_params,
        "seed": seed,
        "tuned": tune,
        "watch_min_minutes": settings.WATCH_MIN_MINUTES,
    }
    version.metrics = {**models.metrics, "artifact_bytes": version.artifact_bytes}
    version.group_metrics = models.group_metrics
    version.training_finished_at = timezone.now()
    version.metrics["training_seconds"] = round(version.training_seconds or 0.0, 3)


def model_version_register(*, rating_algorithm: str, ranker: str, snapshot: DataSnapshot, actor: str) -> ModelVersion:
    """Register the next version number as ``training``; two trainings never share a number."""
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
    """The gate's rows and verdict for ``candidate`` (``recommender.gate``), as stored on it:
    against the settings' bounds, the most-popular list on its own split and the stable version."""
    stable = model_version_stable()
    if stable is not None and stable.pk == candidate.pk:
        stable = None  # a version is not compared with itself
    bounds = Bounds(
        max_rmse=settings.GATE_MAX_RMSE,
        rmse_tolerance=settings.GATE_RMSE_TOLERANCE,
        ndcg_tolerance=settings.GATE_NDCG_TOLERANCE,
    )
    checks = gate_checks(
        candidate=Figures.of_metrics(candidate.metrics, version=candidate.version),
        stable=Figures.of_metrics(stable.metrics, version=stable.version) if stable is not None else None,
        bounds=bounds,
    )
    return {
        "passed": gate_passed(checks),
        "reasons": gate_reasons(checks),
        "checks": [check.as_dict() for check in checks],
        "bounds": asdict(bounds),
        "stable_version": stable.version if stable else None,
        "decided_at": timezone.now().isoformat(),
    }


def _after_gate(version: ModelVersion, *, actor: str) -> None:
    if not version.gate_passed:
        reasons = "; ".join(version.gate_reasons)
        model_version_set_status(version=version, status=ModelVersion.Status.REJECTED, reason=reasons, actor=actor)
        notification_send(
            subject=f"v{version.version} rejected by the gate", body=f"{reasons}\n\n{model_version_figures(version)}"
        )
        return
    model_version_set_status(
        version=version, status=ModelVersion.Status.CANDIDATE, reason="passed the gate", actor=actor
    )
    if not ModelVersion.objects.filter(status=ModelVersion.Status.STABLE).exists():
        # Another training may make its version stable a moment sooner: this one stays a candidate.
        with contextlib.suppress(RegistryError):
            model_version_set_status(
                version=version,
                status=ModelVersion.Status.STABLE,
                reason="first version of an empty registry",
                actor=actor,
            )
    notification_send(
        subject=f"v{version.version} passed the gate ({version.status})", body=model_version_figures(version)
    )
    if settings.FAIRNESS_AFTER_TRAINING:
        # By name as well: the fairness app sits above this one.
        transaction.on_commit(lambda: async_task("fairness.tasks.fairness_report_for_version", version.pk))
    if version.status == ModelVersion.Status.CANDIDATE and settings.RELEASE_AUTO_START:
        # By name: the releases app sits above this one and reacts to it through a task.
        transaction.on_commit(lambda: async_task("releases.tasks.release_start_candidate", version.pk))


def model_version_set_status(*, version: ModelVersion, status: str, reason: str = "", actor: str = "") -> ModelVersion:
    """Move a version to ``status``, recording the change; a new stable retires the old one.

    Raises ``RegistryError`` when another version holds the canary slot (or took the stable one
    at the same moment): the database's unique ``serving_slot`` refuses the second.
    """
    with transaction.atomic():
        if status == ModelVersion.Status.STABLE:
            for previous in (
                ModelVersion.objects.select_for_update()
                .filter(status=ModelVersion.Status.STABLE)
                .exclude(pk=version.pk)
            ):
                old = previous.status
                previous.status, previous.serving_slot = ModelVersion.Status.RETIRED, None
                previous.save(update_fields=["status", "serving_slot"])
                _status_change(previous, from_status=old, reason=f"replaced by v{version.version}", actor=actor)
        old, old_slot = version.status, version.serving_slot
        version.status = status
        version.serving_slot = status if status in ModelVersion.SERVING_STATUSES else None
        try:
            with transaction.atomic():
                version.save(update_fields=["status", "serving_slot"])
        except IntegrityError:
            version.status, version.serving_slot = old, old_slot
            holder = ModelVersion.objects.filter(serving_slot=status).values_list("version", flat=True).first()
            raise RegistryError(
                f"v{version.version} cannot become {status}: v{holder or '?'} is {status} already"
            ) from None
        _status_change(version, from_status=old, reason=reason, actor=actor)
    return version


def model_version_set_canary_weight(*, version: ModelVersion, weight: int) -> None:
    """Give the canary version ``weight`` percent of the traffic (0 takes it all back).

    The release process decides the weight; serving and the NGINX upstreams read it from here.
    """
    if not 0 <= weight <= 100:
        raise ValueError(f"a canary weight is a percentage, not {weight}")
    ModelVersion.objects.filter(pk=version.pk).update(canary_weight=weight)
    version.canary_weight = weight


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
