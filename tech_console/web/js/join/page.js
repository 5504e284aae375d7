// The join page (/join/): the end user gets help without installing anything. They type the
// code (or open /join/#CODE: a fragment never reaches the broker), see who asks and what they
// may allow, and share a screen, window or tab; this page is then the session's host
// (share_peer.js), its consent given as `browser`: chat (chat.js) and files both ways
// (files.js) as far as the user allowed, and the survey at the end (survey.js). Control is not
// possible from a browser, and the page says how to get it. What is shared is recorded
// (recorder.js); a browser that cannot record shares nothing when the session's policy requires
// recording. Stopping the share ends the session.

import { h } from "../dom.js";
import { EventReporter } from "../session_events.js";
import { openSignalling } from "../signalling.js";
import { ChatPanel } from "./chat.js";
import { FilesPanel } from "./files.js";
import { linkToDownloads } from "./downloads.js";
import { cannotRecord, recordingPolicy, ShareRecorder, WORDS as RECORDING } from "./recorder.js";
import { codeDigits, redeem } from "./redeem.js";
import { SharePeer } from "./share_peer.js";
import { surveyForm } from "./survey.js";

/** What a browser share may be allowed, in protocol/permissions.py's order, in words for a browser: only what
 * this page carries out (never control or the clipboard, which a page cannot reach). */
const CHOICES = [
  ["view", "see what you share"],
  ["chat", "chat with you"],
  ["files.send", "send you files (you save each one where you want)"],
  ["files.receive", "ask you for files (you pick each one, or decline)"],
];
/** Ticked in advance (host_client/session_state.py DEFAULT_PRESELECTED). */
const PRESELECTED = new Set(["view", "chat"]);

/** The `end` reasons (the first is host_client/session_state.py's DECLINED). */
const REASONS = {
  declined: "the user declined the session",
  stopped: "the user stopped sharing",
  closed: "the user closed the join page",
  cannotRecord: "this browser cannot record the session, which must be recorded",
};
/** How long the page goes on uploading the recording after the session's end (ms). */
const SAVING_MS = 5 * 60_000;

export const WORDS = {
  noCapture: "This browser cannot share a screen. Open this page in a current Chrome, Edge or Firefox on a "
    + "computer (on a phone or tablet, or over plain HTTP, sharing is not possible), or ask your technician for the Deskhand app.",
  pickerRefused: "Nothing is shared: no screen, window or tab was chosen, or the browser was not allowed to share. "
    + "Press “Share my screen” to choose again.",
  control: "Your technician cannot control your mouse and keyboard from a browser. If they need to, install the "
    + "Deskhand app they send you (deskhand-host) and join with a new code from them.",
};

const main = document.getElementById("main");

/** The code in the address (/join/#123456789), then gone from it: it is a credential. */
function codeFromAddress() {
  let digits = "";
  try { digits = codeDigits(decodeURIComponent(location.hash.slice(1))); } catch (_) { /* not a code */ }
  if (location.hash) history.replaceState(null, "", location.pathname);
  return /^\d{1,64}$/.test(digits) ? digits : "";
}

function canCapture() {
  return !!(navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === "function");
}

function renderCodeStep() {
  const error = h("p", { class: "error", role: "alert", id: "join-error" });
  const codeInput = h("input", {
    id: "join-code", class: "code-input", name: "code", inputmode: "numeric", autocomplete: "off",
    required: true, maxlength: 64, value: codeFromAddress(),
  });
  const nameInput = h("input", { id: "join-name", name: "name", autocomplete: "name", maxlength: 256 });
  const button = h("button", { type: "submit" }, "Join");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const code = codeDigits(codeInput.value);
      if (!/^\d{9}$/.test(code)) { error.textContent = "A support code has 9 digits: check it with your technician."; return; }
      button.disabled = true;
      try {
        const joined = await redeem(code, nameInput.value);
        startSession(joined);
      } catch (err) {
        error.textContent = err.message;
        button.disabled = false;
      }
    },
  },
  h("label", {}, "Support code", codeInput),
  h("label", {}, "Your name (shown to your technician)", nameInput),
  error, button);
  const supported = canCapture();
  main.replaceChildren(h("section", { class: "panel", "aria-labelledby": "join-title" },
    h("h1", { id: "join-title" }, "Get help: share your screen"),
    h("p", {}, "Type the code your technician gave you. Nothing is installed: you choose what to share, and you can stop at any time."),
    supported ? form : h("p", { class: "error", role: "alert", id: "no-capture" }, WORDS.noCapture)));
  if (supported) (codeInput.value ? nameInput : codeInput).focus();
}

/** After the join: signalling, the consent step, sharing, and the end. */
function startSession(joined) {
  const technician = joined.technician.display_name;
  const state = {
    grant: null, policy: null, technicianPresent: false, stream: null, chosen: null, ending: null, ended: false,
  };
  let recorder = null;
  const recordingState = h("p", { id: "recording-state", role: "status" });
  let signalling = null;
  const token = joined.host_token;
  const peer = new SharePeer((m) => signalling !== null && signalling.send(m), {
    onState: (s) => {
      if (s === "connected") shareState.textContent = `${technician} sees what you share.`;
      // A connection that broke is offered again (the host does the same on a failed attempt).
      if (s === "failed") setTimeout(offerIfReady, 2000);
    },
    onControl: (data) => {
      let message;
      try { message = JSON.parse(data); } catch (_) { return; }
      if (message && message.type === "chat") chat.received(message);
    },
  });
  // What the user does in the session, for the trail, as the host reports it.
  const events = new EventReporter(joined.session_id, { token });
  const chat = new ChatPanel({ technician, send: (m) => peer.sendControl(m), report: (kind, data) => events.add(kind, data) });
  const files = new FilesPanel({ sessionId: joined.session_id, token, technician });

  // --- consent ------------------------------------------------------------------------------
  const consentError = h("p", { class: "error", role: "alert", id: "share-error" });
  const choices = h("div", { class: "steps", id: "consent-choices" }, h("p", { class: "muted" }, "Connecting…"));
  const shareButton = h("button", { id: "share-button", disabled: true, onclick: () => share() }, "Share my screen");
  const consentPanel = h("section", { class: "panel", "aria-labelledby": "consent-title", id: "consent-panel" },
    h("h1", { id: "consent-title" }, `${technician} asks to see your screen`),
    h("p", { class: "muted" }, `Ticket #${joined.ticket_id}. Choose what ${technician} may do, then pick what to share.`),
    choices,
    linkToDownloads(h("p", { id: "control-note" }, WORDS.control)),
    recordingState,
    consentError,
    h("div", { class: "row" }, shareButton,
      h("button", { class: "secondary", id: "decline-button", onclick: () => end(REASONS.declined) }, "Decline")));

  function renderChoices() {
    if (state.ending) return;
    const granted = new Set(state.grant.permissions);
    const offered = CHOICES.filter(([p]) => granted.has(p));
    if (!granted.has("view")) {
      choices.replaceChildren(h("p", { class: "error" }, `${technician} may not see screens in this session: there is nothing to share.`));
      return;
    }
    // No recording, no session: a browser that cannot record shares nothing when recording is required.
    const policy = recordingPolicy(state.policy), why = cannotRecord();
    if (policy.recording_required && why) {
      consentError.textContent = RECORDING.cannotRecordRequired(why);
      end(REASONS.cannotRecord);
      return;
    }
    recordingState.textContent = why ? RECORDING.notRecorded(why) : RECORDING.recorded(policy);
    choices.replaceChildren(...offered.map(([p, words]) => h("label", { class: "check" },
      // Seeing the share is what sharing is: always on.
      h("input", { type: "checkbox", name: "permission", value: p, checked: PRESELECTED.has(p), disabled: p === "view" }),
      `Allow ${technician} to ${words}`)));
    shareButton.disabled = false;
  }

  function chosenPermissions() {
    return [...choices.querySelectorAll("input[name=permission]")].filter((box) => box.checked).map((box) => box.value);
  }

  // --- sharing ------------------------------------------------------------------------------
  const preview = h("video", { id: "shared-preview", class: "preview", autoplay: true, muted: true, playsinline: true });
  preview.muted = true;
  const shareState = h("p", { id: "share-state", role: "status" });
  const sharingPanel = h("section", { class: "panel", "aria-labelledby": "sharing-title", id: "sharing-panel", hidden: true },
    h("h1", { id: "sharing-title" }, `You are sharing with ${technician}`),
    shareState, preview,
    h("div", { class: "row" }, h("button", { class: "danger", onclick: () => end(REASONS.stopped) }, "Stop sharing")),
    chat.element, files.element);
  // While sharing, the same choices stay in view: unticking one takes it back at once.
  const allowedPanel = h("section", { class: "allowed", id: "allowed-panel", "aria-labelledby": "allowed-title" },
    h("h2", { id: "allowed-title" }, `What ${technician} may do`),
    h("p", { class: "muted" }, "Untick what you no longer allow: it stops at once."));
  choices.addEventListener("change", () => {
    if (!state.stream || state.ending || state.ended) return;
    applyChoices();
    sendConsent();
  });

  /** What the user ticked becomes what the page carries out. */
  function applyChoices() {
    state.chosen = ["view", ...chosenPermissions().filter((p) => p !== "view")];
    const allowed = (p) => state.chosen.includes(p) && state.grant.permissions.includes(p);
    chat.allow(allowed("chat"));
    files.allow({ receive: allowed("files.send"), send: allowed("files.receive") });
  }

  async function share() {
    consentError.textContent = "";
    shareButton.disabled = true;
    let stream;
    try {
      // Within the click: the browser asks only in answer to the user's gesture.
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      consentError.textContent = err && err.name === "NotAllowedError" ? WORDS.pickerRefused
        : `Sharing could not start (${err && err.message ? err.message : err}). Press “Share my screen” to try again.`;
      shareButton.disabled = false;
      return;
    }
    if (state.ended || state.ending) { stopTracks(stream); return; }
    state.stream = stream;
    applyChoices();
    events.start();
    // The browser's own "Stop sharing" (or the shared window closing) ends the session too.
    for (const track of stream.getVideoTracks()) track.addEventListener("ended", () => end(REASONS.stopped));
    preview.srcObject = stream;
    preview.play().catch(() => {});
    recorder = new ShareRecorder({
      sessionId: joined.session_id, token, policy: state.policy,
      onStatus: (text, level) => { recordingState.textContent = text; recordingState.className = level === "warning" ? "error" : ""; },
    });
    recorder.start(stream);
    consentPanel.hidden = true;
    allowedPanel.append(choices);
    sharingPanel.append(allowedPanel);
    sharingPanel.hidden = false;
    sharingPanel.insertBefore(recordingState, preview);
    sendConsent();
    shareState.textContent = state.technicianPresent ? `Connecting to ${technician}…` : `Waiting for ${technician} to connect…`;
    offerIfReady();
  }

  function sendConsent() {
    if (state.chosen) signalling.send({ type: "consent", permissions: state.chosen, source: "browser" });
  }

  function offerIfReady() {
    if (state.ended || state.ending || !state.stream || !state.technicianPresent) return;
    peer.offer(state.stream).catch((err) => { shareState.textContent = `Could not connect: ${err.message}`; });
  }

  // --- the end --------------------------------------------------------------------------------
  const overReason = h("p", { id: "over-reason" });
  const overPanel = h("section", { class: "panel", "aria-labelledby": "over-title", id: "over-panel", hidden: true },
    h("h1", { id: "over-title" }, "The session is over"), overReason,
    h("p", { class: "muted", id: "over-note" }, "Nothing is shared any more. You may close this page."));

  /**
   * The user ends the session (declined, stopped sharing). Nothing is shared from this moment;
   * the page says it is over only when the broker has ended the session (its session_ended),
   * so an end decided before the signalling socket is open is sent once it opens, not lost.
   */
  function end(reason) {
    if (state.ended || state.ending) return;
    state.ending = reason;
    peer.close();
    if (recorder) recorder.stop();
    if (state.stream) stopTracks(state.stream);
    shareButton.disabled = true;
    document.getElementById("decline-button").disabled = true;
    shareState.textContent = "Ending the session…";
    choices.replaceChildren(h("p", { class: "muted" }, "Ending the session…"));
    sendEnd();
  }

  function sendEnd() {
    if (state.ending && !state.ended) signalling.send({ type: "end", reason: state.ending });
  }

  /** The session is over: say why, keep received files to save, and ask the survey after a session that happened. */
  function finish(text, { askSurvey = false } = {}) {
    if (state.ended) return;
    state.ended = true;
    events.close();
    peer.close();
    if (state.stream) stopTracks(state.stream);
    preview.srcObject = null;
    if (signalling) signalling.close();
    consentPanel.hidden = sharingPanel.hidden = true;
    overReason.textContent = text;
    if (files.hasFiles) overPanel.append(files.element);
    if (askSurvey) overPanel.append(surveyForm({ sessionId: joined.session_id, token }));
    overPanel.hidden = false;
    if (recorder) {
      // What is recorded and not yet stored goes on uploading: the broker takes it for a while after the end.
      overReason.after(recordingState);
      // The recording line says when the page may be closed.
      if (recorder.recording) overPanel.querySelector("#over-note").textContent = "Nothing is shared any more.";
      recorder.stop().then(() => recorder.drain(SAVING_MS));
    }
    window.removeEventListener("pagehide", leave);
  }

  function endedText(m) {
    if (m.ended_by === "host" && m.reason === REASONS.cannotRecord) return RECORDING.cannotRecordRequired(cannotRecord());
    if (m.ended_by === "host") return m.reason === REASONS.declined ? "You declined the session." : "You stopped sharing.";
    if (m.ended_by === "technician") return `${technician} ended the session${m.reason ? `: ${m.reason}` : "."}`;
    return `The session ended${m.reason ? `: ${m.reason}` : "."}`;
  }

  function onSignal(m) {
    if (m.type === "welcome") {
      state.policy = m.policy || null;
      peer.setIce(m.ice);
      state.technicianPresent = !!(m.peer && m.peer.role === "technician");
      sendConsent(); // again after a reconnect: the broker keeps what it stored
      if (state.chosen) files.resume(); // what the session has running
      offerIfReady();
    } else if (m.type === "ice_config") {
      peer.setIce(m.ice);
    } else if (m.type === "grant") {
      const first = state.grant === null;
      state.grant = m.grant.grant;
      if (first) renderChoices();
    } else if (m.type === "peer_joined" && m.peer.role === "technician") {
      state.technicianPresent = true;
      offerIfReady(); // a (re)connected technician has no media yet
    } else if (m.type === "peer_left" && m.role === "technician") {
      state.technicianPresent = false;
      peer.close();
      if (state.stream) shareState.textContent = `${technician} left; waiting for them to come back…`;
    } else if (m.type === "answer") {
      peer.answered(m).catch((err) => { shareState.textContent = `Could not connect: ${err.message}`; });
    } else if (m.type === "ice") {
      peer.addCandidate(m);
    } else if (m.type === "transfer") {
      files.onTransfer(m.transfer);
    } else if (m.type === "file_request") {
      files.onFileRequest(m.request);
    } else if (m.type === "session_ended") {
      // Asked only after a session that happened (consent given, ended by one of the two people), as the host does.
      finish(endedText(m), { askSurvey: !!state.chosen && (m.ended_by === "technician" || m.ended_by === "host") });
    }
  }

  // Leaving while recorded seconds still upload would lose them from the session's record: the browser asks first.
  window.addEventListener("beforeunload", (event) => { if (recorder && recorder.unsaved) event.preventDefault(); });

  function leave() { if (!state.ended) signalling.send({ type: "end", reason: REASONS.closed }); }

  main.replaceChildren(consentPanel, sharingPanel, overPanel);
  main.focus();
  signalling = openSignalling(joined.session_id, onSignal, (s, why) => {
    if (s === "open") sendEnd(); // an end the user chose while the socket was (re)connecting
    if (s === "closed" && !state.ended) finish(`Lost the connection to the broker${why ? `: ${why}` : ""}.`);
  }, { token: joined.host_token });
  // Leaving the page leaves the session: its token is gone with the page, nothing could rejoin it.
  window.addEventListener("pagehide", leave);
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

renderCodeStep();
