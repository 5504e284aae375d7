// The end user's browser as the session's host peer: it offers, the technician answers
// (docs/api.md, "Signalling"), as host_client/session.py does. Each offer carries the shared
// screen's video track and opens the `control` data channel (protocol/channel.py), where this
// side answers the technician's liveness pings: the console watches the channel from the
// moment it opens and would take a silent host for gone.

import { parseLiveness } from "../liveness.js";
import { candidateInit, iceMessage, rtcConfiguration } from "../rtc.js";

/** Chat lines the user may type before the control channel is open; sent when it opens
 * (host_client/session.py PENDING_CONTROL_LIMIT). */
const PENDING_CONTROL_LIMIT = 50;
/** What this page takes on `control` besides liveness, as the host (protocol/channel.py
 * CONTROL_MESSAGES_PER_SECOND, CONTROL_MESSAGE_BURST): beyond, dropped before parsing. */
export const CONTROL_PER_SECOND = 5, CONTROL_BURST = 20;
/** The technician is told of dropped messages at most this often (ms), as by the host. */
const TELL_EVERY_MS = 5000;

/** A token bucket (protocol/rates.py TokenBucket): `rate` a second after a `burst`. */
class TokenBucket {
  constructor(rate, burst) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.at = performance.now();
  }

  /** Take one token now; false when there is none. */
  take() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class SharePeer {
  /**
   * @param {(message: object) => boolean} signal sends a signalling message
   * @param {{onState?: (state: string) => void, onControl?: (data: string) => void}} hooks
   *   `onState`: the connection's state; `onControl`: each control message that is no liveness frame
   */
  constructor(signal, hooks = {}) {
    this.signal = signal;
    this.hooks = hooks;
    this.ice = { servers: [] };
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** Offers made in this page (the `attempt` the answer must name). */
    this.attempt = 0;
    this.pendingCandidates = [];
    /** @type {RTCDataChannel|null} the current connection's `control` channel */
    this.control = null;
    /** Control messages waiting for a channel to open. */
    this.pendingControl = [];
    /** What the technician's control messages may use (a hostile console must not flood the page). */
    this.controlRate = new TokenBucket(CONTROL_PER_SECOND, CONTROL_BURST);
    this.refusedTotal = 0;
    this.toldAt = -Infinity;
  }

  /**
   * Send a control message (chat) to the technician now, or once the channel opens.
   * @param {object} message @returns {boolean} false when it can be neither sent nor queued
   */
  sendControl(message) {
    if (this.control && this.control.readyState === "open") {
      this.control.send(JSON.stringify(message));
      return true;
    }
    if (this.pendingControl.length >= PENDING_CONTROL_LIMIT) return false;
    this.pendingControl.push(message);
    return true;
  }

  /** @param {object} ice the `ice` of the broker's welcome, or of a later `ice_config` */
  setIce(ice) { this.ice = ice || { servers: [] }; }

  /**
   * Offer a new connection carrying `stream`'s video; it replaces any earlier one (the
   * technician reconnected, or the last one failed).
   * @param {MediaStream} stream
   */
  async offer(stream) {
    this.close();
    const pc = new RTCPeerConnection(rtcConfiguration(this.ice));
    this.pc = pc;
    const attempt = ++this.attempt;
    for (const track of stream.getVideoTracks()) pc.addTrack(track, stream);
    const control = pc.createDataChannel("control", { ordered: true });
    this.control = control;
    control.addEventListener("message", (event) => { if (pc === this.pc) this._onControl(control, event.data); });
    control.addEventListener("open", () => {
      if (pc !== this.pc) return;
      for (const message of this.pendingControl.splice(0)) control.send(JSON.stringify(message));
    });
    pc.onicecandidate = (event) => { if (pc === this.pc) this.signal(iceMessage(event.candidate)); };
    pc.onconnectionstatechange = () => {
      if (pc === this.pc && this.hooks.onState) this.hooks.onState(pc.connectionState);
    };
    const offer = await pc.createOffer();
    if (pc !== this.pc) return;
    await pc.setLocalDescription(offer);
    if (pc !== this.pc) return;
    this.signal({ type: "offer", sdp: pc.localDescription.sdp, attempt });
  }

  /**
   * The technician's answer; one to an offer since replaced is dropped (as the host does).
   * @param {{sdp: string, attempt: number|null}} message
   */
  async answered(message) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    if (message.attempt !== null && message.attempt !== undefined && message.attempt !== this.attempt) return;
    await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    for (const candidate of this.pendingCandidates.splice(0)) await this._add(pc, candidate);
  }

  /** A candidate the technician trickled; held until its answer is applied. */
  async addCandidate(message) {
    if (!message.candidate) return;
    if (!this.pc || !this.pc.remoteDescription) { this.pendingCandidates.push(message); return; }
    await this._add(this.pc, message);
  }

  async _add(pc, message) {
    try { await pc.addIceCandidate(candidateInit(message)); } catch (_) { /* one for an old connection: harmless */ }
  }

  _onControl(channel, data) {
    const frame = parseLiveness(data);
    if (frame && frame.type === "ping") {
      if (channel.readyState === "open") channel.send(JSON.stringify({ type: "pong", seq: frame.seq }));
    } else if (!frame && !this.controlRate.take()) {
      this.refusedTotal += 1;
      if (performance.now() - this.toldAt >= TELL_EVERY_MS && channel.readyState === "open") {
        this.toldAt = performance.now();
        channel.send(JSON.stringify({
          type: "refused", seq: null, what: "rate_limited", refused_total: this.refusedTotal,
          reason: `more than ${CONTROL_BURST} messages at once or ${CONTROL_PER_SECOND} a second; messages are dropped until you slow down`,
        }));
      }
    } else if (!frame && this.hooks.onControl) {
      this.hooks.onControl(data);
    }
  }

  /** Close the connection (the technician left, the session ended, the share stopped). */
  close() {
    this.pendingCandidates = [];
    this.control = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }
}
