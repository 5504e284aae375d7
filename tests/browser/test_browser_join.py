"""The end user joins from a browser, nothing installed (``/join/``), in a Chromium of their own.

The user's Chromium shares a tab showing a known picture (four coloured quadrants), picked
without a picker by ``--auto-select-tab-capture-source-by-title``. The technician,
in the console, sees exactly those pixels, as from a host; the page records them as a host
records its screen (the auditor plays them back, ``audit verify`` passes, the trail names the
browser); stopping the share ends the session on both sides. Bad codes get the API's answers; a
browser that cannot share, or cannot record a session that must be recorded, says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, Route, async_playwright, expect

from peer.transfers import file_sha256
from protocol.channel import CONTROL_MESSAGE_BURST as CONTROL_BURST
from protocol.channel import CONTROL_MESSAGES_PER_SECOND as CONTROL_PER_SECOND
from tech_console.remote_view import RemoteView
from tests.browser.conftest import CHROMIUM_ARGS, WatchedPages, open_new_session, save_received, screenshot, sign_in, video_size
from tests.support.api import bearer, join, start_session
from tests.support.broker import BrokerProcess, audit_verify
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.slow

QUADRANTS = ((220, 30, 30), (30, 180, 30), (30, 30, 220), (240, 240, 240))
"""Top left, top right, bottom left, bottom right of the shared picture."""

REFUSE_FIRST_PICK = """(() => {
  // The user closes the picker once without choosing: the page must say so and let them retry.
  // (Only secure pages have mediaDevices: not the known picture's about:blank.)
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const real = devices.getDisplayMedia.bind(devices);
  let refused = false;
  devices.getDisplayMedia = (constraints) => {
    if (refused) return real(constraints);
    refused = true;
    return Promise.reject(new DOMException("Permission denied by user", "NotAllowedError"));
  };
})();"""

LATE_SOCKET_OPEN = """(() => {
  // The signalling socket opens 2 s late (a slow network): the user decides before it is open.
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      this.late = false;
      super.addEventListener("open", (event) => setTimeout(() => {
        this.late = true;
        if (this.openHandler) this.openHandler(event);
      }, 2000));
    }
    set onopen(handler) { this.openHandler = handler; }
    get readyState() { return super.readyState === Real.OPEN && !this.late ? Real.CONNECTING : super.readyState; }
  };
})();"""

NO_SCREEN_SHARING = "if (navigator.mediaDevices) delete Object.getPrototypeOf(navigator.mediaDevices).getDisplayMedia;"

NO_VP8_RECORDING = """(() => {
  // A browser whose MediaRecorder cannot make VP8 WebM (some Safari); every screen pick is counted.
  window.picks = 0;
  if (window.MediaRecorder) MediaRecorder.isTypeSupported = () => false;
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const real = devices.getDisplayMedia.bind(devices);
  devices.getDisplayMedia = (constraints) => { window.picks += 1; return real(constraints); };
})();"""

READ_QUADRANTS = """(id) => {
  const video = document.getElementById(id);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, 0);
  const w = canvas.width, h = canvas.height;
  return [[w / 4, h / 4], [3 * w / 4, h / 4], [w / 4, 3 * h / 4], [3 * w / 4, 3 * h / 4]]
    .map(([x, y]) => Array.from(g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data.slice(0, 3)));
}"""

END_THE_SHARE = """() => {
  // What the browser's own "Stop sharing" does: the shared track ends.
  document.getElementById('shared-preview').srcObject.getVideoTracks()[0].dispatchEvent(new Event('ended'));
}"""


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    # The recording may lag 3 s (not 5): the join page's lag is seen sooner.
    return {"DESKHAND_ICE_LOOPBACK": "true", "DESKHAND_RECORDING_MAX_LAG_SECONDS": "3"}


KNOWN_TITLE = "Known picture"
KNOWN_PAGE = f"""<!doctype html><title>{KNOWN_TITLE}</title><style>
html, body {{ margin: 0; height: 100%; }} div {{ display: grid; grid-template: 1fr 1fr / 1fr 1fr; height: 100vh; }}
{"".join(f"i:nth-child({n + 1}) {{ background: rgb{colour}; }} " for n, colour in enumerate(QUADRANTS))}
</style><div><i></i><i></i><i></i><i></i></div>"""
"""The tab the user shares: :data:`QUADRANTS`, filling it."""


@pytest.fixture
async def join_page(chromium_path: str) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """``await join_page(broker, path, init_script=None, expect_http_errors=...)``: the end user's page, in a
    Chromium of its own whose screen sharing picks, without asking, a tab showing :data:`KNOWN_PAGE`."""
    pages = WatchedPages()
    async with async_playwright() as playwright:
        launched: Browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True,
            args=[*CHROMIUM_ARGS, f"--auto-select-tab-capture-source-by-title={KNOWN_TITLE}"],
        )
        try:
            async def open_page(broker: BrokerProcess, path: str = "/join/", init_script: str | None = None,
                                expect_http_errors: frozenset[int] = frozenset()) -> Page:
                page = await pages.open(launched, broker, path, expect_http_errors, init_script)
                known = await page.context.new_page()
                await known.set_content(KNOWN_PAGE)
                await page.bring_to_front()
                return page

            yield open_page
            await pages.close()
        finally:
            await launched.close()


def near(seen: list[list[int]] | list[tuple[int, ...]]) -> bool:
    """Whether the four quadrants' pixels are :data:`QUADRANTS` (within what video coding changes)."""
    return all(max(abs(int(a) - b) for a, b in zip(got, want, strict=True)) <= 40 for got, want in zip(seen, QUADRANTS, strict=True))


async def quadrants_shown(page: Page, timeout: float, video: str = "remote-screen") -> None:
    """Wait until the ``video`` element of ``page`` shows :data:`QUADRANTS`."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen: list[list[int]] = []
    while asyncio.get_running_loop().time() < deadline:
        seen = await page.evaluate(READ_QUADRANTS, video)
        if near(seen):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"#{video} never showed the shared picture; last seen {seen}")


async def busy(route: Route) -> None:
    await route.fulfill(status=503, content_type="application/json",
                        body=json.dumps({"error": "broker_busy", "message": "the broker is busy; try again"}))


async def segments_stored(broker: BrokerProcess, session_id: str, count: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    stored: list[tuple[object, ...]] = []
    while asyncio.get_running_loop().time() < deadline:
        stored = broker.sql("SELECT count(*) FROM recording_segments WHERE session_id = ?", session_id)
        if int(str(stored[0][0])) >= count:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"fewer than {count} recording segments stored within {timeout:g} s: {stored}")


async def test_a_user_shares_a_screen_from_the_browser_and_stopping_ends_the_session(broker, console_page, join_page, tmp_path) -> None:
    """Sharing, chat and files both ways from the join page, the end by the share stopping, and the survey."""
    technician = await console_page(broker)
    await sign_in(technician, "admin", broker.admin_password)
    code = await open_new_session(technician, "Printer offline", "Ann Smith", "ann@example.com")
    session_id = technician.url.rsplit("/", 1)[1]
    link = await technician.locator("#join-link").get_attribute("href")
    assert link == f"{broker.base_url}/join/#{code.replace(' ', '')}"

    user = await join_page(broker, "/join/#" + code.replace(" ", ""), init_script=REFUSE_FIRST_PICK,
                           expect_http_errors=frozenset({503}))
    await expect(user.locator("#join-code")).to_have_value(code.replace(" ", ""))
    assert "#" not in user.url, "the code left the address bar"
    await user.get_by_label("Your name").fill("Ann Smith")
    await user.get_by_role("button", name="Join").click()
    await expect(user.get_by_role("heading", name="Administrator asks to see your screen")).to_be_visible(timeout=15_000)
    await expect(user.locator("#control-note")).to_contain_text("cannot control your mouse and keyboard from a browser")
    await expect(user.get_by_label("Allow Administrator to see what you share")).to_be_checked()
    await expect(user.get_by_label("Allow Administrator to see what you share")).to_be_disabled()
    await expect(user.get_by_label("Allow Administrator to chat with you")).to_be_checked()
    for files in ("send you files", "ask you for files"):
        await expect(user.get_by_label(f"Allow Administrator to {files}")).not_to_be_checked()
        await user.get_by_label(f"Allow Administrator to {files}").check()
    await expect(user.get_by_label("Allow Administrator to control", exact=False)).to_have_count(0)  # a page cannot
    await screenshot(user, "browser-join-consent")

    await user.get_by_role("button", name="Share my screen").click()
    await expect(user.locator("#share-error")).to_contain_text("Press “Share my screen” to choose again")
    await user.get_by_role("button", name="Share my screen").click()
    await expect(user.locator("#sharing-panel")).to_be_visible()

    await expect(technician.locator("#host-info")).to_contain_text("Ann Smith on web browser", timeout=15_000)
    await expect(technician.locator("#consent-info")).to_contain_text("see the screen", timeout=15_000)
    await user.wait_for_function("() => document.getElementById('shared-preview').videoWidth > 0")  # its first frame shown
    shared = await user.evaluate("() => { const v = document.getElementById('shared-preview'); return [v.videoWidth, v.videoHeight]; }")
    assert await video_size(technician, timeout=30) == tuple(shared)
    await quadrants_shown(technician, timeout=15)
    await expect(user.locator("#share-state")).to_contain_text("Administrator sees what you share")
    await screenshot(technician, "browser-join-technician")
    audited = broker.sql("SELECT data FROM audit_events WHERE kind = 'consent.changed' AND session_id = ?", session_id)
    assert json.loads(audited[0][0]) == {"permissions": ["view", "chat", "files.send", "files.receive"], "given_by": "browser"}

    await chat_both_ways(technician, user)
    await files_both_ways(technician, user, tmp_path)
    await screenshot(user, "browser-join-chat-and-files")
    assert [e["text"] for e in broker.audit_data(session_id, "chat.received")] == [TECHNICIAN_CHAT, "Hi!\nIt is the printer"]
    assert [e["text"] for e in broker.audit_data(session_id, "chat.sent")] == [TECHNICIAN_CHAT, "Hi!\nIt is the printer"]

    # Taken back while sharing: at once, on both sides, and audited.
    await user.locator("#allowed-panel").get_by_label("Allow Administrator to chat with you").uncheck()
    await expect(user.locator("#chat-off")).to_be_visible()
    await expect(technician.locator("#consent-info")).not_to_contain_text("chat", timeout=10_000)
    await expect(technician.get_by_label("Chat message")).to_be_disabled()
    assert broker.audit_data(session_id, "consent.changed")[-1] == {
        "permissions": ["view", "files.send", "files.receive"], "given_by": "browser"}
    # What is shared is recorded as a host records its screen, and the user is told so.
    await expect(user.locator("#recording-state")).to_contain_text("recorded for the audit trail (2 pictures a second)")
    await segments_stored(broker, session_id, 3, timeout=15)
    # The broker refuses uploads for a while (busy): the page says the recording is behind and reports it,
    # the share goes on, and once uploads pass again the recording catches up, nothing lost.
    await user.route("**/recording/*", busy)
    await expect(user.locator("#recording-state")).to_contain_text("The recording is", timeout=10_000)
    await expect(user.locator("#recording-state")).to_contain_text("s behind: this page keeps what it recorded")
    await user.unroute("**/recording/*", busy)
    await expect(user.locator("#recording-state")).to_have_text("The recording caught up.", timeout=15_000)
    await quadrants_shown(technician, timeout=5)

    await user.evaluate(END_THE_SHARE)
    await expect(user.locator("#over-reason")).to_have_text("You stopped sharing.", timeout=10_000)
    # The file received stays to be saved; the survey is asked after a session that happened.
    await expect(user.locator("#over-panel").get_by_role("link", name="Save fix.reg")).to_be_visible()
    await user.get_by_role("button", name="Send", exact=True).click()
    await expect(user.locator("#survey-error")).to_have_text("Choose 1 to 5, or Skip.")
    await user.get_by_label("5 (very happy)").check()
    await user.get_by_label("Anything you would like to add?").fill("Quick, thanks")
    await user.get_by_role("button", name="Send", exact=True).click()
    await expect(user.locator("#survey-done")).to_have_text("Thank you: your rating 5/5 was recorded.")
    assert broker.sql("SELECT rating, comment FROM session_surveys WHERE session_id = ?", session_id) == [(5, "Quick, thanks")]
    await expect(technician.locator("#connection-state")).to_have_text("ended", timeout=10_000)
    await expect(technician.get_by_text("The session ended (by the host: the user stopped sharing)")).to_be_visible()
    assert broker.sql("SELECT state, ended_by FROM support_sessions WHERE id = ?", session_id) == [("ended", "host")]

    # The last second is uploaded after the end; every segment passed the broker's check, in order, the browser's.
    await expect(user.locator("#recording-state")).to_have_text("The recording is saved: you may close this page.", timeout=15_000)
    await expect(user.locator("#over-note")).to_have_text("Nothing is shared any more.")
    segments = broker.audit_data(session_id, "recording.segment")
    assert [s["index"] for s in segments] == list(range(len(segments))) and len(segments) >= 4, segments
    assert {s.get("recorder") for s in segments} == {"browser"}, segments
    assert all(a["offset_ms"] + a["duration_ms"] <= b["offset_ms"] for a, b in pairwise(segments)), segments
    behind = broker.audit_data(session_id, "recording.behind")
    assert behind and all(b["lag_seconds"] > 3 and b["error"] is None for b in behind), behind
    assert len(broker.audit_data(session_id, "recording.caught_up")) == len(behind)
    verified = audit_verify(broker.data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The auditor plays it back: the shared picture, said to be the browser's recording.
    await technician.goto(f"{broker.base_url}/#/audit/{session_id}")
    await expect(technician.locator("#player-status")).to_contain_text(
        f"{len(segments)} segments, recorded by the user's web browser", timeout=10_000)
    await technician.wait_for_function("() => document.querySelector('video#recording').readyState >= 2", timeout=15_000)
    await technician.locator("video#recording").evaluate("v => { v.muted = true; return v.play(); }")
    await technician.wait_for_function("() => document.querySelector('video#recording').currentTime > 1", timeout=15_000)
    await technician.locator("video#recording").evaluate("v => v.pause()")
    await quadrants_shown(technician, timeout=5, video="recording")


TECHNICIAN_CHAT = 'Hello from the desk <img src=x onerror="document.title=`pwned`">'
"""What the technician writes: text with markup in it, which the page must show as text."""


async def chat_both_ways(technician: Page, user: Page) -> None:
    await technician.get_by_label("Chat message").fill(TECHNICIAN_CHAT)
    await technician.get_by_role("button", name="Send", exact=True).click()
    await expect(user.locator("#chat-log")).to_contain_text(f"Administrator: {TECHNICIAN_CHAT}", timeout=10_000)
    assert await user.locator("#chat-log img").count() == 0 and await user.title() != "pwned", "chat text was parsed as HTML"
    await user.locator("#chat-input").fill("Hi!\nIt is the printer")
    await user.locator("#chat-panel").get_by_role("button", name="Send").click()
    await expect(technician.locator(".chat")).to_contain_text("It is the printer", timeout=10_000)


async def files_both_ways(technician: Page, user: Page, tmp_path: Path) -> None:
    """A file to the user (saved from the page) and one the technician asks for (picked by the user), each
    arriving with the sender's SHA-256."""
    sent = tmp_path / "fix.reg"
    sent.write_bytes(os.urandom(4 * 1024 * 1024 + 321))  # two chunks
    await technician.locator("#file-pick").set_input_files(str(sent))
    arrived = user.locator('.transfers li[data-name="fix.reg"]')
    await expect(arrived).to_have_attribute("data-state", "completed", timeout=30_000)
    await expect(technician.locator('.transfers li[data-name="fix.reg"]')).to_have_attribute("data-state", "completed", timeout=10_000)
    assert await save_received(arrived, "fix.reg", tmp_path / "saved-by-user.reg") == file_sha256(sent)

    await technician.get_by_label("Path on their computer (optional)").fill("C:\\Windows\\setupact.log")
    await technician.get_by_label("Why (shown to the user)").fill("the setup log")
    await technician.get_by_role("button", name="Request file").click()
    asked = user.locator(".transfers li[data-request]")
    await expect(asked).to_contain_text("Administrator asks for a file: “C:\\Windows\\setupact.log” (the setup log)", timeout=10_000)
    picked = tmp_path / "setupact.log"
    picked.write_bytes(os.urandom(300_000))
    await asked.locator("input[type=file]").set_input_files(str(picked))
    await expect(asked).to_have_attribute("data-state", "completed", timeout=30_000)
    received = technician.locator('.transfers li[data-name="setupact.log"]')
    await expect(received).to_have_attribute("data-state", "completed", timeout=10_000)
    assert await save_received(received, "setupact.log", tmp_path / "fetched.log") == file_sha256(picked)


async def test_wrong_used_and_expired_codes_get_the_apis_answers(broker, admin, join_page) -> None:
    user = await join_page(broker, expect_http_errors=frozenset({404, 409, 410}))
    code_box, error = user.locator("#join-code"), user.locator("#join-error")
    join_button = user.get_by_role("button", name="Join")

    await code_box.fill("12 34")
    await join_button.click()
    await expect(error).to_have_text("A support code has 9 digits: check it with your technician.")

    used = start_session(broker, admin)["code"]
    assert join(broker, used).status_code == 200
    expired = start_session(broker, admin)
    broker.sql("UPDATE support_sessions SET code_expires_at = '2000-01-01 00:00:00.000000' WHERE id = ?",
               expired["session"]["id"])
    wrong = "".join(str((int(d) + 1) % 10) for d in used)  # every digit off by one
    for typed, said in ((wrong, "no session has this code"), (used, "this code was already used"),
                        (expired["code"], "this code has expired")):
        await code_box.fill(typed)
        await join_button.click()
        await expect(error).to_contain_text(said)
        await expect(join_button).to_be_enabled()


async def test_a_browser_that_cannot_share_says_so_before_any_code_is_spent(broker, join_page) -> None:
    user = await join_page(broker, "/join/#123456789", init_script=NO_SCREEN_SHARING)
    await expect(user.locator("#no-capture")).to_contain_text("This browser cannot share a screen")
    await expect(user.locator("#join-code")).to_have_count(0)


async def test_a_browser_that_cannot_record_shares_nothing_when_recording_is_required(broker, admin, join_page) -> None:
    started = start_session(broker, admin)  # the policy's default: recording required
    user = await join_page(broker, "/join/#" + started["code"], init_script=NO_VP8_RECORDING)
    await user.get_by_role("button", name="Join").click()
    said = "This session must be recorded, and this browser cannot record what you share (it cannot record VP8 video in WebM)"
    await expect(user.locator("#over-reason")).to_contain_text(said, timeout=10_000)
    await expect(user.locator("#over-reason")).to_contain_text("install the Deskhand app")
    assert await user.evaluate("window.picks") == 0
    assert broker.sql("SELECT state, ended_by, end_reason FROM support_sessions WHERE id = ?", started["session"]["id"]) \
        == [("ended", "host", "this browser cannot record the session, which must be recorded")]
    assert broker.audit_data(started["session"]["id"], "consent.changed") == []


async def test_a_browser_that_cannot_record_shares_unrecorded_when_recording_is_not_required(start_broker, join_page) -> None:
    lenient = start_broker(DESKHAND_RECORDING_REQUIRED="false", DESKHAND_ICE_LOOPBACK="true")
    started = start_session(lenient, bearer(lenient.login()))
    session_id = started["session"]["id"]
    user = await join_page(lenient, "/join/#" + started["code"], init_script=NO_VP8_RECORDING)
    await user.get_by_role("button", name="Join").click()
    said = "This browser cannot record what you share (it cannot record VP8 video in WebM): the session goes on unrecorded."
    await expect(user.locator("#recording-state")).to_have_text(said, timeout=10_000)
    await user.get_by_role("button", name="Share my screen").click()
    await expect(user.locator("#sharing-panel")).to_contain_text(said)
    # The trail says from when the session went unrecorded, and why.
    deadline = asyncio.get_running_loop().time() + 10
    while not (behind := lenient.audit_data(session_id, "recording.behind")) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert [(b["lag_seconds"], b["error"]) for b in behind] == [(0, "this browser cannot record: it cannot record VP8 video in WebM")]
    assert await user.evaluate("window.picks") == 1


async def test_the_join_page_is_held_to_the_apis_rate_limit_on_wrong_codes(start_broker, join_page) -> None:
    strict = start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE="1")
    user = await join_page(strict, expect_http_errors=frozenset({404, 429}))
    for said in ("no session has this code", "too many wrong codes from this address; try again in"):
        await user.locator("#join-code").fill("000 000 001")
        await user.get_by_role("button", name="Join").click()
        await expect(user.locator("#join-error")).to_contain_text(said)


async def test_declining_ends_the_session_and_so_does_the_technician_ending_it(broker, admin, console_page, join_page) -> None:
    declined = start_session(broker, admin)
    # Declined before the page's signalling is open: the end waits for it, it is not lost.
    user = await join_page(broker, "/join/#" + declined["code"], init_script=LATE_SOCKET_OPEN)
    await user.get_by_role("button", name="Join").click()
    await user.get_by_role("button", name="Decline").click()
    await expect(user.locator("#consent-choices")).to_have_text("Ending the session…")
    await expect(user.locator("#over-reason")).to_have_text("You declined the session.", timeout=10_000)
    assert broker.sql("SELECT state, ended_by, end_reason FROM support_sessions WHERE id = ?", declined["session"]["id"]) \
        == [("ended", "host", "the user declined the session")]

    technician = await console_page(broker)
    await sign_in(technician, "admin", broker.admin_password)
    code = await open_new_session(technician, "Slow laptop", "Bo Lee", "bo@example.com")
    user = await join_page(broker, "/join/#" + code.replace(" ", ""))
    await user.get_by_role("button", name="Join").click()
    await user.get_by_role("button", name="Share my screen").click()
    await video_size(technician, timeout=30)
    await technician.get_by_label("Note for the ticket").fill("done")
    await technician.get_by_role("button", name="End session").click()
    await expect(user.locator("#over-reason")).to_have_text("Administrator ended the session: done", timeout=10_000)
    await expect(user.locator("#sharing-panel")).to_be_hidden()


async def test_the_python_console_sees_a_browser_share_as_a_hosts(broker, admin, join_page) -> None:
    """The Python console sees the browser's share; and leaving the page while recorded seconds wait to be
    stored makes the browser ask first."""
    started = start_session(broker, admin)
    user = await join_page(broker, "/join/#" + started["code"], expect_http_errors=frozenset({503}))
    await user.get_by_role("button", name="Join").click()
    await user.get_by_role("button", name="Share my screen").click()
    view = RemoteView(broker.base_url, started["session"]["id"], broker.login())
    await view.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        seen: list[tuple[int, ...]] = []
        newer_than = 0.0
        while asyncio.get_running_loop().time() < deadline:
            frame = await view.wait_for_frame(timeout=30, newer_than=newer_than)
            newer_than = view.latest_frame_at
            image = frame.to_ndarray(format="rgb24")
            h, w = image.shape[:2]
            seen = [tuple(image[y][x]) for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))]
            if near(seen):
                break
        else:
            raise AssertionError(f"the Python console never saw the shared picture; last seen {seen}")
        # A console that floods the page with chat: it takes them at the host's rate, drops the rest, and says so.
        for n in range(200):
            view.send_chat(f"flood {n}")
        await view.wait_until(lambda: any(r.what == "rate_limited" for r in view.refusals), 10, "the page's refusal")
        shown = await user.locator("#chat-log li").count()
        assert CONTROL_BURST <= shown < CONTROL_BURST + 3 * CONTROL_PER_SECOND, shown
    finally:
        await view.close()

    # The broker stops storing segments (busy): they wait in the page, and leaving it now would lose them.
    await user.route("**/recording/*", lambda route: route.fulfill(
        status=503, content_type="application/json", body='{"error": "broker_busy", "message": "busy"}'))
    await asyncio.sleep(2.5)  # two more seconds recorded, none stored
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.type)
        await dialog.dismiss()  # the user stays

    user.on("dialog", answer)
    await user.close(run_before_unload=True)
    await async_wait_until(lambda: asked == ["beforeunload"], "the browser asking before the page is left", timeout=10)


async def test_the_join_page_offers_the_host_downloads_with_size_and_sha256(broker, start_broker, join_page, tmp_path) -> None:
    build = tmp_path / "deskhand-host-linux-x86_64"
    build.write_bytes(os.urandom(1_500_000))
    offering = start_broker(DESKHAND_HOST_DOWNLOADS=str(tmp_path))
    code = start_session(offering, bearer(offering.login()))["code"]
    user = await join_page(offering, "/join/#" + code)
    section = user.locator("#host-downloads")
    item = section.locator("li[data-platform='linux-x86_64']")
    await expect(item).to_contain_text("Linux (x86_64): deskhand-host-linux-x86_64 (1.5 MB)")
    await expect(item.locator(".sha256")).to_have_text(hashlib.sha256(build.read_bytes()).hexdigest())
    await expect(item).to_contain_text(f"./deskhand-host-linux-x86_64 join --broker {offering.base_url}")
    downloaded = await user.request.get(offering.base_url + await item.get_by_role("link").get_attribute("href"))
    assert await downloaded.body() == build.read_bytes()

    # The consent step says control needs the app, and links to the section.
    await user.get_by_role("button", name="Join").click()
    await user.locator("#control-note").get_by_role("link", name="Download the Deskhand app.").click()
    await expect(section).to_be_focused()
    await user.get_by_role("button", name="Decline").click()

    # A broker that offers none: no section, no link.
    bare = await join_page(broker)
    assert await bare.evaluate("import('/js/join/downloads.js').then((m) => m.hostDownloads())") == []
    await expect(bare.locator("#host-downloads")).to_be_hidden()
