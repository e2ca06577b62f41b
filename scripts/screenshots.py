"""Screenshots of the running demo's console at 1366 px, for docs/ and the README.

    make demo                                   # in one terminal, from a fresh clone
    DEMO_ADMIN_PASSWORD=... .venv/bin/python scripts/screenshots.py [--url http://127.0.0.1:8082]

Playwright drives Debian's Chromium (/usr/bin/chromium). It waits until the demo shows what
the pictures are of: a canary release in progress, and feedback-loop windows with answers in
them; it takes the fairness report of the newest version that has a flag, or the newest report
when none has (and says so). Each picture is the whole page, 1366 px wide.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def _login(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def _live(page: Page, url: str) -> dict[str, object]:
    response = page.request.get(f"{url}/admin/live.json")
    return dict(json.loads(response.text()))


def _wait(what: str, ready: object, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what} after {seconds:.0f} s")
        print(f"waiting for {what}…", file=sys.stderr)
        time.sleep(15)


def _first_link(page: Page, url: str, path: str, selector: str) -> str | None:
    page.goto(f"{url}{path}")
    link = page.locator(selector).first
    return link.get_attribute("href") if link.count() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8082")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--wait", type=float, default=3600, help="longest wait for a canary and windows (s)")
    options = parser.parse_args()
    password = os.environ.get("DEMO_ADMIN_PASSWORD")
    if not password:
        sys.exit("set DEMO_ADMIN_PASSWORD to the demo's admin password (make demo prints it)")
    with urlopen(f"{options.url}/healthz", timeout=5) as response:  # fails clearly when the demo is not up
        response.read()
    options.out.mkdir(parents=True, exist_ok=True)
    url = options.url.rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        _login(page, url, options.username, password)

        def in_canary() -> bool:
            release = _live(page, url).get("release")
            return isinstance(release, dict) and release.get("state") == "canary" and bool(release.get("last_check"))

        _wait("a canary release with a check", in_canary, seconds=options.wait)
        shots: list[tuple[str, str]] = [("overview-canary", "/admin/")]
        release = _live(page, url)["release"]
        assert isinstance(release, dict)
        shots.append(("release-mid-release", f"/admin/releases/release/{release['id']}/change/"))

        flagged = _first_link(page, url, "/admin/fairness/fairnessreport/?flagged=yes", "#result_list tbody a")
        newest = _first_link(page, url, "/admin/fairness/fairnessreport/", "#result_list tbody a")
        report = flagged or newest
        if report is None:
            sys.exit("no fairness report yet")
        if flagged is None:
            print("no fairness report has a flag: taking the newest", file=sys.stderr)
        shots.append(("fairness-report", report))

        def windows_with_answers() -> bool:
            page.goto(f"{url}/admin/fairness/feedbackwindow/")
            return page.locator("canvas[data-chart]").count() > 0 and "No window" not in page.content()

        _wait("feedback-loop windows", windows_with_answers, seconds=options.wait)
        shots.append(("feedback-loops", "/admin/fairness/feedbackwindow/"))

        for name, path in shots:
            page.goto(f"{url}{path}")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('canvas[data-chart]')).every(c => c.dataset.drawn)"
            )
            target = options.out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"{target.relative_to(ROOT)}: {url}{path}")
        browser.close()


if __name__ == "__main__":
    main()
