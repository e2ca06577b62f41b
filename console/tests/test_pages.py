import csv
import io
import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from catalog.models import Movie, Viewer
from provenance.models import Recommendation
from recommender.models import ModelVersion
from releases.models import Release

from .conftest import serve

# The database engine shapes what this checks: it runs on SQLite and on MariaDB.
pytestmark = pytest.mark.engine


@pytest.fixture
def ops(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.org", "pw"))
    return client


def test_chart_js_is_vendored_with_its_licence():
    script = finders.find("charts/vendor/chart.js/chart.umd.min.js")
    licence = finders.find("charts/vendor/chart.js/LICENSE.md")

    assert script is not None
    assert licence is not None
    with open(script, encoding="utf-8") as handle:
        assert "Chart.js v4.6.1" in handle.read(200)
    with open(licence, encoding="utf-8") as handle:
        assert "MIT License" in handle.read()


def test_the_overview_says_what_serves_and_draws_traffic(ops, released):
    page = ops.get(reverse("admin:index"))
    text = page.content.decode()

    assert page.status_code == 200
    assert f"v{released.candidate.version}</a> at 20%" in text
    assert "step 1 of 1" in text
    assert 'data-chart="traffic-requests"' in text
    assert 'id="traffic-requests"' in text
    assert 'data-action="promote"' in text
    assert 'data-action="pause"' in text
    assert 'data-action="resume"' not in text
    assert "View site" not in text


def test_the_overview_tells_how_to_begin_on_an_empty_database(ops):
    text = ops.get(reverse("admin:index")).content.decode()

    assert "Train a model" in text
    assert "To start a release" in text
    assert "No answers in this period" in text


def test_a_button_on_the_overview_acts_and_comes_back_with_a_confirmation(ops, released):
    url = reverse("admin:releases_release_act", args=[released.pk, "pause"])

    response = ops.post(url, {"next": reverse("admin:index"), "reason": "looking"}, follow=True)

    released.refresh_from_db()
    assert released.state == Release.State.PAUSED
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert "pause done" in response.content.decode()


def test_a_decision_is_confirmed_on_a_page_that_says_what_it_will_do(ops, released):
    url = reverse("admin:releases_release_act", args=[released.pk, "abort"])

    page = ops.get(url, {"next": reverse("admin:index")})

    text = page.content.decode()
    assert page.status_code == 200
    assert f"v{released.candidate.version} is rejected" in text
    assert 'name="reason"' in text
    assert "required" in text
    released.refresh_from_db()
    assert released.state == Release.State.CANARY  # looking is not deciding


def test_a_decision_without_a_reason_decides_nothing_and_asks_again(ops, released):
    url = reverse("admin:releases_release_act", args=[released.pk, "abort"])

    response = ops.post(url, {"reason": "   "})

    released.refresh_from_db()
    assert response.status_code == 400
    assert "Say why" in response.content.decode()
    assert released.state == Release.State.CANARY


def test_a_decision_that_is_not_possible_now_says_so(ops, released):
    url = reverse("admin:releases_release_act", args=[released.pk, "resume"])

    response = ops.get(url, follow=True)

    assert "resume is not possible now" in response.content.decode()


def test_a_release_is_started_with_the_steps_and_thresholds_chosen(ops, db):
    from django.utils import timezone

    candidate = ModelVersion.objects.create(
        version=4, status=ModelVersion.Status.CANDIDATE, training_started_at=timezone.now()
    )
    url = reverse("admin:releases_release_start", args=[candidate.pk])
    form = ops.get(url).context["form"]
    data = {name: ("on" if value is True else value) for name, value in form.initial.items()}
    data = {**{name: field.initial for name, field in form.fields.items()}, **data}
    data = {name: value for name, value in data.items() if value is not False}

    refused = ops.post(url, {**data, "steps": "50,20"})
    started = ops.post(url, {**data, "steps": "5,25,50", "max_p99_ms": "250", "follow_required_on_last_step": "on"})

    assert refused.status_code == 400
    assert "increasing weights" in refused.content.decode()
    release = Release.objects.get(candidate=candidate)
    assert started["Location"] == reverse("admin:releases_release_change", args=[release.pk])
    assert (release.steps, release.weight) == ([5, 25, 50], 5)
    assert release.thresholds["max_p99_ms"] == 250.0
    assert release.thresholds["follow_required_on_last_step"] is True


def test_a_version_links_to_its_releases_and_a_candidate_to_starting_one(ops, released):
    page = ops.get(reverse("admin:recommender_modelversion_change", args=[released.candidate.pk]))

    text = page.content.decode()
    assert reverse("admin:releases_release_change", args=[released.pk]) in text
    assert 'id="version-releases"' in text


def test_the_release_page_says_where_it_is_once_and_whether_behaviour_was_judged(ops, released):
    # The fixture's one check had 80 and 60 answers: too few to judge what viewers did.
    text = ops.get(reverse("admin:releases_release_change", args=[released.pk])).content.decode()

    assert "1 of 1 (20%)" in text
    assert "Step index" not in text
    assert "not judged in 1 of 1 checks" in text
    assert "rested on latency and success alone" in text
    assert "No check has run yet" not in text


def test_the_site_root_leads_to_the_console(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_a_button_never_redirects_off_the_site(ops, released):
    url = reverse("admin:releases_release_act", args=[released.pk, "pause"])

    response = ops.post(url, {"next": "https://evil.example/", "reason": "checking"})

    assert response["Location"] == reverse("admin:releases_release_change", args=[released.pk])


def test_searching_a_viewer_id_finds_only_that_viewers_answers(ops, db):
    version = ModelVersion.objects.create(version=1, training_started_at="2026-11-30T00:00:00Z")
    serve("stable", version, count=2, viewer=13, items="alien+1979")
    serve("stable", version, count=3, viewer=7, items="hackers+2013,alien+1979")

    page = ops.get(reverse("admin:provenance_recommendation_changelist"), {"q": "13"})
    by_movie = ops.get(reverse("admin:provenance_recommendation_changelist"), {"q": "hackers+2013"})

    assert list(page.context["cl"].result_list.values_list("viewer_id", flat=True)) == [13, 13]
    assert by_movie.context["cl"].result_count == 3


def test_the_answer_page_shows_the_ranked_list_and_its_lineage(ops, released):
    answer = Recommendation.objects.filter(pool="canary").first()
    first = Movie.objects.get(slug=answer.item_list[0])

    text = ops.get(reverse("admin:provenance_recommendation_change", args=[answer.pk])).content.decode()

    assert "<td>1</td>" in text
    assert first.title in text
    assert reverse("admin:recommender_modelversion_change", args=[released.candidate.pk]) in text
    assert reverse("admin:recommender_datasnapshot_change", args=[released.candidate.snapshot_id]) in text
    assert reverse("admin:releases_release_change", args=[released.pk]) in text
    assert released.candidate.code_revision in text


@pytest.mark.engine  # the release of each answer is a correlated subquery with date arithmetic
def test_an_answer_served_just_after_a_promotion_keeps_its_release_and_each_its_status_then(ops, released):
    from datetime import timedelta

    from releases.services import release_promote

    on_canary = released.candidate.status_changes.get(to_status="canary").at
    serve("canary", released.candidate, count=1, viewer=14, at=on_canary)  # before the promotion
    release_promote(release=released, actor="ops", reason="looks good")
    released.refresh_from_db()
    # The canary pool has not yet looked for the new stable version: its next answer is the
    # candidate's, a second after the release ended.
    serve("canary", released.candidate, count=1, viewer=13, at=released.finished_at + timedelta(seconds=1))
    late = Recommendation.objects.filter(pool="canary").latest("served_at")

    text = ops.get(reverse("admin:provenance_recommendation_change", args=[late.pk])).content.decode()

    assert reverse("admin:releases_release_change", args=[released.pk]) in text
    assert "served outside any release" not in text
    assert "served after it promoted at" in text
    assert "stable when served" in text  # promoted a second before; the pool said canary
    during = Recommendation.objects.get(pool="canary", viewer_id=14)
    text = ops.get(reverse("admin:provenance_recommendation_change", args=[during.pk])).content.decode()
    assert "canary when served, stable now" in text


def test_the_viewer_page_tells_the_viewers_story_and_cannot_edit_it(ops, released):
    url = reverse("admin:catalog_viewer_change", args=[13])

    text = ops.get(url).content.decode()

    assert 'data-chart="viewer-activity"' in text
    assert text.count("/admin/provenance/recommendation/") >= 140  # every list served, linked
    assert 'name="_save"' not in text
    assert ops.post(url, {"id": 99}).status_code == 403
    assert Viewer.objects.filter(pk=13).exists()


def test_the_version_page_shows_gate_and_metrics_as_tables(ops, released):
    text = ops.get(reverse("admin:recommender_modelversion_change", args=[released.candidate.pk])).content.decode()

    assert 'id="gate"' in text
    assert "RMSE below the bound" in text
    assert "NDCG@10 not below popularity&#x27;s" in text
    # The model selection of its training, as stored: every candidate, the chosen one marked.
    assert 'id="selection"' in text
    assert text.count("<strong>chosen</strong>") == 1
    assert len(released.candidate.metrics["selection"]["candidates"]) >= 5
    assert 'id="metrics"' in text
    assert "NDCG@10" in text
    assert "small group" in text  # the simulated world's groups are small: flagged
    assert "<pre>" not in text


def test_comparing_versions_draws_their_metrics(ops, released):
    versions = f"{released.stable.version},{released.candidate.version}"

    page = ops.get(reverse("admin:console_compare"), {"versions": versions})

    assert page.status_code == 200
    keys = [chart.key for chart in page.context["charts"]]
    assert keys == ["compare-rmse", "compare-ndcg", "compare-coverage", "compare-training"]
    assert page.context["charts"][0].series[0].values == [
        round(released.stable.rmse, 4),
        round(released.candidate.rmse, 4),
    ]


def test_a_bad_comparison_request_says_what_is_wrong(ops, db):
    page = ops.get(reverse("admin:console_compare"), {"versions": "3,x"})

    assert "&#x27;x&#x27; is not a version number" in page.content.decode()


def test_the_release_page_has_a_kayenta_table_per_check(ops, released):
    text = ops.get(reverse("admin:releases_release_change", args=[released.pk])).content.decode()

    assert "check-table" in text
    assert "p99 latency (ms)" in text
    assert "watched after recommended" in text
    assert 'data-chart="release-weight"' in text


@pytest.mark.engine  # the release of each answer is a correlated subquery with date arithmetic
def test_the_provenance_export_streams_the_join_for_a_filter(ops, released):
    response = ops.get(reverse("admin:console_provenance_csv"), {"pool": "canary", "viewer": 13})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert len(rows) == 60
    assert {row["model_version"] for row in rows} == {str(released.candidate.version)}
    assert {row["snapshot_hash"] for row in rows} == {released.candidate.snapshot.content_hash}
    assert {row["release"] for row in rows} == {str(released.pk)}


def test_the_viewer_page_and_a_searched_answers_list_link_to_their_export(ops, released):
    viewer = ops.get(reverse("admin:catalog_viewer_change", args=[13])).content.decode()
    listed = ops.get(reverse("admin:provenance_recommendation_changelist"), {"q": "13", "pool__exact": "canary"})

    export = reverse("admin:console_provenance_csv")
    assert f'href="{export}?viewer=13"' in viewer
    assert f'href="{export}?viewer=13&amp;pool=canary"' in listed.content.decode()


def test_a_bad_export_filter_is_refused_with_the_reason(ops, db):
    response = ops.get(reverse("admin:console_provenance_csv"), {"viewer": "abc", "since": "yesterday"})

    assert response.status_code == 400
    assert "viewer: Enter a whole number." in response.content.decode()
    assert "since: Enter a valid date/time." in response.content.decode()


def test_list_pages_take_the_same_queries_however_many_rows(ops, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pages = ("provenance_recommendation", "catalog_viewer", "catalog_movie", "recommender_modelversion")

    def queries(rows: int) -> dict[str, int]:
        for viewer in range(Viewer.objects.count(), rows):
            Viewer.objects.create(id=viewer + 1)
            serve("stable", version, count=1, viewer=viewer + 1)
            ModelVersion.objects.create(version=viewer + 2, training_started_at="2026-11-30T00:00:00Z")
        counted = {}
        for name in pages:
            with CaptureQueriesContext(connection) as captured:
                assert ops.get(reverse(f"admin:{name}_changelist")).status_code == 200
            counted[name] = len(captured)
        return counted

    version = ModelVersion.objects.create(version=1, training_started_at="2026-11-30T00:00:00Z")
    few = queries(5)
    many = queries(60)

    assert many == few  # no query per row: a page of 60 rows asks what a page of 5 asks


def _staff(client, django_user_model, *permissions: str):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("staff", "staff@example.org", "pw", is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    return client


def test_the_overview_shows_staff_without_permissions_nothing_of_recsites_state(client, django_user_model, released):
    text = _staff(client, django_user_model).get(reverse("admin:index")).content.decode()

    assert 'id="nothing-shown"' in text
    for block in ("tile-stable", "tile-canary", "tile-release", "tile-queue", "traffic-requests", 'id="schedules"'):
        assert block not in text
    assert f">v{released.candidate.version}</a>" not in text
    assert "NDCG" not in text


def test_each_block_of_the_overview_needs_the_view_permission_of_what_it_shows(client, django_user_model, released):
    viewer = _staff(client, django_user_model, "recommender.view_modelversion")
    text = viewer.get(reverse("admin:index")).content.decode()

    assert 'id="tile-stable"' in text
    assert "NDCG@10" in text
    for block in ("tile-release", "tile-queue", "traffic-requests", 'id="schedules"', "Served answers"):
        assert block not in text


def test_a_damaged_artifact_found_by_a_server_is_said_on_the_overview(ops, released):
    from django.utils import timezone

    from serving.models import ArtifactFault

    stable = ModelVersion.objects.get(status=ModelVersion.Status.STABLE)
    ArtifactFault.objects.create(
        model_version=released.candidate, host="web-1", pool="canary", detected_at=timezone.now(),
        detail="top.npy does not match its sha256", stand_in=stable,
    )  # fmt: skip

    text = ops.get(reverse("admin:index")).content.decode()

    assert f"v{released.candidate.version}'s artifact is damaged on web-1" in text
    assert f"v{stable.version} answers instead" in text
    assert ops.get(reverse("admin:serving_artifactfault_changelist")).status_code == 200


def test_stored_json_reads_as_names_and_values_never_as_json(ops, released):
    movie = Movie.objects.exclude(genres=[]).first()
    release_page = ops.get(reverse("admin:releases_release_change", args=[released.pk])).content.decode()
    movie_page = ops.get(reverse("admin:catalog_movie_change", args=[movie.pk])).content.decode()

    assert '<table class="console-kv">' in release_page
    assert "<th>max_p99_ms</th>" in release_page  # the thresholds, one row each
    shown = re.sub(r"<script.*?</script>", "", release_page, flags=re.S)  # the charts' own data is JSON
    assert '{"' not in shown  # no JSON object shown: thresholds, a check's figures
    assert movie.genres[0] in movie_page
    assert f'["{movie.genres[0]}' not in movie_page


def test_a_movie_links_to_the_answers_that_listed_it_and_a_snapshot_to_its_versions(ops, released):
    movie = Movie.objects.get(slug=Recommendation.objects.filter(viewer_id=13).first().item_list[0])
    snapshot = released.candidate.snapshot

    movie_page = ops.get(reverse("admin:catalog_movie_change", args=[movie.pk])).content.decode()
    answers = ops.get(reverse("admin:provenance_recommendation_changelist"), {"q": movie.slug})
    snapshot_page = ops.get(reverse("admin:recommender_datasnapshot_change", args=[snapshot.pk])).content.decode()

    assert 'id="movie-answers"' in movie_page
    assert answers.context["cl"].result_count >= 140  # every answer to viewer 13 listed it
    assert reverse("admin:recommender_modelversion_change", args=[released.candidate.pk]) in snapshot_page
    assert f"v{released.candidate.version} (canary)" in snapshot_page


def test_the_live_state_moves_when_the_release_steps_and_not_when_answers_arrive(ops, released):
    from releases.services import release_pause

    url = reverse("admin:console_live")
    first = ops.get(url).json()
    assert first["release"]["id"] == released.pk
    assert first["release"]["state"] == "canary"
    assert first["stable"] is not None
    assert first["canary"] == released.candidate.version
    serve("stable", released.stable, count=5)
    again = ops.get(url).json()
    assert again["changed"] == first["changed"]
    assert again["answers_last_minute"] == first["answers_last_minute"] + 5
    release_pause(release=released, actor="ops", reason="checking a dashboard")
    paused = ops.get(f"{url}?release={released.pk}").json()
    assert paused["release"]["state"] == "paused"
    assert paused["changed"] != first["changed"]


def test_the_live_state_refuses_a_bad_release_id_and_anyone_who_may_not_see_releases(
    ops, released, client, django_user_model
):
    response = ops.get(reverse("admin:console_live") + "?release=abc")
    assert response.status_code == 400
    assert "release must be" in response.json()["error"]
    ops.logout()
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:console_live")).status_code == 403


def test_the_overview_and_the_release_page_carry_the_live_line(ops, released):
    for path in (reverse("admin:index"), reverse("admin:releases_release_change", args=[released.pk])):
        text = ops.get(path).content.decode()
        assert 'id="live-status"' in text, path
        assert "data-live-changed=" in text, path
