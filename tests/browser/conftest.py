"""A real headless Chromium (Debian's package) driven by Playwright. Screenshots go to tests/artifacts/."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
GUIDE_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "guide" / "img"
GUIDE_HEIGHT = 1400


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    """A fresh browser context per test; console errors and failed requests fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server.url)
    page = context.new_page()
    problems = watch(page)
    yield page
    settle(page)
    context.close()
    assert problems == [], problems


def settle(page, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Leave the page and wait until every request it sent has its answer (a draft saved on leaving, a poll):
    one still running in the live server when the test's database is flushed would deadlock the flush."""
    if page.is_closed():
        return
    page.goto("about:blank")
    deadline = time.monotonic() + timeout
    while page.in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    _quiet_database(deadline)


def _quiet_database(deadline: float) -> None:
    """Wait until no other connection to the test database is running a statement or holds a transaction open:
    a request the browser gave up on (a navigation cancels it) may still be running in the live server, and its
    row locks would deadlock the flush that ends the test."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state IN ('active', 'idle in transaction')"
            )
            (busy,) = cursor.fetchone()
        if not busy:
            return
        time.sleep(0.05)


def watch(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The page's console errors and failed requests, as they happen: a test asserts the list stays empty.
    It also counts the requests in flight (``page.in_flight``, for ``settle``)."""
    page.in_flight = 0

    def sent(_: object) -> None:
        page.in_flight += 1

    def ended(_: object) -> None:
        page.in_flight -= 1

    page.on("request", sent)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text[:160]} at {m.location}") if m.type == "error" else None,
    )
    page.on("requestfailed", lambda r: _request_failed(r, problems))
    return problems


def _request_failed(request, problems: list[str]) -> None:  # type: ignore[no-untyped-def]
    """A request the browser gave up on because the page moved on (a poll in flight when a link is followed)
    is no failure of the page; anything the server or the network broke is."""
    if request.failure == "net::ERR_ABORTED":
        return
    problems.append(f"request failed: {request.url} ({request.failure})")


def guide_picture(page, guide: str) -> Path:  # type: ignore[no-untyped-def]
    """The page's top (at most ``GUIDE_HEIGHT`` px) as docs/guide/img/<guide>.png: the user guide's picture
    of this page, taken anew whenever the test runs, so the guide shows the pages as they are."""
    GUIDE_IMAGES.mkdir(parents=True, exist_ok=True)
    path = GUIDE_IMAGES / f"{guide}.png"
    width = page.viewport_size["width"]
    height = min(page.evaluate("document.documentElement.scrollHeight"), GUIDE_HEIGHT)
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    return path


def screenshot(page, name: str, guide: str | None = None) -> Path:  # type: ignore[no-untyped-def]
    """A full-page capture to tests/artifacts/<name>.png; with ``guide``, also the page's top (at most
    ``GUIDE_HEIGHT`` px) to docs/guide/img/<guide>.png, the user guide's picture of this page."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if guide is not None:
        guide_picture(page, guide)
    # A full-page capture of a page taller than the window resizes it for a moment; set the size again so
    # the next click lands where the page now is (headless Chromium otherwise drops it).
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": size["height"] + 1})
    page.set_viewport_size(size)
    return path


def log_in(page, username: str) -> None:  # type: ignore[no-untyped-def]
    """Log in through the login form and wait for the dashboard."""
    from tests.factories import PASSWORD

    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Your projects')")
