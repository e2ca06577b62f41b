"""Every console page in Chromium at 1366 px: nothing wider than the window, nothing hidden in
an inner scroll box, and no serious or critical accessibility violation by axe-core (vendored
from its npm package in ``vendor/axe-core``; see its SOURCE.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page

from catalog.models import Movie
from fairness.feedback import feedback_windows_compute
from fairness.served import served_report_create
from fairness.services import fairness_report_create
from provenance.models import Recommendation
from recommender.models import DataSnapshot
from stream.models import IngestRun, RejectedLine
from stream.services import stream_ingest_batch

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


def _every_page(released) -> list[str]:
    """One of each kind of console page, with data on it."""
    report = fairness_report_create(version=released.candidate, bootstrap=10, min_group=5)
    now = timezone.now()
    served = served_report_create(start=now - timedelta(days=1), end=now + timedelta(minutes=1), bootstrap=10)
    feedback_windows_compute(
        window=timedelta(minutes=1), since=now - timedelta(minutes=3), until=now + timedelta(minutes=2)
    )
    stream_ingest_batch(lines=[b"2023-10-01T12:00:00,5,GET /rate/a+movie=9", b"not a line"], source="test")
    IngestRun.objects.create(source="file:test.log", started_at=now, finished_at=now, lines=10, status="finished")
    answer = Recommendation.objects.filter(pool="canary").first()
    cache.clear()
    pk = released.pk
    return [
        reverse("admin:index"),
        reverse("admin:releases_release_changelist"),
        reverse("admin:releases_release_change", args=[pk]),
        reverse("admin:releases_release_act", args=[pk, "abort"]),
        reverse("admin:releases_release_start", args=[released.candidate.pk]),
        reverse("admin:releases_analysisrun_changelist"),
        reverse("admin:recommender_modelversion_changelist"),
        reverse("admin:recommender_modelversion_change", args=[released.candidate.pk]),
        reverse("admin:recommender_modelversion_served_at") + f"?at={now:%Y-%m-%d %H:%M:%S}",
        reverse("admin:recommender_datasnapshot_changelist"),
        reverse("admin:recommender_datasnapshot_change", args=[DataSnapshot.objects.first().pk]),
        reverse("admin:console_compare"),
        reverse("admin:provenance_recommendation_changelist"),
        reverse("admin:provenance_recommendation_change", args=[answer.pk]),
        reverse("admin:fairness_fairnessreport_changelist"),
        reverse("admin:fairness_fairnessreport_change", args=[report.pk]),
        reverse("admin:fairness_servedfairnessreport_changelist"),
        reverse("admin:fairness_servedfairnessreport_change", args=[served.pk]),
        reverse("admin:fairness_feedbackwindow_changelist"),
        reverse("admin:catalog_viewer_changelist"),
        reverse("admin:catalog_viewer_change", args=[13]),
        reverse("admin:catalog_movie_changelist"),
        reverse("admin:catalog_movie_change", args=[Movie.objects.first().pk]),
        reverse("admin:catalog_rating_changelist"),
        reverse("admin:catalog_watch_changelist"),
        reverse("admin:stream_ingestrun_changelist"),
        reverse("admin:stream_rejectedline_changelist"),
        reverse("admin:stream_rejectedline_change", args=[RejectedLine.objects.first().pk]),
        reverse("admin:stream_observedrecommendation_changelist"),
        reverse("admin:serving_artifactfault_changelist"),
        reverse("admin:django_q_schedule_changelist"),
    ]


def _overflow(page: Page) -> dict[str, Any]:
    """How far the page is wider than the window, and every element that scrolls sideways."""
    return page.evaluate(
        """() => {
            const wide = document.documentElement.scrollWidth - window.innerWidth;
            const boxes = Array.from(document.querySelectorAll('body *')).filter(e => {
                const style = getComputedStyle(e);
                return ['auto', 'scroll'].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1
                    && e.tagName !== 'TEXTAREA' && e.tagName !== 'PRE';
            }).map(e => (e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className)
                + ' ' + e.scrollWidth + '>' + e.clientWidth);
            return {wide: wide, boxes: boxes};
        }"""
    )


def _serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.filter(v => ['serious', 'critical'].includes(v.impact)).map(
                v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; '));
        }"""
    )
    return list(found)


def test_every_console_page_fits_1366_px_and_has_no_serious_accessibility_violation(page, live_server, released):
    problems: dict[str, list[str]] = {}
    for path in _every_page(released):
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None, path
            assert response.status == 200, path
            overflow = _overflow(page)
            found = [f"{theme}: {violation}" for violation in _serious_violations(page)]
            if theme == "light":
                if overflow["wide"] > 0:
                    found.append(f"{overflow['wide']} px wider than the window")
                found += [f"inner scroll box {box}" for box in overflow["boxes"]]
            if found:
                problems.setdefault(path, []).extend(found)
    assert problems == {}
