"""The simulated platform played live against a running recsite (Django's live server)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Watch
from provenance.models import Recommendation
from provenance.recorder import recorder
from provenance.selectors import answers_followed, served_answers
from recommender.models import ModelVersion
from stream.models import IngestRun, ObservedRecommendation

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_player_asks_the_running_service_and_its_viewers_watch_what_it_answers(
    transactional_db, trained_version, watched_world, live_server, capsys
):
    from datetime import timedelta

    assert trained_version.status == ModelVersion.Status.STABLE
    recorder.clear()
    watches_before = Watch.objects.count()
    call_command(
        "play", "--url", live_server.url, "--seed", "3", "--viewers", "100", "--movies", "60",
        "--requests", "40", "--rate", "40", "--speed", "6000",
    )  # fmt: skip
    # Every request was answered by the service itself and recorded by it, as in production
    # (the live server runs in this process: its recorder writes its queue now).
    assert recorder.flush()
    served = Recommendation.objects.filter(model_version=trained_version, status=200)
    assert served.count() == 40
    # The platform's log of those requests, and the viewings that followed, were ingested.
    run = IngestRun.objects.get(source="play")
    assert run.status == IngestRun.Status.FINISHED
    assert run.rejected == 0
    assert run.recommendations == 40
    assert ObservedRecommendation.objects.filter(status=200).count() >= 40
    assert Watch.objects.count() > watches_before
    # Viewers chose by their tastes from the lists: some answers were followed by a watch of one
    # of their movies, after they were served.
    first = served.order_by("served_at").first().served_at
    answers = served_answers(start=first, end=first + timedelta(minutes=5))
    assert answers_followed(answers, within=timedelta(minutes=5)).sum() > 0
    assert "played 40 requests (40 answered, 0 failed)" in capsys.readouterr().out


def test_a_service_that_is_away_is_logged_as_the_platform_logs_a_timeout(db, capsys):
    call_command(
        "play", "--url", "http://127.0.0.1:9", "--viewers", "30", "--movies", "30",
        "--requests", "3", "--rate", "100", "--speed", "6000",
    )  # fmt: skip
    assert "played 3 requests (0 answered, 3 failed)" in capsys.readouterr().out
    assert ObservedRecommendation.objects.filter(status=504).count() == 3
    assert Recommendation.objects.count() == 0


@pytest.mark.parametrize(
    "arguments",
    [["--rate", "0"], ["--speed", "-1"], ["--requests", "0"], ["--out", "/tmp/x.log"], ["--movies", "5"]],
)
def test_bad_play_options_are_refused_with_a_clear_error(db, arguments):
    with pytest.raises(CommandError):
        call_command("play", *arguments)
