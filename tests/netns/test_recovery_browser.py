"""The browser console through a link cut mid-session: "reconnecting", then the picture back.

The rig of :mod:`tests.netns.test_relayed_browser` (broker and coturn in the relay
namespace, the host in the user's, Chromium in the tech namespace). The user's link is cut
for 10 s: the page says it is reconnecting and lets go of the keyboard and mouse; when the
link is back, the host's new offer is answered and the picture returns within 5 s, in the
same session; the page says control is paused until the recording has caught up on the gap,
then typed text reaches the user's window again. :mod:`tests.netns.test_recovery` is the same
case with the Python console.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from peer.liveness import TECHNICIAN_WORDS, USER_WORDS
from tests.browser.conftest import PICTURE_CENTRE, video_size
from tests.netns.conftest import BACK_WITHIN_SECONDS, CHECKED_CUT_SECONDS, relay_broker
from tests.netns.test_relayed_browser import technician_in_chromium
from tests.support.coturn import CoturnServer
from tests.support.input_recorder import RecorderProcess
from tests.support.netns import NetTopology
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow

FRAMES = """async () => {
  const pcs = window.__peerConnections || [];
  const pc = pcs.at(-1);
  if (!pc || pc.connectionState === "closed") return [pcs.length, 0];
  let frames = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0; });
  return [pcs.length, frames];
}"""
"""[how many peer connections the page made, frames its latest one decoded]."""


async def frames(page: Page) -> tuple[int, int]:
    made, decoded = await page.evaluate(FRAMES)
    return made, decoded


async def picture_back(page: Page, since: float, timeout: float) -> float:
    """Seconds from ``since`` (``time.monotonic()``) until a frame newer than that is decoded and shown."""
    made, decoded = await frames(page)
    deadline = since + timeout
    while True:
        now_made, now_decoded = await frames(page)
        newer = now_decoded > decoded if now_made == made else now_decoded > 0
        width = await page.evaluate("() => document.getElementById('remote-screen').videoWidth")
        if newer and width > 0:
            return time.monotonic() - since
        if time.monotonic() > deadline:
            raise AssertionError(f"no picture within {timeout:g} s (connections {now_made}, frames {now_decoded})")
        await asyncio.sleep(0.1)


async def test_the_browser_shows_reconnecting_and_gets_the_picture_back(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, recorder: RecorderProcess, chromium_path: str,
    tmp_path: Path,
) -> None:
    net = net_topology
    with net.entered("tech"), relay_broker(net, coturn.broker_env("udp", "tcp")) as broker:
        async with technician_in_chromium(net, broker, chromium_path, tmp_path, xvfb, "view,control,chat") as chromium:
            page, problems, host, session_url = chromium.page, chromium.problems, chromium.host, chromium.url
            await video_size(page, timeout=45)
            state = page.locator("#connection-state")
            await expect(state).to_have_text("connected", timeout=10_000)
            cx, cy, _w, _h = await page.evaluate(PICTURE_CENTRE)
            await page.mouse.click(cx, cy)
            await expect(page.locator("#capture-state")).to_contain_text("INPUT CAPTURED")

            net.cut("user")
            try:
                cut_at = time.monotonic()
                # 3 s without a pong, and the page says so; the keyboard is the technician's again.
                await expect(state).to_have_text("reconnecting", timeout=8_000)
                noticed = time.monotonic() - cut_at
                await expect(page.locator("#session-log")).to_contain_text(TECHNICIAN_WORDS.reconnecting)
                await expect(page.locator("#capture-state")).to_contain_text("not captured")
                await expect(page.get_by_role("button", name="Type", exact=True)).to_be_disabled()
                await page.mouse.click(cx, cy)  # no capture while the user's computer cannot hear it
                await expect(page.locator("#capture-state")).to_contain_text("not captured")
                await asyncio.sleep(max(0.0, cut_at + CHECKED_CUT_SECONDS - time.monotonic()))
                # The old connection failing meanwhile is no connect failure to explain.
                await expect(state).to_have_text("reconnecting")
                assert await page.locator("#connection-failed").is_hidden()
            finally:
                net.restore("user")
            restored_at = time.monotonic()

            back = await picture_back(page, restored_at, timeout=45)
            print(f"\nbrowser, link cut for {CHECKED_CUT_SECONDS:g} s: reconnecting after {noticed:.2f} s, "
                  f"picture back {back:.2f} s after the link")
            await expect(page.locator("#session-log")).to_contain_text(TECHNICIAN_WORDS.restored, timeout=10_000)
            await expect(state).to_have_text("connected", timeout=10_000)
            assert back <= BACK_WITHIN_SECONDS, back
            assert page.url == session_url  # the same session, no new code
            assert await page.locator("#connection-failed").is_hidden()
            await expect(page.get_by_role("button", name="Type", exact=True)).to_be_enabled()
            # The recording fell behind while the link was down, so the host paused control until it
            # caught up on the gap: the page says both, and input after that reaches the user's window.
            log = page.locator("#session-log")
            await expect(log).to_contain_text("the host says: control is paused: recording is", timeout=10_000)
            await expect(log).to_contain_text("the host says: recording caught up; control is possible again",
                                              timeout=30_000)
            await page.mouse.click(cx, cy)
            await expect(page.locator("#capture-state")).to_contain_text("INPUT CAPTURED")
            await page.keyboard.type("typed after the cut")
            await async_wait_until(lambda: recorder.text() == "typed after the cut", "the text typed after the cut",
                                   timeout=10)
            await page.get_by_role("button", name="Release input").click()
            await page.get_by_label("Chat message").fill("are you back?")
            await page.get_by_role("button", name="Send", exact=True).click()
            await expect(page.locator(".chat")).to_contain_text("are you back?")
            assert problems == []
        out, _err = await asyncio.to_thread(host.communicate, timeout=30)  # terminated on leaving the page
        assert USER_WORDS.reconnecting in out and USER_WORDS.restored in out, out
        assert "are you back?" in out, out
