import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from catalog.demographics import DIMENSIONS, group_order
from fairness.models import FairnessReport
from fairness.services import FairnessError, fairness_report_create
from recommender.models import ModelVersion


def test_a_report_covers_every_dimension_with_intervals_and_flags_small_groups(trained_version):
    report = fairness_report_create(version=trained_version, bootstrap=20, seed=3, min_group=10)

    quality = report.figures["quality"]
    assert set(quality["dimensions"]) == set(DIMENSIONS)
    gender = quality["dimensions"]["gender"]["groups"]
    assert set(gender) <= {"female", "male", "other", "unknown"}
    evaluated = report.figures["viewers_evaluated"]
    assert sum(row["viewers"] for row in gender.values()) >= evaluated
    for row in gender.values():
        value, low, high = row["ndcg@10"]
        assert low <= value <= high
        assert row["small"] == (row["viewers"] < 10)
    # Intersections are finer than either of their dimensions.
    assert len(quality["dimensions"]["gender x age"]["groups"]) >= len(quality["dimensions"]["age"]["groups"])


def test_small_groups_are_never_ranked(trained_version):
    report = fairness_report_create(version=trained_version, bootstrap=0, min_group=10_000)

    for section in report.figures["quality"]["dimensions"].values():
        assert section["disparity"]["ndcg@10"]["best"] is None
    assert report.flags == []


def test_representation_shares_add_up_to_one(trained_version):
    report = fairness_report_create(version=trained_version, bootstrap=0)

    for dimension, groups in report.figures["representation"].items():
        for what in ("viewers", "ratings", "watches"):
            assert sum(row.get(what, 0.0) for row in groups.values()) == pytest.approx(1.0, abs=1e-3), (dimension, what)


def test_exposure_and_diversity_describe_the_versions_lists(trained_version):
    diversity = fairness_report_create(version=trained_version, bootstrap=0).figures["diversity"]

    assert 0 < diversity["coverage"] <= 1
    assert 0 <= diversity["gini"] < 1
    assert diversity["never_recommended"] == round(diversity["catalogue"] * (1 - diversity["coverage"]))
    for row in diversity["groups"]["gender"].values():
        assert row["recommended_entropy"] >= 0
        assert 0 <= row["intra_list_diversity"] <= 1


def test_a_disparity_past_the_bound_is_flagged_and_notified(trained_version, settings, mailoutbox):
    settings.FAIRNESS_MIN_NDCG_RATIO = 1.0  # any difference at all is past it
    settings.NOTIFY_EMAILS = ["ops@example.org"]

    report = fairness_report_create(version=trained_version, bootstrap=0, min_group=1)

    assert report.flags
    assert any("NDCG@10" in flag for flag in report.flags)
    assert any("fairness: v1" in message.subject for message in mailoutbox)


def test_the_command_prints_a_summary_and_stores_the_report(trained_version, capsys):
    call_command("fairness_report", "--version", str(trained_version.version), "--bootstrap", "10")

    out = capsys.readouterr().out
    assert out.startswith(f"fairness of v{trained_version.version}:")
    assert "gender x occupation" in out
    assert "exposure: coverage" in out
    assert FairnessReport.objects.filter(model_version=trained_version, bootstrap=10).count() == 1


def test_the_command_says_what_is_missing(db):
    with pytest.raises(CommandError, match="no stable model version"):
        call_command("fairness_report")
    with pytest.raises(CommandError, match="no model version 9"):
        call_command("fairness_report", "--version", "9")


def test_a_version_without_an_artifact_gets_a_clear_error(db):
    version = ModelVersion.objects.create(version=4, status="failed", training_started_at="2026-11-30T00:00:00Z")

    with pytest.raises(FairnessError, match="v4 has no artifact"):
        fairness_report_create(version=version)


def test_the_report_page_draws_each_dimension_and_flags_small_groups(client, django_user_model, trained_version):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.org", "pw"))
    report = fairness_report_create(version=trained_version, bootstrap=10, min_group=10)
    url = reverse("admin:fairness_fairnessreport_change", args=[report.pk])

    for dimension in DIMENSIONS:
        page = client.get(url, {"dimension": dimension})
        assert page.status_code == 200
        assert [chart.key for chart in page.context["charts"]] == [
            "fairness-ndcg", "fairness-rmse", "fairness-representation", "fairness-diversity",
        ]  # fmt: skip
    page = client.get(url, {"dimension": "occupation"})
    assert "pairs of groups compared. A disparity is flagged only where its interval" in page.content.decode()
    ndcg = page.context["charts"][0]
    stored = report.figures["quality"]["dimensions"]["occupation"]["groups"]
    groups = {group: stored[group] for group in sorted(stored, key=lambda group: group_order("occupation", group))}
    assert list(groups) == sorted(stored, key=str.lower)  # occupations: alphabetical, case aside
    assert ndcg.labels == [f"{group}{' (small)' if row['small'] else ''}" for group, row in groups.items()]
    assert ndcg.series[0].values == [row["ndcg@10"][0] for row in groups.values()]
    assert ndcg.series[0].errors == [(row["ndcg@10"][1], row["ndcg@10"][2]) for row in groups.values()]
    assert ndcg.x_title == "group (occupation)"
    assert ndcg.config()["data"]["datasets"][0]["errorBars"][0] == list(ndcg.series[0].errors[0])
    assert "small group: not compared" in page.content.decode()
    version_page = client.get(reverse("admin:recommender_modelversion_change", args=[trained_version.pk]))
    assert url in version_page.content.decode()


def test_training_enqueues_the_report_by_name(settings, watched_world, django_capture_on_commit_callbacks):
    from recommender.services import model_train

    settings.FAIRNESS_AFTER_TRAINING = True
    settings.FAIRNESS_BOOTSTRAP = 5
    with django_capture_on_commit_callbacks(execute=True):
        version = model_train(actor="test")

    report = FairnessReport.objects.get(model_version=version)
    assert report.figures["viewers_evaluated"] > 0


@pytest.mark.engine  # a JSON comparison: SQLite and MariaDB store JSON differently
def test_the_report_list_filters_reports_with_a_flag(client, django_user_model, trained_version, settings):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.org", "pw"))
    settings.FAIRNESS_MIN_NDCG_RATIO = 1.0
    flagged = fairness_report_create(version=trained_version, bootstrap=0, min_group=1)
    quiet = fairness_report_create(version=trained_version, bootstrap=0, min_group=1)
    FairnessReport.objects.filter(pk=quiet.pk).update(flags=[])  # as a report with nothing past the bounds
    assert flagged.flags
    url = reverse("admin:fairness_fairnessreport_changelist")

    def listed(value):
        page = client.get(url, {"flagged": value}).content.decode()
        return {pk for pk in (quiet.pk, flagged.pk) if f"/fairnessreport/{pk}/change/" in page}

    assert listed("yes") == {flagged.pk}
    assert listed("no") == {quiet.pk}
