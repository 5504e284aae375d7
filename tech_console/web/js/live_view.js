// The WebRTC side of a live session: answers the host's offer, shows its screen, and holds
// the three data channels the host creates (protocol/channel.py). Mirrors
// tech_console/remote_view.py: the host offers (again on every reconnect), this side answers.
// Once `control` is open it pings the host and answers its pings (liveness.js): a silence
// is "reconnecting" until the host's new offers bring a connection back, or the time is up.

import { Recovery, parseLiveness } from "./liveness.js";
import { candidateInit, iceMessage, rtcConfiguration } from "./rtc.js";

export { rtcConfiguration }; // its home is rtc.js; importers of this module keep finding it here

/** The candidate kinds in protocol/ice.py's order (CANDIDATE_TYPES). */
export const CANDIDATE_TYPES = ["host", "srflx", "prflx", "relay"];

/** How long one connection attempt may take before the technician is told it failed (as the Python peers). */
export const CONNECT_DEADLINE_MS = 15000;

/**
 * Why a TURN server gave no relay, in the words peer/aiortc_hooks.py uses (Chromium's icecandidateerror codes).
 * @param {number} code @param {string} text
 */
export function turnFailureReason(code, text) {
  if (code === 401) return "the relay refused the credentials (wrong or expired)";
  if (code === 486) return "the relay's allocation quota is reached (486)";
  if (code === 403) return "the relay refused the allocation (403 forbidden)";
  if (code === 701) return "the relay is unreachable (no answer in time)";
  return `the relay refused the allocation (${code}${text ? " " + text : ""})`;
}

/**
 * The route words for a selected candidate pair (protocol/route.py says the same for the Python console).
 * @param {string} localType @param {string} remoteType @param {string|undefined} relayProtocol
 */
export function routeWords(localType, remoteType, relayProtocol) {
  if (localType === "relay" || remoteType === "relay") {
    const over = localType === "relay" && relayProtocol ? ` over ${relayProtocol.toUpperCase()}` : "";
    return `relayed through TURN${over}`;
  }
  if (localType === "host" && remoteType === "host") return "direct";
  return "direct through NAT";
}

/**
 * "slow connection: 1.2 Mbit/s, 12 fps" while the host says its link limits the picture, else null:
 * protocol/route.py's link_line, word for word (integer rounding only, so both round alike).
 * @param {{limited: boolean, kbps: number, fps: number}|null} state the host's latest `link` message
 */
export function linkWords(state) {
  if (!state || !state.limited) return null;
  let rate;
  if (state.kbps >= 1000) {
    const tenths = Math.floor((state.kbps + 50) / 100);
    rate = `${Math.floor(tenths / 10)}.${tenths % 10} Mbit/s`;
  } else {
    rate = `${state.kbps} kbit/s`;
  }
  return `slow connection: ${rate}, ${Math.floor(state.fps + 0.5)} fps`;
}

/**
 * What the technician reads when an attempt failed: peer/connect_watch.py's failure_text, word for word.
 * @param {{seconds: number, turn_failures?: {url: string, reason: string}[]}} failure an ice_failed message
 * @param {boolean} theirs the host gave up (its ice_failed arrived), not this browser
 */
export function failureAdvice(failure, theirs) {
  const other = "the end user";
  const lead = theirs
    ? `Could not connect to ${other}: ${other}'s computer could not set up the media connection.`
    : `Could not connect to ${other}: no network path worked (gave up after ${Number(failure.seconds).toFixed(1)} s).`;
  let text = `${lead} Check that your firewall allows outgoing UDP and HTTPS (TCP 443) connections, `
    + "or ask your administrator to check the TURN settings.";
  const relays = failure.turn_failures || [];
  if (relays.length) text += " The relay said: " + relays.map((f) => `${f.url}: ${f.reason}`).join("; ") + ".";
  return text;
}

/**
 * What the technician reads while the media connection is interrupted, back, or lost: the
 * Python console's words (peer/liveness.py TECHNICIAN_WORDS; tests/unit/test_liveness.py keeps them equal).
 */
export const RECOVERY_WORDS = {
  reconnecting: "Reconnecting to the user's computer…",
  restored: "The connection is back.",
  notRestored: "The user's network may be down, or a firewall now blocks the connection: ask the user to check their network connection.",
};

/** The sentence when reconnecting gave up after `seconds` (as RecoveryWords.lost in peer/liveness.py). */
export function notRestoredText(seconds) {
  return `The connection could not be restored: nothing came through for ${Math.round(seconds)} s. ${RECOVERY_WORDS.notRestored}`;
}

export class LiveView {
  /**
   * @param {HTMLVideoElement} video where the remote screen plays
   * @param {(message: object) => boolean} signal sends a signalling message
   * @param {{onChannel?: (label: string, channel: RTCDataChannel) => void, onState?: (state: string) => void,
   *          onFailed?: (failure: object) => void, onReconnecting?: (text: string) => void,
   *          onRestored?: (text: string) => void, onLost?: (text: string) => void}} hooks
   *   `onFailed` gets the ice_failed this side sent; `onReconnecting`, `onRestored` and `onLost`
   *   get RECOVERY_WORDS' sentence for the host's silence, its return, and giving up (the view is closed then)
   * @param {Recovery} recovery the liveness rules (the default numbers are peer/liveness.py's)
   */
  constructor(video, signal, hooks = {}, recovery = new Recovery()) {
    this.video = video;
    this.signal = signal;
    this.hooks = hooks;
    this.ice = { servers: [] };
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {Record<string, RTCDataChannel>} */
    this.channels = {};
    this.pendingCandidates = [];
    /** Connection attempts so far (one per offer answered). */
    this.attempt = 0;
    this.turnFailures = [];
    this.deadline = null;
    this.recovery = recovery;
    this.recoveryTimer = null;
  }

  /** The host went silent and no connection has answered since: the page shows "reconnecting". */
  get reconnecting() { return this.recovery.reconnecting; }

  /** @param {object} ice the `ice` of the broker's welcome, or of a later `ice_config` (renewed credentials) */
  setIce(ice) { this.ice = ice || { servers: [] }; }

  /**
   * Answer an offer: a new offer always replaces the old connection (the host reconnected).
   * Offers may arrive back to back (held up behind a broken link): one replaced while being
   * answered is dropped, and only the latest is answered.
   * @param {string} sdp @param {number|null} attempt the offer's `attempt`, repeated in the answer
   */
  async answer(sdp, attempt = null) {
    this._closePeer();
    const pc = new RTCPeerConnection(rtcConfiguration(this.ice));
    this.pc = pc;
    this.attempt += 1;
    const tried = this.attempt;
    let startedAt = performance.now();
    this.turnFailures = [];
    pc.onicecandidateerror = (event) => {
      // Chromium reports each server that gave no candidate; a relay that failed is worth naming.
      if (pc !== this.pc || !/^turns?:/.test(event.url || "") || this.turnFailures.length >= 8) return;
      const failure = { url: event.url.slice(0, 512), reason: turnFailureReason(event.errorCode, event.errorText) };
      if (!this.turnFailures.some((f) => f.url === failure.url)) this.turnFailures.push(failure);
    };
    pc.ontrack = (event) => {
      if (event.track.kind !== "video") return;
      // A remote desktop is read, not watched: show each frame as soon as it is decoded
      // rather than holding it for smooth playout (the default buffers for network jitter).
      if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
      else if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
      this.video.srcObject = event.streams[0] || new MediaStream([event.track]);
      // Muted: autoplay is then allowed without a user gesture (there is no audio anyway).
      this.video.play().catch(() => {});
    };
    pc.ondatachannel = (event) => {
      if (pc !== this.pc) return;
      const channel = event.channel;
      this.channels[channel.label] = channel;
      if (channel.label === "control") this._watch(pc, channel);
      if (this.hooks.onChannel) this.hooks.onChannel(channel.label, channel);
    };
    pc.onicecandidate = (event) => {
      if (pc !== this.pc) return;
      // Trickle ICE in our format; an empty candidate marks the end of gathering.
      this.signal(iceMessage(event.candidate));
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") this._clearDeadline();
      if (this.hooks.onState) this.hooks.onState(pc.connectionState);
      if (pc.connectionState === "failed") this._giveUp(pc, tried, startedAt);
    };
    await pc.setRemoteDescription({ type: "offer", sdp });
    if (pc !== this.pc) return; // a newer offer replaced this one meanwhile
    // The clock starts once both sides' descriptions are known, as on the Python peers. While
    // reconnecting none runs: the host's next offer replaces this one, or the time runs out.
    startedAt = performance.now();
    this._clearDeadline();
    if (!this.reconnecting) this.deadline = setTimeout(() => this._giveUp(pc, tried, startedAt), CONNECT_DEADLINE_MS);
    for (const candidate of this.pendingCandidates.splice(0)) {
      if (pc !== this.pc) return;
      await this._add(candidate);
    }
    if (pc !== this.pc) return;
    const answer = await pc.createAnswer();
    if (pc !== this.pc) return;
    await pc.setLocalDescription(answer);
    if (pc !== this.pc) return;
    this.signal({ type: "answer", sdp: pc.localDescription.sdp, attempt: attempt ?? null });
  }

  /**
   * No candidate pair worked in time: tell the host (through the broker) and the page, then close.
   * Not while reconnecting: that connection failing is the break itself, and the host offers anew.
   */
  async _giveUp(pc, attempt, startedAt) {
    if (pc !== this.pc || pc.connectionState === "connected" || this.reconnecting) return;
    this._clearDeadline();
    const local = new Set(), remote = new Set();
    try {
      (await pc.getStats()).forEach((report) => {
        if (report.type === "local-candidate" && report.candidateType) local.add(report.candidateType);
        if (report.type === "remote-candidate" && report.candidateType) remote.add(report.candidateType);
      });
    } catch (_) { /* closed meanwhile: the kinds stay unknown */ }
    if (pc !== this.pc || this.reconnecting) return;
    // As peer/connect_watch.py's ice_failed_message: each kind once in a fixed order, tenths of a second.
    const kinds = (seen) => CANDIDATE_TYPES.filter((t) => seen.has(t));
    const failure = {
      type: "ice_failed", attempt, seconds: Math.round(Math.min(3600, (performance.now() - startedAt) / 1000) * 10) / 10,
      local_types: kinds(local), remote_types: kinds(remote), turn_failures: this.turnFailures.slice(0, 8),
    };
    this.signal(failure);
    this.close();
    if (this.hooks.onFailed) this.hooks.onFailed(failure);
  }

  /** The current connection's control channel: its pings and pongs go to the liveness rules. */
  _watch(pc, channel) {
    const opened = () => { if (pc === this.pc) this._follow(this.recovery.opened(this._now())); };
    if (channel.readyState === "open") opened();
    else channel.addEventListener("open", opened);
    channel.addEventListener("close", () => { if (pc === this.pc) this._follow(this.recovery.closed()); });
    channel.addEventListener("message", (event) => {
      if (pc !== this.pc) return; // a replaced connection's word proves nothing about this one
      const frame = parseLiveness(event.data);
      if (!frame) return;
      this._follow(frame.type === "ping" ? this.recovery.pingReceived(frame.seq) : this.recovery.pongReceived(frame.seq, this._now()));
    });
  }

  /** Carry out what the liveness rules ask, then wake up when they next have something to do. */
  _follow(actions) {
    for (const action of actions) {
      // Through send, not the page's sendToHost: liveness is no technician action to report.
      if (action.type === "send_ping") this.send("control", { type: "ping", seq: action.seq });
      else if (action.type === "send_pong") this.send("control", { type: "pong", seq: action.seq });
      else if (action.type === "interrupted") { if (this.hooks.onReconnecting) this.hooks.onReconnecting(RECOVERY_WORDS.reconnecting); }
      else if (action.type === "restored") { if (this.hooks.onRestored) this.hooks.onRestored(RECOVERY_WORDS.restored); }
      else if (action.type === "gave_up") {
        this.close();
        if (this.hooks.onLost) this.hooks.onLost(notRestoredText(action.seconds));
      }
    }
    if (this.recoveryTimer !== null) { clearTimeout(this.recoveryTimer); this.recoveryTimer = null; }
    const due = this.recovery.dueAt();
    if (due === null) return;
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = null;
      this._follow(this.recovery.tick(this._now()));
    }, Math.max(0, (due - this._now()) * 1000));
  }

  /** Monotonic seconds, the liveness rules' clock. */
  _now() { return performance.now() / 1000; }

  _clearDeadline() {
    if (this.deadline !== null) { clearTimeout(this.deadline); this.deadline = null; }
  }

  /** A candidate the host trickled (aiortc usually puts all of its own into the offer). */
  async addCandidate(message) {
    if (!message.candidate) return;
    if (!this.pc || !this.pc.remoteDescription) { this.pendingCandidates.push(message); return; }
    await this._add(message);
  }

  async _add(message) {
    try {
      await this.pc.addIceCandidate(candidateInit(message));
    } catch (_) { /* a candidate for an old connection: harmless */ }
  }

  /** @param {string} label @returns {boolean} whether the channel is open */
  isOpen(label) {
    const channel = this.channels[label];
    return !!channel && channel.readyState === "open";
  }

  /** Send one JSON message on a channel; false when it is not open. */
  send(label, message) {
    if (!this.isOpen(label)) return false;
    this.channels[label].send(JSON.stringify(message));
    return true;
  }

  /** The session is over for this view (the host left, the session ended, the page closes): watch no more. */
  close() {
    this._closePeer();
    this._follow(this.recovery.stop());
  }

  /** The connection goes (replaced by a new offer, or for good); a silence goes on counting. */
  _closePeer() {
    this._clearDeadline();
    if (this.pc) {
      this.pc.close(); // its channels close without a close event
      this.pc = null;
      this._follow(this.recovery.closed());
    }
    this.channels = {};
    this.video.srcObject = null;
  }
}

/**
 * Connection quality since the previous call: fps, bitrate, round-trip time and route from getStats.
 * @param {RTCPeerConnection} pc
 * @param {{bytes: number, frames: number, at: number}|null} previous what the last call returned in `mark`
 * @returns {Promise<{fps: number|null, kbps: number|null, rttMs: number|null, route: string|null,
 *                    width: number|null, height: number|null, mark: object}>}
 */
export async function qualityOf(pc, previous) {
  const stats = await pc.getStats();
  let inbound = null, pair = null, selectedPairId = null;
  stats.forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") inbound = report;
    if (report.type === "transport" && report.selectedCandidatePairId) selectedPairId = report.selectedCandidatePairId;
  });
  stats.forEach((report) => {
    if (report.type !== "candidate-pair") return;
    if (selectedPairId ? report.id === selectedPairId : report.nominated && report.state === "succeeded") pair = report;
  });
  const rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime : null;
  const local = pair && stats.get(pair.localCandidateId), remote = pair && stats.get(pair.remoteCandidateId);
  const route = local && remote ? routeWords(local.candidateType, remote.candidateType, local.relayProtocol) : null;
  const mark = { bytes: inbound ? inbound.bytesReceived : 0, frames: inbound ? (inbound.framesDecoded || 0) : 0, at: performance.now() };
  let fps = null, kbps = null;
  if (previous && inbound && mark.at > previous.at) {
    const seconds = (mark.at - previous.at) / 1000;
    fps = (mark.frames - previous.frames) / seconds;
    kbps = (8 * (mark.bytes - previous.bytes)) / 1000 / seconds;
  }
  return {
    fps, kbps, rttMs: rtt === null ? null : rtt * 1000, route,
    width: inbound ? inbound.frameWidth || null : null, height: inbound ? inbound.frameHeight || null : null, mark,
  };
}
