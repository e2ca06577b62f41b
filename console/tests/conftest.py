from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from catalog.models import Viewer
from provenance.models import Recommendation
from provenance.rollup import recommendations_insert
from recommender.models import ModelVersion
from recommender.services import model_train
from releases.services import release_evaluate, release_start

# Debian's Chromium, installed by scripts/services.sh; Playwright's own browser download needs the internet.
CHROMIUM = "/usr/bin/chromium"


def serve(pool, version, *, count, viewer=1, items="a+1", latency_ms=5.0, status=200, at=None):
    at = at or timezone.now()
    recommendations_insert(
        [
            Recommendation(
                request_id=f"{pool}-{version.version}-{at.timestamp()}-{viewer}-{n}-{status}-{latency_ms}",
                viewer_id=viewer,
                model_version=version,
                pool=pool,
                strategy="personalized",
                items=items,
                status=status,
                latency_ms=latency_ms,
                served_at=at,
                host="test",
            )
            for n in range(count)
        ]
    )


@pytest.fixture
def released(trained_version, watched_world, settings):
    """A stable version, a candidate on the canary at 20 %, answers from both pools for viewer
    13 (the list names two real movies), and one check of the canary."""
    # Started here, by a person: where commits happen for real (a live server's tests), the
    # automatic start would have taken the candidate first.
    settings.RELEASE_AUTO_START = False
    candidate = model_train(actor="test")
    assert candidate.status == ModelVersion.Status.CANDIDATE
    release = release_start(candidate=candidate, interval_seconds=600, actor="ops")
    slugs = [movie.slug for movie in watched_world.movies[:2]]
    Viewer.objects.get_or_create(id=13, defaults={"gender": "F", "age": 30})
    now = timezone.now()  # after the release started: its check counts only its own step's traffic
    serve("stable", trained_version, count=80, viewer=13, items=",".join(slugs), at=now)
    serve("canary", candidate, count=60, viewer=13, items=",".join(reversed(slugs)), at=now + timedelta(seconds=1))
    release_evaluate(release=release, now=now + timedelta(seconds=2))
    release.refresh_from_db()
    return release


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between page actions are synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, django_user_model) -> Iterator[Page]:
    django_user_model.objects.create_superuser("ops", "ops@example.org", "a-password-for-tests")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-password-for-tests")
    page.click("input[type=submit]")
    expect(page.locator("#tile-stable")).to_be_visible()
    yield page
    page.close()
