"""The browser console notices a silent host, waits for its new offers, and says what happens.

``LiveView`` (tech_console/web/js/live_view.js) in Chromium against a stand-in host in the
same page: an RTCPeerConnection that offers the host's three data channels, pings once a
second and answers pings, and can go silent, as the host does when its link breaks. The
page's side of it (badge, notes, input) is checked with the real ``deskhand-host`` in
:mod:`tests.netns.test_recovery_browser`; here a healthy session with that host on
loopback shows pings and pongs flowing and never "reconnecting".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, expect

from peer.liveness import TECHNICIAN_WORDS
from tests.browser.conftest import open_new_session, sign_in, video_size

pytestmark = pytest.mark.slow

RIG = """async () => {
  const { LiveView } = await import("/js/live_view.js");
  const { Recovery } = await import("/js/liveness.js");
  const t0 = performance.now();
  const rig = window.__rig = { log: [], signalled: [], host: null, views: {} };
  const at = () => (performance.now() - t0) / 1000;
  rig.at = at;

  /** A stand-in host's offer of a new connection; `complete`: it applies the answer (else it never connects). */
  rig.offer = async (attempt, complete = true) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const host = { pc, attempt, complete, talking: true, pingsSeen: [], pongsSeen: [], nextSeq: 1, open: false };
    pc.createDataChannel("input");
    pc.createDataChannel("pointer");
    const control = host.control = pc.createDataChannel("control");
    control.onopen = () => { host.open = true; };
    control.onmessage = (event) => {
      if (!host.talking) return; // the link is down: nothing arrives, nothing goes
      const m = JSON.parse(event.data);
      if (m.type === "ping") { host.pingsSeen.push(m.seq); control.send(JSON.stringify({ type: "pong", seq: m.seq })); }
      if (m.type === "pong") host.pongsSeen.push(m.seq);
    };
    host.pinger = setInterval(() => {
      if (host.talking && control.readyState === "open") control.send(JSON.stringify({ type: "ping", seq: host.nextSeq++ }));
    }, 1000);
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise((done) => pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") done();
      }));
    }
    host.sdp = pc.localDescription.sdp;
    return host;
  };
  /** The broker's relay of what a view signals, to the current stand-in host. */
  const signal = (name) => (m) => {
    rig.signalled.push({ view: name, at: at(), ...m });
    const host = rig.host;
    if (!host) return true;
    if (m.type === "answer" && m.attempt === host.attempt && host.complete) host.pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
    if (m.type === "ice" && m.candidate && host.complete) {
      host.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index }).catch(() => {});
    }
    return true;
  };
  rig.view = (name, giveUpSeconds) => {
    const hook = (what) => (text) => rig.log.push({ view: name, at: at(), what, text });
    const video = document.createElement("video");
    video.muted = true;
    rig.views[name] = new LiveView(video, signal(name), {
      onReconnecting: hook("reconnecting"), onRestored: hook("restored"), onLost: hook("lost"), onFailed: hook("failed"),
    }, new Recovery(giveUpSeconds ? { giveUpSeconds } : {}));
  };
  /** The view answers as the page does: an answer that throws is a note the technician reads. */
  rig.answer = (name, host) => {
    rig.views[name].answer(host.sdp, host.attempt).catch((err) => rig.log.push({ view: name, at: at(), what: "threw", text: String(err) }));
  };
  rig.connect = async (name, attempt) => {
    const host = rig.host = await rig.offer(attempt);
    rig.answer(name, host);
    while (!host.open || !rig.views[name].isOpen("control")) await new Promise((done) => setTimeout(done, 50));
  };
  rig.state = () => ({
    log: rig.log, signalled: rig.signalled.filter((m) => m.type !== "ice"), now: at(),
    host: rig.host && { attempt: rig.host.attempt, pingsSeen: rig.host.pingsSeen, pongsSeen: rig.host.pongsSeen },
    reconnecting: Object.fromEntries(Object.entries(rig.views).map(([n, v]) => [n, v.reconnecting])),
    open: Object.fromEntries(Object.entries(rig.views).map(([n, v]) => [n, !!v.pc])),
  });
}"""


async def rig_state(page: Page) -> dict[str, Any]:
    return await page.evaluate("() => window.__rig.state()")


async def logged(page: Page, view: str, what: str, timeout: float) -> dict[str, Any]:
    """The first ``what`` the view's hooks logged, waited for up to ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [e for e in (await rig_state(page))["log"] if e["view"] == view and e["what"] == what]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{view}: no {what} within {timeout:g} s: {await rig_state(page)}")
        await asyncio.sleep(0.1)


async def test_a_silent_host_is_reconnecting_until_its_new_offer_answers(broker, console_page) -> None:
    page = await console_page(broker)
    await page.evaluate(RIG)
    await page.evaluate("async () => { window.__rig.view('main'); await window.__rig.connect('main', 1); }")
    await asyncio.sleep(3.6)
    state = await rig_state(page)
    # The view pings once a second from 1 on, and answers the host's pings with their seq.
    assert state["host"]["pingsSeen"][:3] == [1, 2, 3], state
    assert len(state["host"]["pongsSeen"]) >= 2 and state["host"]["pongsSeen"] == sorted(state["host"]["pongsSeen"]), state
    assert state["log"] == [] and state["reconnecting"] == {"main": False}
    assert [(m["type"], m["attempt"]) for m in state["signalled"]] == [("answer", 1)]

    # The link breaks: no pong for 3 s is "reconnecting" (the last pong came up to 1 s before).
    silent_at = await page.evaluate("() => { window.__rig.host.talking = false; return window.__rig.at(); }")
    reconnecting = await logged(page, "main", "reconnecting", timeout=6)
    assert 1.9 <= reconnecting["at"] - silent_at <= 3.6, (reconnecting, silent_at)
    assert reconnecting["text"] == TECHNICIAN_WORDS.reconnecting

    # A re-offer whose connection never comes up: no connect deadline, no ice_failed, still reconnecting.
    await page.evaluate("async () => { const r = window.__rig; r.host = await r.offer(2, false); r.answer('main', r.host); }")
    while len((state := await rig_state(page))["signalled"]) < 2:
        await asyncio.sleep(0.1)
    # Answered, and no deadline armed for it: waiting out the 15 s would show the same, slowly.
    assert await page.evaluate("() => window.__rig.views.main.deadline === null")
    await asyncio.sleep(1)
    state = await rig_state(page)
    assert [(m["type"], m["attempt"]) for m in state["signalled"]] == [("answer", 1), ("answer", 2)], state
    assert [e["what"] for e in state["log"]] == ["reconnecting"] and state["reconnecting"] == {"main": True}

    # Two offers arrive back to back: only the latest is answered, and it brings the host back.
    await page.evaluate("""async () => {
        const r = window.__rig;
        const older = await r.offer(3), newer = await r.offer(4);
        r.host = newer;
        r.answer('main', older);
        r.answer('main', newer);
    }""")
    restored = await logged(page, "main", "restored", timeout=10)
    assert restored["text"] == TECHNICIAN_WORDS.restored
    state = await rig_state(page)
    assert [(m["type"], m["attempt"]) for m in state["signalled"]] == [("answer", 1), ("answer", 2), ("answer", 4)], state
    assert [e["what"] for e in state["log"]] == ["reconnecting", "restored"], state  # the older offer dropped quietly
    assert state["reconnecting"] == {"main": False}
    # The new connection's pings carry on the session's count, and the old ones' pongs were not needed.
    assert state["host"]["pingsSeen"] and state["host"]["pingsSeen"][0] > 3


async def test_a_host_silent_too_long_is_lost(broker, console_page) -> None:
    page = await console_page(broker)
    await page.evaluate(RIG)
    await page.evaluate("async () => { window.__rig.view('short', 2); await window.__rig.connect('short', 1); }")
    await asyncio.sleep(1.5)
    await page.evaluate("() => { window.__rig.host.talking = false; }")
    reconnecting = await logged(page, "short", "reconnecting", timeout=6)
    lost = await logged(page, "short", "lost", timeout=4)
    assert 1.9 <= lost["at"] - reconnecting["at"] <= 2.6
    assert lost["text"] == TECHNICIAN_WORDS.lost(2)
    state = await rig_state(page)
    assert state["open"] == {"short": False} and state["reconnecting"] == {"short": False}  # closed, watching no more
    assert [m["type"] for m in state["signalled"]] == ["answer"]  # no ice_failed: it connected, then was lost
    pings = len(state["host"]["pingsSeen"])
    await asyncio.sleep(1.5)
    assert len((await rig_state(page))["host"]["pingsSeen"]) == pings


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


COUNT_LIVENESS_SENT = """(() => {
  // What the page sends on data channels, counted by type: its pings, and its pongs to the host's pings.
  window.__liveness = { ping: [], pong: [] };
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    if (typeof data === "string" && data.length < 128) {
      let m = null;
      try { m = JSON.parse(data); } catch (_) { /* not JSON: no liveness frame */ }
      if (m && m.type in window.__liveness) window.__liveness[m.type].push(m.seq);
    }
    return send.call(this, data);
  };
})();"""


async def test_a_healthy_session_pings_both_ways_and_never_reconnects(broker, xvfb, console_page, hosts, tmp_path) -> None:
    page = await console_page(broker)
    await page.context.add_init_script(COUNT_LIVENESS_SENT)
    await page.reload()
    await sign_in(page, "admin", broker.admin_password)
    code = await open_new_session(page, "Slow screen", "Ann Smith", "ann@example.com")
    host = hosts.join(broker, code, xvfb.env, "view,control,chat", tmp_path / "downloads")
    await video_size(page, timeout=60)
    await expect(page.locator("#session-log")).to_contain_text("connected to the host's screen")
    before = await page.evaluate("() => ({ ping: window.__liveness.ping.length, pong: window.__liveness.pong.length })")
    await asyncio.sleep(6)
    sent = await page.evaluate("() => window.__liveness")
    # A ping a second from the page, and a pong for each of the host's (the host answers ours:
    # otherwise the page would be reconnecting 3 s after the first unanswered one).
    assert len(sent["ping"]) - before["ping"] >= 5 and sent["ping"] == list(range(1, len(sent["ping"]) + 1)), sent
    assert len(sent["pong"]) - before["pong"] >= 5 and sent["pong"] == sorted(set(sent["pong"])), sent
    await expect(page.locator("#connection-state")).to_have_text("connected")
    await expect(page.locator("#session-log")).not_to_contain_text(TECHNICIAN_WORDS.reconnecting)
    await expect(page.get_by_role("button", name="Type", exact=True)).to_be_enabled()
    await page.get_by_label("Note for the ticket").fill("healthy")
    await page.get_by_role("button", name="End session").click()
    await expect(page.locator("#ended")).to_contain_text("healthy")
    out, _err = await asyncio.to_thread(host.communicate, timeout=30)
    assert "Reconnecting" not in out, out

