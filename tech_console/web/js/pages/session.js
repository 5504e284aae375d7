// The technician's live session: the code while waiting, who joined and what they allow,
// the remote screen with input, monitors, chat, quality, files, and ending with a note.
//
// The wire formats are docs/api.md's; tech_console/remote_view.py is the Python client that
// does the same, and this page mirrors its behaviour.

import { api } from "../api.js";
import { h, toast, when } from "../dom.js";
import { openSignalling } from "../signalling.js";
import { LiveView, failureAdvice, linkWords, qualityOf } from "../live_view.js";
import { InputCapture } from "../input_capture.js";
import { receiveFile, requestFile, sendFile } from "../transfers.js";
import { EventReporter } from "../session_events.js";

const PERMISSION_NAMES = {
  view: "see the screen", control: "control mouse and keyboard", clipboard: "clipboard text",
  chat: "chat", "files.send": "get files from you", "files.receive": "send you files you ask for",
};
const FULLSCREEN_KEY = "Alt+Shift+F";

/** The code ticket.js keeps for this tab: the broker shows a code only once, when started. */
export function rememberedCode(sessionId) {
  return sessionStorage.getItem(`deskhand.code.${sessionId}`);
}

/** The join page's address with `code` in its fragment (tech_console/web/js/join/page.js). */
function joinLink(code) {
  return `${location.origin}/join/#${code.replace(/\s/g, "")}`;
}

/** Load the page's own stylesheet once (style-src 'self' allows it). */
function loadStyles() {
  if (document.querySelector('link[href="/css/session.css"]')) return;
  document.head.append(h("link", { rel: "stylesheet", href: "/css/session.css" }));
}

export async function render(main, ctx, [sessionId]) {
  loadStyles();
  const session = await api("GET", `/sessions/${sessionId}`);
  const state = {
    grant: null, consent: session.consent, host: session.host, ended: ["ended", "expired"].includes(session.state),
    monitors: null, stats: null, policy: null,
  };
  const allowed = (p) => !!(state.grant && state.grant.permissions.includes(p) && state.consent && state.consent.includes(p));
  // While the host is silent nothing typed could reach it (or would arrive late, all at once): no control.
  const controlNow = () => allowed("control") && !view.reconnecting;

  // --- what the page shows --------------------------------------------------------
  const log = h("ul", { class: "log", id: "session-log", "aria-live": "polite", "aria-label": "Session events" });
  function note(text, kind = "") {
    log.prepend(h("li", { class: kind }, h("time", {}, new Date().toLocaleTimeString()), " ", text));
    while (log.children.length > 50) log.lastChild.remove();
  }
  const code = rememberedCode(sessionId);
  const waiting = h("section", { class: "panel", "aria-labelledby": "waiting-title" },
    h("h2", { id: "waiting-title" }, "Waiting for the user"),
    code
      ? [h("p", {}, "Read this code to the end user; they type it into Deskhand on their computer:"),
        h("p", { class: "code", id: "session-code", "aria-label": "support code " + code }, code),
        // The code rides in the fragment, which the browser never sends to the broker.
        h("p", {}, "Or, with nothing installed, they share their screen from a browser at ",
          h("a", { id: "join-link", href: joinLink(code), target: "_blank", rel: "noopener" }, joinLink(code)),
          " (view, chat and files; no control).")]
      : h("p", {}, "The code was shown when the session was started (on the ticket page)."),
    h("p", { class: "muted" }, `Valid until ${when(session.code_expires_at)}.`));
  const who = h("dl", { class: "facts" });
  const connection = h("span", { class: "badge", id: "connection-state" }, "connecting");
  function renderWho() {
    const list = (perms) => perms && perms.length ? perms.map((p) => PERMISSION_NAMES[p] || p).join(", ") : "nothing yet";
    who.replaceChildren(
      h("dt", {}, "User"), h("dd", { id: "host-info" }, state.host ? `${state.host.user_name} on ${state.host.machine_name} (${state.host.os})` : "not joined yet"),
      h("dt", {}, "They allow"), h("dd", { id: "consent-info" }, state.consent ? list(state.consent) : "not answered yet"),
      h("dt", {}, "Your grant"), h("dd", {}, state.grant ? list(state.grant.permissions) : "…"),
    );
    waiting.hidden = !!state.host || state.ended;
    controlNote.textContent = state.host && !allowed("control") ? "Remote control is not allowed in this session: view only." : "";
    for (const el of [sendButton, fileInput]) el.disabled = !allowed("files.send");
    requestButton.disabled = !allowed("files.receive");
    typeInput.disabled = typeButton.disabled = !controlNow();
    chatInput.disabled = chatButton.disabled = !allowed("chat");
    clipboardInput.disabled = clipboardButton.disabled = !allowed("clipboard");
  }

  // --- video and input ---------------------------------------------------------------
  const video = h("video", {
    id: "remote-screen", autoplay: true, muted: true, playsinline: true, tabindex: "0",
    "aria-label": "Remote screen. Click or press Enter to control it; press Ctrl+Alt+Shift together to release.",
  });
  video.muted = true;
  const stage = h("div", { class: "stage" }, video);
  const captureState = h("p", { id: "capture-state", class: "capture off", role: "status" }, "Input not captured: click the screen to control it");
  const controlNote = h("p", { class: "error", role: "alert" });
  const releaseButton = h("button", { class: "secondary", disabled: true, onclick: () => input.release() }, "Release input");
  const fullButton = h("button", { class: "secondary", "aria-keyshortcuts": FULLSCREEN_KEY, onclick: () => toggleFullscreen() }, "Full screen");
  const monitorSelect = h("select", { id: "monitor", disabled: true, onchange: () => {
    if (!sendToHost("control", { type: "select_monitor", index: Number(monitorSelect.value) })) note("the control channel is not open", "error");
  } });
  const typeInput = h("input", { name: "text", autocomplete: "off" });
  const typeButton = h("button", { type: "submit", class: "secondary" }, "Type");
  const typeForm = h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    if (typeInput.value && input.typeText(typeInput.value)) typeInput.value = "";
  } }, h("label", { class: "inline" }, "Type on the host", typeInput), typeButton);

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else stage.requestFullscreen().catch((err) => note(`full screen refused: ${err.message}`, "error"));
  }

  let signalling = null;
  // The technician's side of the session for the audit trail (the host reports its own).
  const events = new EventReporter(sessionId);
  /** Send to the host on a data channel, and report it; false when the channel is not open. */
  function sendToHost(label, message) {
    if (!view.send(label, message)) return false;
    events.sent(label, message, state.policy);
    return true;
  }
  const view = new LiveView(video, (m) => signalling && signalling.send(m), {
    onChannel: (label, channel) => {
      channel.addEventListener("open", () => { if (label === "control") note("connected to the host's screen"); });
      if (label === "control") {
        showLink(null); // a new connection: its host says again if the link still limits
        channel.addEventListener("message", (event) => onControl(event.data));
      }
    },
    // While reconnecting the old connection's "disconnected" and "failed" are the break itself.
    onState: (s) => { if (!view.reconnecting) connection.textContent = s; },
    onFailed: (failure) => showFailure(failureAdvice(failure, false)),
    onReconnecting: (text) => {
      connection.textContent = "reconnecting";
      input.release();
      note(text, "warn");
      renderWho();
    },
    onRestored: (text) => {
      connection.textContent = view.pc ? view.pc.connectionState : "connected";
      note(text);
      renderWho();
    },
    onLost: (text) => { input.release(); showFailure(text, "connection lost"); renderWho(); },
  });
  // Nobody waits on a spinner: when no network path works, the page says so and what to check.
  const failureBox = h("p", { id: "connection-failed", class: "error", role: "alert", hidden: true });
  function showFailure(text, badge = "could not connect") {
    connection.textContent = badge;
    failureBox.hidden = false;
    failureBox.textContent = text;
    note(text, "error");
  }
  const input = new InputCapture(video, {
    send: sendToHost,
    allowed: () => controlNow() && view.isOpen("input"),
    onChange: (captured) => {
      captureState.className = "capture " + (captured ? "on" : "off");
      captureState.textContent = captured
        ? "INPUT CAPTURED: keys and mouse go to the user. Ctrl+Alt+Shift releases."
        : "Input not captured: click the screen to control it";
      releaseButton.disabled = !captured;
    },
    onBlocked: (why) => note(view.reconnecting ? "control waits: the connection to the user's computer is interrupted" : why, "error"),
  });

  // --- chat --------------------------------------------------------------------------
  const chatLog = h("ol", { class: "chat", "aria-live": "polite", "aria-label": "Conversation" });
  const chatInput = h("input", { name: "chat", autocomplete: "off", maxlength: "4000" });
  const chatButton = h("button", { type: "submit" }, "Send");
  const chatForm = h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    if (sendToHost("control", { type: "chat", text })) {
      chatLog.append(h("li", { class: "me" }, h("b", {}, "You: "), text));
      chatInput.value = "";
    } else note("chat could not be sent: the host is not connected", "error");
  } }, h("label", { class: "inline grow" }, "Chat message", chatInput), chatButton);

  // --- clipboard -------------------------------------------------------------------------
  const clipboardInput = h("input", { name: "clipboard", autocomplete: "off", maxlength: "32000" });
  const clipboardButton = h("button", { type: "submit", class: "secondary" }, "Put");
  const clipboardForm = h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    if (sendToHost("control", { type: "clipboard", text: clipboardInput.value })) {
      note("put text on the user's clipboard");
      clipboardInput.value = "";
    } else note("the clipboard text could not be sent: the host is not connected", "error");
  } }, h("label", { class: "inline grow" }, "Put on their clipboard", clipboardInput), clipboardButton);

  // --- files -------------------------------------------------------------------------
  const transfers = h("ul", { class: "transfers", "aria-label": "File transfers" });
  const fileInput = h("input", { type: "file", multiple: true, class: "visually-hidden", id: "file-pick",
    onchange: () => { for (const f of fileInput.files) startSend(f); fileInput.value = ""; } });
  const sendButton = h("button", { type: "button", class: "secondary", onclick: () => fileInput.click() }, "Send a file…");
  const receiving = new Set();
  const notedStates = new Map(); // transfer id -> the state the events log last noted
  function startReceive(offered) {
    // A file the user picked in answer to our request: fetched, verified, then offered as a download.
    receiving.add(offered.id);
    const bar = h("progress", { max: String(offered.size || 1), value: "0", "aria-label": `Receiving ${offered.name}` });
    const status = h("span", { class: "muted" }, "receiving");
    const row = h("li", { dataset: { name: offered.name, direction: "in" } }, h("span", {}, `⬇ ${offered.name}`), bar, status);
    transfers.prepend(row);
    receiveFile(sessionId, offered, (done, total) => {
      bar.value = done;
      status.textContent = `receiving ${Math.round((100 * done) / (total || 1))} %`;
    }).then(({ transfer, blob }) => {
      row.dataset.state = transfer.state;
      if (!blob) {
        status.textContent = `${transfer.state}: ${transfer.reason || ""}`;
        status.className = "error";
        return;
      }
      bar.value = offered.size || 1;
      status.replaceChildren(h("span", { class: "ok" }, "SHA-256 verified "),
        h("a", { href: URL.createObjectURL(blob), download: offered.name }, `Save ${offered.name}`));
    }).catch((err) => {
      row.dataset.state = "failed";
      status.textContent = `failed: ${err.message}`;
      status.className = "error";
    });
  }

  function startSend(file) {
    if (!allowed("files.send")) { note(`cannot send ${file.name}: sending files is not allowed`, "error"); return; }
    const bar = h("progress", { max: String(file.size || 1), value: "0", "aria-label": `Sending ${file.name}` });
    const status = h("span", { class: "muted" }, "offering");
    const row = h("li", { dataset: { name: file.name } }, h("span", {}, file.name), bar, status);
    transfers.prepend(row);
    sendFile(sessionId, file, (what, done, total) => {
      status.textContent = `${what} ${Math.round((100 * done) / (total || 1))} %`;
      bar.value = done;
    }).then((t) => {
      row.dataset.state = t.state;
      status.textContent = t.state === "completed" ? `delivered as ${t.saved_as || t.name}, SHA-256 verified` : `${t.state}: ${t.reason || ""}`;
      status.className = t.state === "completed" ? "ok" : "error";
      if (t.state === "completed") bar.value = file.size || 1;
    }).catch((err) => {
      row.dataset.state = "failed";
      status.textContent = `failed: ${err.message}`;
      status.className = "error";
    });
  }
  const requestPath = h("input", { name: "path", autocomplete: "off", maxlength: "4096" });
  const requestNote = h("input", { name: "note", autocomplete: "off", maxlength: "500" });
  const requestButton = h("button", { type: "submit", class: "secondary" }, "Request file");
  const requestForm = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await requestFile(sessionId, { path: requestPath.value, note: requestNote.value });
      note("asked the user for a file");
      requestPath.value = requestNote.value = "";
    } catch (err) { note(`the file request failed: ${err.message}`, "error"); }
  } }, h("label", {}, "Path on their computer (optional)", requestPath), h("label", {}, "Why (shown to the user)", requestNote), requestButton);

  // --- quality -----------------------------------------------------------------------
  const quality = h("dl", { class: "facts", id: "quality", "aria-label": "Connection quality" });
  // The host says when its link, not the screen, limits the picture; shown until it says otherwise
  // or the connection is replaced (the next one's host says it again).
  const slowLink = h("p", { class: "warn", id: "slow-link", role: "status", hidden: true });
  function showLink(state) {
    const words = linkWords(state);
    slowLink.textContent = words || "";
    slowLink.hidden = !words;
  }
  function renderQuality(q) {
    const show = (v, unit, digits = 0) => (v === null || v === undefined ? "–" : `${v.toFixed(digits)} ${unit}`);
    quality.replaceChildren(
      h("dt", {}, "Frames"), h("dd", {}, show(q && q.fps, "fps", 1)),
      h("dt", {}, "Bitrate"), h("dd", {}, show(q && q.kbps, "kbit/s")),
      h("dt", {}, "Round trip"), h("dd", {}, show(q && q.rttMs, "ms")),
      h("dt", {}, "Route"), h("dd", { id: "route" }, (q && q.route) || "–"),
      h("dt", {}, "Picture"), h("dd", {}, q && q.width ? `${q.width}×${q.height}` : "–"),
    );
  }
  renderQuality(null);
  let mark = null;
  const statsTimer = setInterval(async () => {
    if (!view.pc) return;
    try { const q = await qualityOf(view.pc, mark); mark = q.mark; renderQuality(q); } catch (_) { /* closing */ }
  }, 1000);

  // --- ending --------------------------------------------------------------------------
  const endNote = h("textarea", { name: "reason", rows: "2", maxlength: "500" });
  const endForm = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("POST", `/sessions/${sessionId}/end`, { reason: endNote.value });
      // session_ended follows on the signalling and updates the page.
      if (!signalling) finish({ ended_by: "technician", reason: endNote.value });
    } catch (err) { note(`could not end the session: ${err.message}`, "error"); }
  } }, h("label", {}, "Note for the ticket", endNote), h("button", { type: "submit", class: "danger" }, "End session"));
  const endedBox = h("p", { id: "ended", role: "status", hidden: true });

  function finish(message) {
    state.ended = true;
    input.detach(); // keys still held are let go: that input is reported too
    view.close();
    events.close();
    clearInterval(statsTimer);
    connection.textContent = "ended";
    endedBox.hidden = false;
    endedBox.replaceChildren(`The session ended (by the ${message.ended_by}${message.reason ? ": " + message.reason : ""}). `,
      h("a", { href: `#/tickets/${session.ticket_id}` }, "Back to the ticket"));
    endForm.hidden = true;
    renderWho();
  }

  // --- messages from the host and the broker -----------------------------------------
  function onControl(data) {
    let m;
    try { m = JSON.parse(data); } catch (_) { return; }
    if (m.type === "monitors") {
      state.monitors = m;
      monitorSelect.replaceChildren(...m.monitors.map((mon) => h("option", { value: String(mon.index), selected: mon.index === m.selected },
        `${mon.index}: ${mon.width}×${mon.height} at ${mon.left},${mon.top}`)));
      monitorSelect.disabled = m.monitors.length < 2;
    } else if (m.type === "chat") {
      events.received(m);
      chatLog.append(h("li", {}, h("b", {}, `${state.host ? state.host.user_name : "User"}: `), m.text));
    } else if (m.type === "clipboard") {
      events.received(m);
      note(`the user's clipboard: ${m.text.slice(0, 200)}`);
    } else if (m.type === "refused") {
      note(`the host refused ${m.what}: ${m.reason} (${m.refused_total} refused so far)`, "error");
    } else if (m.type === "link") {
      showLink(m);
    } else if (m.type === "notice") {
      note(`the host says: ${m.text}`, "warn");
      toast(m.text);
    }
  }

  async function onSignal(m) {
    if (m.type === "welcome") {
      view.setIce(m.ice);
      state.policy = m.policy;
      if (m.peer && m.peer.host) state.host = m.peer.host;
    } else if (m.type === "ice_config") {
      view.setIce(m.ice); // renewed relay credentials, for the next connection attempt
    } else if (m.type === "ice_failed") {
      showFailure(failureAdvice(m, true));
    } else if (m.type === "grant") {
      state.grant = m.grant.grant;
    } else if (m.type === "consent") {
      const before = state.consent;
      state.consent = m.permissions;
      if (before && before.includes("control") && !m.permissions.includes("control")) input.release();
      note(`the user allows: ${m.permissions.map((p) => PERMISSION_NAMES[p] || p).join(", ") || "nothing"} (${m.source})`);
    } else if (m.type === "peer_joined" && m.peer.role === "host") {
      state.host = m.peer.host;
      note(`${m.peer.host.user_name} joined from ${m.peer.host.machine_name}`);
    } else if (m.type === "peer_left" && m.role === "host") {
      input.release();
      view.close(); // no more watching for its pings: it is gone, not silent
      connection.textContent = "waiting for the user";
      note("the user's computer left; waiting for it to come back", "warn");
    } else if (m.type === "offer") {
      failureBox.hidden = true; // a new attempt
      try { await view.answer(m.sdp, m.attempt); } catch (err) { note(`could not answer the host: ${err.message}`, "error"); }
    } else if (m.type === "ice") {
      await view.addCandidate(m);
    } else if (m.type === "transfer") {
      const t = m.transfer;
      // The broker tells of every change (the sender's hash too): the log notes only new states.
      if (t.direction === "to_technician" && notedStates.get(t.id) !== t.state) {
        notedStates.set(t.id, t.state);
        note(`file from the user: ${t.name} (${t.state})`);
      }
      if (t.direction === "to_technician" && t.state === "offered" && !receiving.has(t.id)) startReceive(t);
    } else if (m.type === "file_request") {
      note(`file request ${m.request.path || ""} is ${m.request.state}${m.request.reason ? ": " + m.request.reason : ""}`);
    } else if (m.type === "session_ended") {
      finish(m);
    } else if (m.type === "error") {
      note(`the broker: ${m.message}`, "error");
    }
    renderWho();
  }

  // --- keyboard shortcut and drag-and-drop ---------------------------------------------
  function onKey(e) {
    if (!input.captured && e.altKey && e.shiftKey && e.code === "KeyF") { e.preventDefault(); toggleFullscreen(); }
  }
  const page = h("div", { class: "session-page", id: "session-page" });
  page.addEventListener("dragover", (e) => { e.preventDefault(); page.classList.add("dropping"); });
  page.addEventListener("dragleave", (e) => { if (e.target === page) page.classList.remove("dropping"); });
  page.addEventListener("drop", (e) => {
    e.preventDefault();
    page.classList.remove("dropping");
    for (const f of (e.dataTransfer && e.dataTransfer.files) || []) startSend(f);
  });

  // --- layout ------------------------------------------------------------------------------
  page.append(
    h("div", { class: "row spread" },
      h("h1", {}, `Live session ${sessionId.slice(0, 8)} `, h("a", { href: `#/tickets/${session.ticket_id}`, class: "small" }, `ticket #${session.ticket_id}`)),
      connection),
    failureBox,
    waiting,
    h("div", { class: "live" },
      h("section", { class: "panel screen", "aria-label": "Remote screen" },
        h("div", { class: "row toolbar" }, captureState, releaseButton, fullButton,
          h("label", { class: "inline" }, "Monitor", monitorSelect)),
        controlNote, stage, typeForm,
        h("p", { class: "muted small" }, `Click the screen to control it; Ctrl+Alt+Shift (together) or "Release input" gives your keyboard back — Escape goes to the user. ${FULLSCREEN_KEY}: full screen. Drop files anywhere on this page to send them.`)),
      h("aside", { class: "side" },
        h("section", { class: "panel", "aria-labelledby": "who-title" }, h("h2", { id: "who-title" }, "Who"), who),
        h("section", { class: "panel", "aria-labelledby": "chat-title" }, h("h2", { id: "chat-title" }, "Chat"), chatLog, chatForm, clipboardForm),
        h("section", { class: "panel", "aria-labelledby": "files-title" }, h("h2", { id: "files-title" }, "Files"),
          h("p", { class: "muted small" }, "Drop files on the page or pick them."), fileInput, sendButton, transfers,
          h("h3", {}, "Ask the user for a file"), requestForm),
        h("section", { class: "panel", "aria-labelledby": "quality-title" }, h("h2", { id: "quality-title" }, "Connection"), slowLink, quality),
        h("section", { class: "panel", "aria-labelledby": "log-title" }, h("h2", { id: "log-title" }, "Events"), log),
        h("section", { class: "panel", "aria-labelledby": "end-title" }, h("h2", { id: "end-title" }, "End the session"), endForm, endedBox),
      )),
  );
  main.append(page);
  renderWho();

  if (state.ended) {
    finish({ ended_by: session.ended_by || "broker", reason: session.end_reason || "" });
    return;
  }
  signalling = openSignalling(sessionId, (m) => { onSignal(m).catch((err) => note(err.message, "error")); }, (s, why) => {
    if (s === "reconnecting") note("lost the broker; reconnecting", "warn");
    if (s === "closed" && !state.ended) note(`signalling closed${why ? ": " + why : ""}`, "error");
  });
  document.addEventListener("keydown", onKey);
  events.start();
  // Closing the tab: what is not reported yet goes with keepalive.
  const unload = () => events.close();
  window.addEventListener("pagehide", unload);
  // Leaving the page leaves the session (it goes on for the host; the technician may come back).
  window.addEventListener("hashchange", function leave() {
    window.removeEventListener("hashchange", leave);
    window.removeEventListener("pagehide", unload);
    document.removeEventListener("keydown", onKey);
    clearInterval(statsTimer);
    input.detach();
    view.close();
    events.close();
    if (signalling) signalling.close();
  });
}
