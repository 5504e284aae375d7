"""The browser console across separated networks: Chromium in the tech namespace, relayed by coturn.

As in :mod:`tests.netns.test_relayed_session`, the broker and coturn run in the relay
namespace and the host in the user's; here the technician is Debian's Chromium, started
by Playwright through a script that runs it inside the tech namespace (Playwright talks
to it over a pipe, so the namespace is no obstacle). The page is served from
http://198.18.0.1, which Chromium is told to treat as a secure origin, as the HTTPS a real
deployment has. Chromium's own statistics name the selected candidate pair; the page
does not expose its peer connection, so an init script keeps a reference to each one.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from host_client.session import END_CONFIRM_SECONDS, RECORDING_DRAIN_SECONDS
from peer.transfers import file_sha256
from tests.browser.conftest import CHROMIUM_ARGS, PICTURE_CENTRE, open_new_session, save_received, sign_in, video_size
from tests.netns.conftest import relay_broker, trail_verifies
from tests.support.broker import BrokerProcess
from tests.support.coturn import CoturnServer
from tests.support.input_recorder import RecorderProcess
from tests.support.netns import NetTopology
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow

KEEP_PEER_CONNECTIONS = """(() => {
  const Original = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();"""
"""Run before the page's scripts: every RTCPeerConnection the page makes is kept for the test."""

SELECTED_PAIR = """async () => {
  const pc = (window.__peerConnections || []).at(-1);
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  if (!transport) return null;
  const pair = byId[transport.selectedCandidatePairId];
  const local = byId[pair.localCandidateId], remote = byId[pair.remoteCandidateId];
  return [local.candidateType, remote.candidateType, local.relayProtocol || null];
}"""
"""Chromium's selected pair: [local type, remote type, the local relay's protocol]; null before one is."""


def chromium_in(net: NetTopology, chromium_path: str, directory: Path) -> Path:
    """A script that runs Chromium inside the tech namespace, for Playwright's ``executable_path``."""
    script = directory / "chromium-in-tech"
    script.write_text(f'#!/bin/sh\nexec {" ".join(net.wrap("tech"))} {chromium_path} "$@"\n')
    script.chmod(0o755)
    return script


async def selected_pair(page: Page, timeout: float = 10.0) -> list[str | None]:
    """:data:`SELECTED_PAIR` once Chromium has selected one (polled: there is no event for it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (pair := await page.evaluate(SELECTED_PAIR)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"Chromium selected no candidate pair within {timeout:g} s")
        await asyncio.sleep(0.1)
    return list(pair)


@dataclass
class ChromiumSession:
    """A technician's session page in Chromium and the host that joined it."""

    page: Page
    session_id: str
    url: str
    problems: list[str]
    """The page's uncaught errors."""
    host: subprocess.Popen[str]
    """``deskhand-host`` in the user namespace, its terminal UI's output on ``stdout``."""


@asynccontextmanager
async def technician_in_chromium(
    net: NetTopology, broker: BrokerProcess, chromium_path: str, directory: Path, xvfb: XvfbServer,
    consent: str = "view", downloads: Path | None = None,
) -> AsyncIterator[ChromiumSession]:
    """Chromium in the tech namespace, signed in on a new session's page, its host joining from the user namespace.

    Call it with the thread in the tech namespace (the broker's address is reached from
    there). Files sent to the user land under ``downloads``. The host is terminated on the
    way out; its output can be read after that.
    """
    args = [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={broker.base_url}"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_in(net, chromium_path, directory), headless=True, args=args
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            await context.add_init_script(KEEP_PEER_CONNECTIONS)
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            await page.goto(broker.base_url + "/")
            await sign_in(page, "admin", broker.admin_password)
            code = await open_new_session(page, "Relayed", "Ann Smith", "ann@example.com")
            host = net.popen(
                "user",
                [sys.executable, "-m", "host_client.cli", "join", code.replace(" ", ""), "--broker", broker.base_url,
                 "--ui", "terminal", "--consent", consent, "--insecure"],
                # stdin: the user's keyboard, kept open and never typed on.
                env={**xvfb.env, **({"DESKHAND_DOWNLOADS": str(downloads)} if downloads else {})},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            try:
                yield ChromiumSession(page, page.url.rsplit("/", 1)[1], page.url, problems, host)
            finally:
                host.terminate()
        finally:
            await browser.close()


async def test_chromium_runs_a_whole_session_through_the_relay(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, recorder: RecorderProcess, chromium_path: str,
    tmp_path: Path,
) -> None:
    """View, control, chat, clipboard and files both ways, relayed; the page names the route; the recording verifies."""
    net = net_topology
    downloads = tmp_path / "downloads"
    # Chromium's trust store is its own: give it the plain URLs (TLS is the Python console's case).
    env = coturn.broker_env("udp", "tcp")
    with net.entered("tech"), relay_broker(net, env) as broker:
        async with technician_in_chromium(net, broker, chromium_path, tmp_path, xvfb,
                                          "view,control,chat,clipboard,files.send,files.receive", downloads) as chromium:
            page, problems, host = chromium.page, chromium.problems, chromium.host
            assert await video_size(page, timeout=45) == (1920, 1080)
            pair = await selected_pair(page)
            assert pair[:2] == ["relay", "relay"], (pair, coturn.log()[-2000:])
            assert pair[2] in ("udp", "tcp"), pair
            await expect(page.locator("#route")).to_have_text(f"relayed through TURN over {pair[2].upper()}", timeout=5_000)
            round_trip = page.locator("#quality dt:text-is('Round trip') + dd")
            await expect(round_trip).to_have_text(re.compile(r"^\d+ ms$"), timeout=5_000)

            # Control: the first click captures input, the second and the typed text reach the user's window.
            cx, cy, _w, _h = await page.evaluate(PICTURE_CENTRE)
            await page.mouse.click(cx, cy)
            await expect(page.locator("#capture-state")).to_contain_text("INPUT CAPTURED")
            await page.mouse.click(cx, cy)
            await async_wait_until(lambda: recorder.clicks(), "the click on the host", timeout=15)
            await page.keyboard.type("typed through the relay")
            await async_wait_until(lambda: recorder.text() == "typed through the relay", "the typed text", timeout=10)
            await page.get_by_role("button", name="Release input").click()

            # Chat and the clipboard, both ways.
            await page.get_by_label("Chat message").fill("Hi Ann, I am on your screen now")
            await page.get_by_role("button", name="Send", exact=True).click()
            assert host.stdin is not None
            host.stdin.write("thanks, it is the printer on the left\n")
            host.stdin.flush()
            await expect(page.locator(".chat")).to_contain_text("thanks, it is the printer on the left", timeout=10_000)
            await page.get_by_label("Put on their clipboard").fill("copied through the relay")
            await page.get_by_role("button", name="Put", exact=True).click()
            await async_wait_until(lambda: recorder.clipboard() == "copied through the relay", "the user's clipboard")
            recorder.set_clipboard("copied by the user")
            await expect(page.locator("#session-log")).to_contain_text("the user's clipboard: copied by the user",
                                                                       timeout=10_000)

            # Files: one picked and sent to the user, one requested from them and saved from the page.
            picked = tmp_path / "driver.bin"
            picked.write_bytes(os.urandom(6 * 1024 * 1024 + 123))
            await page.locator("#file-pick").set_input_files(str(picked))
            sent = page.locator('.transfers li[data-name="driver.bin"]')
            await expect(sent).to_have_attribute("data-state", "completed", timeout=30_000)
            (arrived,) = downloads.rglob("driver.bin")
            assert file_sha256(arrived) == file_sha256(picked)
            wanted = tmp_path / "printer.log"
            wanted.write_bytes(os.urandom(2 * 1024 * 1024 + 45))
            await page.get_by_label("Path on their computer (optional)").fill(str(wanted))
            await page.get_by_label("Why (shown to the user)").fill("the printer log")
            await page.get_by_role("button", name="Request file").click()
            received = page.locator('.transfers li[data-name="printer.log"]')
            await expect(received).to_have_attribute("data-state", "completed", timeout=30_000)
            assert await save_received(received, "printer.log", tmp_path / "from-browser.log") == file_sha256(wanted)
            assert problems == []
        # Terminated on leaving the page: it ends the session (the broker confirms, or the host stops waiting)
        # and uploads what the recording still holds, each within its own bound.
        out, _err = await asyncio.to_thread(host.communicate, timeout=END_CONFIRM_SECONDS + RECORDING_DRAIN_SECONDS + 10)
        assert "Hi Ann, I am on your screen now" in out, out
        await trail_verifies(broker, chromium.session_id, tmp_path)


@pytest.mark.parametrize("relay", ["none", "refusing"])
async def test_without_a_working_relay_the_page_tells_the_technician_within_20_s_and_the_auditor_reads_why(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, chromium_path: str, tmp_path: Path, relay: str
) -> None:
    """No TURN configured, or credentials coturn refuses: the session page says so, then the audit page shows the attempt."""
    net = net_topology
    env = {"DESKHAND_ICE_LOOPBACK": "false"} if relay == "none" else coturn.broker_env("udp", secret="not-" + "x" * 40)
    with net.entered("tech"), relay_broker(net, env) as broker:
        async with technician_in_chromium(net, broker, chromium_path, tmp_path, xvfb) as chromium:
            page, session_id, problems = chromium.page, chromium.session_id, chromium.problems
            # From the host's start: its join, consent and offer come out of these 20 s too.
            failed = page.locator("#connection-failed")
            await expect(failed).to_be_visible(timeout=20_000)
            await expect(failed).to_contain_text("Could not connect to")
            if relay == "refusing":
                await expect(failed).to_contain_text("The relay said:")
            assert problems == []

            # The auditor's page: the failed attempt of the side that gave up first (the other closes
            # its own on hearing it), once the broker has sealed it (every second).
            failures = page.locator("ol.timeline li[data-kind='session.ice_failed']")
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                await page.goto(f"{broker.base_url}/#/audit/{session_id}")
                await expect(page.locator("#integrity")).to_be_visible()
                if await failures.count() or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(1)
            texts = await failures.all_inner_texts()
            assert texts, "no session.ice_failed on the audit page"
            for text in texts:
                assert "attempt 1 gave up after" in text, text
                assert "candidates tried: host" in text, text
                if relay == "none":
                    assert "no relay refused" in text, text
            if relay == "refusing":
                assert any(f"relay refusals: {coturn.url('udp')}: the relay refused" in t for t in texts), texts
