"""The console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium,
installed by scripts/services.sh; Playwright's own browser download needs the internet)."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from fairness.feedback import feedback_windows_compute
from fairness.served import served_report_create
from fairness.services import fairness_report_create
from provenance.models import Recommendation

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


def _charts_drawn(page: Page) -> list[tuple[str, bool]]:
    """Each canvas's key and whether Chart.js drew something on it (any pixel not blank)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas[data-chart]')).map(canvas => {
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let drawn = false;
            for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { drawn = true; break; } }
            return [canvas.dataset.chart, drawn && canvas.dataset.drawn === 'true'];
        })"""
    )


def test_every_page_opens_and_every_chart_draws(page, live_server, released):
    report = fairness_report_create(version=released.candidate, bootstrap=10, min_group=5)
    now = timezone.now()
    served = served_report_create(start=now - timedelta(days=1), end=now + timedelta(minutes=1), bootstrap=10)
    feedback_windows_compute(
        window=timedelta(minutes=1), since=now - timedelta(minutes=3), until=now + timedelta(minutes=2)
    )
    # Logging in landed on the overview before the answers existed, and its traffic figures are
    # kept for a minute: start from fresh ones.
    cache.clear()
    pages = [
        reverse("admin:fairness_fairnessreport_change", args=[report.pk]),
        reverse("admin:fairness_servedfairnessreport_change", args=[served.pk]),
        reverse("admin:fairness_feedbackwindow_changelist"),
        reverse("admin:index"),
        reverse("admin:catalog_viewer_change", args=[13]),
        reverse("admin:recommender_modelversion_change", args=[released.candidate.pk]),
        reverse("admin:console_compare"),
        reverse("admin:releases_release_change", args=[released.pk]),
        reverse("admin:provenance_recommendation_changelist"),
        reverse("admin:catalog_movie_changelist"),
    ]
    drawn: dict[str, bool] = {}
    for path in pages:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None, path
        assert response.status == 200, path
        drawn.update(_charts_drawn(page))

    expected = {
        "traffic-requests", "traffic-p99", "viewer-activity", "compare-ndcg", "release-weight", "fairness-ndcg",
        "served-follow", "served-shares", "feedback-exposure",
    }  # fmt: skip
    assert expected <= set(drawn)
    assert [key for key, ok in drawn.items() if not ok] == []


def test_from_a_viewer_to_an_answer_to_its_model_snapshot_and_release(page, live_server, released):
    answer = Recommendation.objects.filter(pool="canary", viewer_id=13).order_by("-served_at").first()

    page.goto(f"{live_server.url}{reverse('admin:catalog_viewer_change', args=[13])}")
    page.click(f"#served-lists a[href$='/recommendation/{answer.pk}/change/']")
    expect(page.locator("#answer-items tbody tr")).to_have_count(len(answer.item_list))

    page.click("#link-version")
    expect(page.locator("#gate")).to_be_visible()
    expect(page.locator("h1, h2").first).to_be_visible()
    page.go_back()
    page.click("#link-snapshot")
    expect(page.locator("body")).to_contain_text(released.candidate.snapshot.content_hash[:16])
    page.go_back()
    page.click("#link-release")
    expect(page.locator(".check-table").first).to_be_visible()


def test_pausing_from_the_overview_asks_why_records_it_and_comes_back(page, live_server, released):
    page.goto(f"{live_server.url}{reverse('admin:index')}")

    page.click("a[data-action=pause]")
    expect(page.locator("#decision-effect")).to_contain_text("checks stop until it is resumed")
    page.click("input[data-confirm=pause]")  # no reason typed: the browser holds the form back
    released.refresh_from_db()
    assert released.state == "canary"
    page.fill("#decision-reason", "latency spike on the canary's host")
    page.click("input[data-confirm=pause]")

    expect(page.locator(".messagelist")).to_contain_text("pause done")
    expect(page.locator("#tile-release")).to_contain_text("paused")
    expect(page.locator("a[data-action=resume]")).to_be_visible()
    released.refresh_from_db()
    assert released.state == "paused"
    assert released.events.order_by("-at").first().reason == "latency spike on the canary's host"


def test_the_abort_button_is_legible(page, live_server, released):
    page.goto(f"{live_server.url}{reverse('admin:index')}")

    colours = page.eval_on_selector(
        "a[data-action=abort]", "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )

    assert colours == ["rgb(255, 255, 255)", "rgb(186, 33, 33)"]  # white on red, 6.4:1


def test_a_console_table_sorts_by_a_column_both_ways(page, live_server, released):
    report = fairness_report_create(version=released.candidate, bootstrap=10, min_group=5)
    url = reverse("admin:fairness_fairnessreport_change", args=[report.pk])
    page.goto(f"{live_server.url}{url}?dimension=occupation")
    viewers = page.locator("#groups thead th", has_text="viewers").first

    def column() -> list[int]:
        return [
            int(text.replace(",", "")) for text in page.locator("#groups tbody tr td:nth-child(2)").all_inner_texts()
        ]

    natural = column()
    viewers.locator("button").click()
    expect(viewers).to_have_attribute("aria-sort", "ascending")
    assert column() == sorted(natural)
    viewers.locator("button").click()
    expect(viewers).to_have_attribute("aria-sort", "descending")
    assert column() == sorted(natural, reverse=True)
    assert len(set(natural)) > 1  # there was an order to change


def test_the_release_page_reloads_itself_when_the_release_moves(page, live_server, released, settings):
    from releases.services import release_pause

    settings.CONSOLE_LIVE_SECONDS = 2
    page.goto(f"{live_server.url}{reverse('admin:releases_release_change', args=[released.pk])}")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-live-polled", re.compile(r"^[1-9]"))
    expect(status).to_contain_text("answers in the last minute")
    release_pause(release=released, actor="ops", reason="a decision taken elsewhere")

    # No one pressed anything on this page: it saw the change and reloaded to show it.
    expect(page.locator("#content .module h2").first).to_contain_text("paused", timeout=10_000)
    expect(page.locator("#decisions")).to_contain_text("a decision taken elsewhere")
