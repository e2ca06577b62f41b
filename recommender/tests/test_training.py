import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from prometheus_client import REGISTRY

from recommender.artifacts import ArtifactError, artifact_load, predict_rating
from recommender.learning.ranking import RANKERS
from recommender.models import DataSnapshot, ModelStatusChange, ModelVersion
from recommender.selectors import model_version_stable_at
from recommender.services import TrainingError, model_train, model_version_set_status
from stream.services import stream_ingest_batch

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


def test_training_registers_a_version_with_its_lineage(trained_version):
    version = trained_version

    assert version.version == 1
    assert version.snapshot.status == DataSnapshot.Status.OK
    assert version.ranker == "ease"
    assert version.rating_algorithm == "svd"
    assert version.params["rating"]["n_factors"] == 100
    assert version.params["seed"] == 42
    assert version.metrics["rmse"] < 1.0
    assert 0 < version.metrics["ndcg@10"] <= 1
    assert 0 < version.metrics["popularity"]["ndcg@10"] <= 1
    assert version.metrics["split"]["test_ratings"] > 0
    assert set(version.group_metrics) == {"gender", "age", "occupation"}
    assert version.training_finished_at >= version.training_started_at
    assert len(version.code_revision) >= 40
    assert (version.artifact_file / "manifest.json").is_file()
    assert version.dvc_md5.endswith(".dir")  # DVC tracks the artifact as a directory
    assert (settings.MODEL_DIR / version.dvc_file).is_file()
    assert version.dvc_md5 in (settings.MODEL_DIR / version.dvc_file).read_text()


def test_first_version_of_an_empty_registry_becomes_stable(trained_version):
    changes = list(trained_version.status_changes.values_list("from_status", "to_status"))

    assert trained_version.status == ModelVersion.Status.STABLE
    assert changes == [("", "training"), ("training", "candidate"), ("candidate", "stable")]


def test_a_passing_later_version_waits_as_a_candidate(trained_version):
    second = model_train(actor="test")

    assert second.version == 2
    assert second.status == ModelVersion.Status.CANDIDATE
    # Nothing new was ingested: the second run trained on the same snapshot.
    assert second.snapshot_id == trained_version.snapshot_id


def test_a_candidate_worse_than_stable_is_rejected_with_reasons(trained_version):
    # Stable's recorded figures are the gate's yardstick; make them better than any retrain.
    trained_version.metrics.update({"ndcg@10": 0.99, "rmse": 0.1})
    trained_version.save()

    worse = model_train(actor="test")

    worse.refresh_from_db()
    assert worse.status == ModelVersion.Status.REJECTED
    assert not worse.gate["passed"]
    assert worse.gate["reasons"][0].startswith("RMSE ")
    assert "is worse than stable v1's 0.1000 by more than 0.02" in worse.gate["reasons"][0]
    assert worse.gate["reasons"][1].startswith("NDCG@10 ")
    assert "is worse than stable v1's 0.9900 by more than 0.02" in worse.gate["reasons"][1]
    assert worse.gate["stable_version"] == 1
    assert [check["passed"] for check in worse.gate["checks"]] == [True, True, False, False]
    assert "rejected by the gate" in mail.outbox[-1].subject


def test_rmse_above_the_bound_is_rejected(watched_world, settings):
    settings.GATE_MAX_RMSE = 0.1

    version = model_train(actor="test")

    assert version.status == ModelVersion.Status.REJECTED
    assert version.gate["reasons"][0].endswith("is not below 0.1")


def test_training_refuses_a_snapshot_that_failed_its_quality_check(db, settings):
    settings.SNAPSHOT_MIN_RATINGS = 10
    stream_ingest_batch(lines=["2023-10-01T12:00:00,7,GET /rate/the+matrix+1999=5"])

    with pytest.raises(TrainingError, match="failed its quality check: 1 ratings, fewer than the minimum of 10"):
        model_train()

    assert not ModelVersion.objects.exists()
    assert "quality check" in mail.outbox[-1].subject


def test_artifact_loads_and_its_rating_model_is_the_one_the_gate_measured(trained_version):
    artifact = artifact_load(trained_version.artifact_file, sha256=trained_version.artifact_sha256)

    assert artifact.meta["version"] == 1
    assert artifact["top"].shape[0] == len(artifact["viewers"])
    assert artifact["popular"].shape[0] > 0
    assert any(key.startswith("gender:") for key in artifact["cold_keys"])
    # The rating model in the artifact predicts what scikit-surprise's SVD fitted on the
    # training split predicts (the model whose RMSE the gate read), not a refit on everything.
    row, column = 0, int(artifact["top"][0][0])
    refit, held_out_fit = _surprise_predictions(trained_version, artifact, row, column)
    assert predict_rating(artifact, viewer_row=row, movie_column=column) == pytest.approx(held_out_fit, abs=1e-4)
    assert refit != pytest.approx(held_out_fit, abs=1e-4)


def _surprise_predictions(version, artifact, row, column):
    from recommender.learning.rating import rating_model, surprise_trainset
    from recommender.learning.splitting import split_by_viewer
    from recommender.snapshots import snapshot_load

    data = snapshot_load(version.snapshot)
    interactions = data.interactions.subset(~np.isnan(data.interactions.scores) | (data.minutes >= 5))
    split = split_by_viewer(interactions, seed=version.params["seed"])
    viewer, movie = int(artifact["viewers"][row]), column
    predictions = []
    for ratings in (interactions.ratings(), split.train.ratings()):
        model = rating_model("svd", version.params["rating"], seed=version.params["seed"])
        predictions.append(model.fit(surprise_trainset(ratings)).predict(viewer, movie).est)
    return predictions


def test_a_corrupt_artifact_is_refused_naming_the_file(trained_version):
    path = trained_version.artifact_file / "top.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match=rf"model artifact {trained_version.artifact_file} is corrupt: top.npy"):
        artifact_load(trained_version.artifact_file, sha256=trained_version.artifact_sha256)


def test_an_altered_manifest_is_refused(trained_version):
    manifest = trained_version.artifact_file / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": 1', '"version": 2'))

    with pytest.raises(ArtifactError, match="is corrupt: manifest sha256"):
        artifact_load(trained_version.artifact_file, sha256=trained_version.artifact_sha256)


def test_a_missing_artifact_is_refused_naming_the_file(trained_version):
    shutil.rmtree(trained_version.artifact_file)

    with pytest.raises(ArtifactError, match="is missing"):
        artifact_load(trained_version.artifact_file, sha256=trained_version.artifact_sha256)


def test_history_answers_which_version_was_stable_at_any_time(db):
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def version(number):
        return ModelVersion.objects.create(
            version=number, rating_algorithm="svd", ranker="ease", training_started_at=start
        )

    with time_machine.travel(start, tick=False) as clock:
        one = version(1)
        model_version_set_status(version=one, status=ModelVersion.Status.STABLE)
        clock.shift(timedelta(hours=1))
        two = version(2)
        model_version_set_status(version=two, status=ModelVersion.Status.STABLE)
        clock.shift(timedelta(hours=1))
        model_version_set_status(version=two, status=ModelVersion.Status.RETIRED, reason="rolled back")

    assert model_version_stable_at(start - timedelta(seconds=1)) is None
    assert model_version_stable_at(start + timedelta(minutes=30)) == one
    assert model_version_stable_at(start + timedelta(minutes=90)) == two
    assert model_version_stable_at(start + timedelta(hours=3)) is None
    one.refresh_from_db()
    assert one.status == ModelVersion.Status.RETIRED
    assert ModelStatusChange.objects.filter(model_version=one, reason="replaced by v2").exists()


def test_train_command_prints_one_summary_line(watched_world, capsys):
    call_command("train", algorithm="baseline")

    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    version = ModelVersion.objects.get()
    assert version.ranker in RANKERS  # what selection chose, never "auto"
    assert out[0].startswith(f"v1 stable ({version.ranker} ranker): RMSE ")
    assert "passed the gate" in out[0]


def test_train_command_fails_on_an_unknown_snapshot(db):
    with pytest.raises(CommandError, match="no data snapshot with id 999"):
        call_command("train", snapshot=999)


def test_train_command_fails_when_there_is_no_data(db):
    with pytest.raises(CommandError, match=r"training failed: .*fewer than the minimum"):
        call_command("train")


def test_a_failure_during_training_is_recorded_and_notified(watched_world):
    from recommender.snapshots import snapshot_create

    snapshot = snapshot_create()
    (snapshot.directory / "interactions.csv").write_text("tampered\n")

    with pytest.raises(TrainingError, match=r"v1: snapshot files in .* changed since they were recorded"):
        model_train(snapshot=snapshot, actor="test")

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.FAILED
    assert version.error.startswith("SnapshotError: snapshot files in")
    assert list(version.status_changes.values_list("to_status", flat=True)) == ["training", "failed"]
    assert mail.outbox[-1].subject == "[recsite] training of v1 failed"


def test_a_failure_after_the_artifact_is_written_fails_the_version_and_removes_its_files(
    watched_world, settings, monkeypatch
):
    def broken_gate(*, candidate):
        raise ValueError("the gate could not read its bounds")

    monkeypatch.setattr("recommender.services.model_gate", broken_gate)

    with pytest.raises(ValueError, match="the gate could not read its bounds"):
        model_train(actor="test")

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.FAILED
    assert version.error == "ValueError: the gate could not read its bounds"
    assert not list(Path(settings.MODEL_DIR).glob("v0001-*"))
    assert mail.outbox[-1].subject == "[recsite] training of v1 failed"


def test_a_failing_mail_server_does_not_break_training(watched_world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    before = REGISTRY.get_sample_value("recsite_notifications_failed_total", {"channel": "email"}) or 0

    version = model_train(actor="test")

    assert version.status == ModelVersion.Status.STABLE
    assert REGISTRY.get_sample_value("recsite_notifications_failed_total", {"channel": "email"}) == before + 1


def test_a_second_training_while_one_runs_stops_with_a_message_and_touches_nothing(watched_world):
    from core.locks import lock_acquire
    from recommender.services import TRAINING_LOCK

    lock_acquire(TRAINING_LOCK, holder="worker-host:812", stale_after=timedelta(hours=1))

    with pytest.raises(TrainingError, match=r"another training is running \(training is held by worker-host:812"):
        model_train(actor="test")

    assert not ModelVersion.objects.exists()
    assert not DataSnapshot.objects.exists()


def test_trainings_one_after_the_other_both_run(watched_world):
    first = model_train(actor="test")
    second = model_train(actor="test")

    assert (first.version, second.version) == (1, 2)


def test_a_training_whose_process_died_is_marked_failed_its_files_removed_and_queued_again(watched_world, settings):
    import socket
    import subprocess

    from core.locks import lock_acquire
    from core.models import NamedLock
    from recommender.services import TRAINING_LOCK, model_training_recover, model_version_register
    from recommender.snapshots import snapshot_create

    # A worker killed mid-training: its version registered, half an artifact written, the lock
    # still naming its (now dead) process on this host.
    orphan = model_version_register(rating_algorithm="svd", ranker="ease", snapshot=snapshot_create(), actor="schedule")
    leftover = Path(settings.MODEL_DIR) / f"v{orphan.version:04d}-abcdef"
    leftover.mkdir(parents=True)
    (leftover / "top.npy").write_bytes(b"half")
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_acquire(TRAINING_LOCK, holder=f"{socket.gethostname()}:{dead.pid}:abcd", stale_after=timedelta(hours=1))

    recovered = model_training_recover()

    orphan.refresh_from_db()
    assert recovered == [orphan]
    assert orphan.status == ModelVersion.Status.FAILED
    assert "TrainingInterrupted" in orphan.error
    assert not leftover.exists()
    assert NamedLock.objects.get(name=TRAINING_LOCK).holder == ""
    # Queued again at once (django-q2 runs it here synchronously): the next version trained.
    assert ModelVersion.objects.filter(version=orphan.version + 1, status=ModelVersion.Status.STABLE).exists()


def test_a_training_that_still_runs_is_not_recovered(watched_world):
    from core.locks import lock_acquire, lock_holder_new
    from recommender.services import TRAINING_LOCK, model_training_recover, model_version_register
    from recommender.snapshots import snapshot_create

    running = model_version_register(rating_algorithm="svd", ranker="ease", snapshot=snapshot_create(), actor="test")
    lock_acquire(TRAINING_LOCK, holder=lock_holder_new(), stale_after=timedelta(hours=1))

    assert model_training_recover() == []
    running.refresh_from_db()
    assert running.status == ModelVersion.Status.TRAINING
