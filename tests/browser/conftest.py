"""Fixtures for tests that drive the browser console in Debian's Chromium (headless, Playwright).

* ``console_page(broker)`` -> an async factory of Playwright pages at 1280x800 on the
  broker's console, each failing its test if the page logs a console error or throws.
* ``screenshot(page, name)`` saves ``test-artifacts/screenshots/<name>.png`` for review.
* ``hosts.join(broker, code, display_env, consent, downloads)`` starts ``deskhand-host``
  with the terminal UI; those still running at the end are killed. ``hosts.exited(process, timeout)``
  is its output once it exited, or a failure saying where it waited.
* ``video_size(page, timeout)`` waits for the live session page's first frame;
  ``PICTURE_CENTRE`` (for ``page.evaluate``) is where the picture's centre is.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from peer.transfers import file_sha256
from tests.support.broker import BrokerProcess
from tests.support.live_session import host_exited

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
]


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class WatchedPages:
    """Pages whose console errors and uncaught exceptions fail the test (checked at its end)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.contexts: list[BrowserContext] = []

    async def open(self, browser: Browser, broker: BrokerProcess, path: str,
                   expect_http_errors: frozenset[int] = frozenset(), init_script: str | None = None) -> Page:
        """A page at ``path`` in a fresh context; ``expect_http_errors``: statuses the test provokes on
        purpose (Chromium logs every 4xx answer to a fetch as a console error; only those are forgiven);
        ``init_script`` runs before the page's own scripts."""

        def on_console(message: ConsoleMessage) -> None:
            if message.type != "error":
                return
            status = re.search(r"responded with a status of (\d{3})", message.text)
            if status and int(status.group(1)) in expect_http_errors:
                return
            self.problems.append(f"console.error: {message.text}")

        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        # Chromium offers a plain 127.0.0.1 ICE candidate (not an mDNS name) once media is allowed.
        await context.grant_permissions(["camera", "microphone"], origin=broker.base_url)
        self.contexts.append(context)
        if init_script is not None:
            await context.add_init_script(init_script)
        page = await context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        await page.goto(broker.base_url + path)
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        assert self.problems == [], "the pages logged errors:\n" + "\n".join(self.problems)


@pytest.fixture
async def console_page(browser: Browser) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """``await console_page(broker, expect_http_errors=...)``: a fresh signed-out page on the broker's console."""
    pages = WatchedPages()

    async def open_page(broker: BrokerProcess, expect_http_errors: frozenset[int] = frozenset()) -> Page:
        return await pages.open(browser, broker, "/", expect_http_errors)

    yield open_page
    await pages.close()


class Hosts:
    """The ``deskhand-host`` processes of one test."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def join(self, broker: BrokerProcess, code: str, display_env: dict[str, str], consent: str, downloads: Path) -> subprocess.Popen[str]:
        """``deskhand-host join CODE --ui terminal --consent CONSENT`` on a display; its stdin is the user's keyboard."""
        process = subprocess.Popen(
            [sys.executable, "-m", "host_client.cli", "join", code, "--broker", broker.base_url, "--ui", "terminal",
             "--consent", consent],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, **display_env, "DESKHAND_DOWNLOADS": str(downloads)},
        )
        self.started.append(process)
        return process

    @staticmethod
    def exited(process: subprocess.Popen[str], timeout: float) -> str:
        """:func:`tests.support.live_session.host_exited`: its output, or a failure saying where it waited."""
        return host_exited(process, timeout)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """``hosts.join(...)`` starts a host; those the test leaves running are killed."""
    running = Hosts()
    yield running
    for process in running.started:
        if process.poll() is None:
            process.kill()
            process.communicate()


PICTURE_CENTRE = """() => {
  const v = document.getElementById('remote-screen'); const b = v.getBoundingClientRect();
  const s = Math.min(b.width / v.videoWidth, b.height / v.videoHeight);
  return [b.left + b.width / 2, b.top + b.height / 2, v.videoWidth * s, v.videoHeight * s];
}"""


async def video_size(page: Page, timeout: float) -> tuple[int, int]:
    """The remote screen's size once a frame has arrived (polled: the page's CSP forbids wait_for_function's eval)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        size = await page.evaluate("() => { const v = document.getElementById('remote-screen'); return [v.videoWidth, v.videoHeight]; }")
        if size[0] > 0:
            return size[0], size[1]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no video frame within {timeout:g} s")
        await asyncio.sleep(0.2)


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot for review (not committed: test-artifacts/ is ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def save_received(row: Locator, name: str, to: Path) -> str:
    """Save the file a transfer ``row`` offers (its "Save <name>" link) to ``to``; returns its SHA-256."""
    async with row.page.expect_download() as download_info:
        await row.get_by_role("link", name=f"Save {name}").click()
    await (await download_info.value).save_as(to)
    return file_sha256(to)


async def sign_in(page: Page, username: str, password: str, timeout: float = 30.0) -> None:
    """Sign in on the console's form; a sign-in that does not arrive fails with what the page shows instead."""
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    try:
        await page.get_by_role("button", name="Sign out").wait_for(timeout=timeout * 1000)
    except PlaywrightTimeoutError:
        shown = " ".join((await page.locator("body").inner_text()).split())[:600]
        raise AssertionError(f"not signed in within {timeout:g} s; at {page.url} the page shows: {shown}") from None


async def open_new_session(page: Page, subject: str, requester: str, email: str) -> str:
    """From the ticket queue: open a ticket, start a session, go to its page; the code shown there."""
    await page.get_by_label("Subject").fill(subject)
    await page.get_by_label("Requester", exact=True).fill(requester)
    await page.get_by_label("Requester e-mail").fill(email)
    await page.get_by_role("button", name="Open ticket").click()
    await page.get_by_role("button", name="Start a support session").click()
    await page.get_by_role("link", name="Open the session").click()
    await page.get_by_role("heading", name=re.compile("^Live session")).wait_for()
    code = (await page.locator("#session-code").text_content() or "").strip()
    assert re.fullmatch(r"\d{3} \d{3} \d{3}", code), code
    return code
