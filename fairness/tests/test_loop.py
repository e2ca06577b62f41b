import pytest
from django.core.management import CommandError, call_command

from fairness.loop import LoopSettings, loop_run
from provenance.models import Recommendation
from recommender.models import ModelVersion


def test_a_day_of_the_loop_serves_every_viewer_ingests_what_they_watched_and_retrains(db, files):
    days = loop_run(settings=LoopSettings(seed=3, viewers=60, movies=50, days=2, exploration=3), directory=files)

    assert len(days) == 2
    assert Recommendation.objects.filter(host="simulate_loop").count() == 120  # every viewer, every day
    explored = Recommendation.objects.exclude(explored="")
    assert explored.exists()
    assert all(set(row.explored_list) <= set(row.item_list) for row in explored)
    assert ModelVersion.objects.count() == 3  # the first model, then one a day
    for day in days:
        assert 0 < day["coverage"] <= 1
        assert 0 <= day["gini"] < 1
        assert 0 <= day["followed_share"] <= 1
        assert 0 <= day["ndcg@10"] <= 1
        assert day["explored"] > 0


def test_without_exploration_no_list_is_explored(db, files):
    days = loop_run(settings=LoopSettings(seed=5, viewers=40, movies=40, days=1), directory=files)

    assert days[0]["explored"] == 0
    assert not Recommendation.objects.exclude(explored="").exists()


@pytest.mark.slow
def test_the_command_compares_the_two_arms(db, capsys):
    call_command("simulate_loop", "--days", "1", "--viewers", "30", "--movies", "30", "--exploration", "3")

    out = capsys.readouterr().out
    assert "without exploration" in out
    assert "with 3 slots" in out
    assert "exposure Gini" in out
    assert "NDCG@10 vs hidden tastes" in out


def test_the_command_refuses_bad_sizes(db):
    with pytest.raises(CommandError, match="--days must be between 1 and 60"):
        call_command("simulate_loop", "--days", "0")
    with pytest.raises(CommandError, match="--exploration must be between 0 and 10"):
        call_command("simulate_loop", "--exploration", "11")
