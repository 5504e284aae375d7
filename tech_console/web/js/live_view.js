// The WebRTC side of a live session: answers the host's offer, shows its screen, and holds
// the three data channels the host creates (protocol/channel.py). Mirrors
// tech_console/remote_view.py: the host offers (again on every reconnect), this side answers.

/**
 * The broker's ICE configuration (protocol/ice.py) as an RTCConfiguration.
 * @param {{servers?: {urls: string[], username?: string, credential?: string}[]}} ice
 * @returns {RTCConfiguration}
 */
export function rtcConfiguration(ice) {
  // An explicit empty list: no public STUN server is ever contacted unless the broker says so.
  return {
    iceServers: (ice && ice.servers || []).map((s) => {
      const server = { urls: s.urls };
      if (s.username) server.username = s.username;
      if (s.credential) server.credential = s.credential;
      return server;
    }),
  };
}

export class LiveView {
  /**
   * @param {HTMLVideoElement} video where the remote screen plays
   * @param {(message: object) => boolean} signal sends a signalling message
   * @param {{onChannel?: (label: string, channel: RTCDataChannel) => void, onState?: (state: string) => void}} hooks
   */
  constructor(video, signal, hooks = {}) {
    this.video = video;
    this.signal = signal;
    this.hooks = hooks;
    this.ice = { servers: [] };
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {Record<string, RTCDataChannel>} */
    this.channels = {};
    this.pendingCandidates = [];
  }

  /** @param {object} ice the `ice` of the broker's welcome */
  setIce(ice) { this.ice = ice || { servers: [] }; }

  /** Answer an offer: a new offer always replaces the old connection (the host reconnected). */
  async answer(sdp) {
    this.close();
    const pc = new RTCPeerConnection(rtcConfiguration(this.ice));
    this.pc = pc;
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
      const channel = event.channel;
      this.channels[channel.label] = channel;
      if (this.hooks.onChannel) this.hooks.onChannel(channel.label, channel);
    };
    pc.onicecandidate = (event) => {
      if (pc !== this.pc) return;
      // Trickle ICE in our format; an empty candidate marks the end of gathering.
      const c = event.candidate;
      this.signal(c && c.candidate
        ? { type: "ice", candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex }
        : { type: "ice", candidate: "", sdp_mid: null, sdp_mline_index: null });
    };
    pc.onconnectionstatechange = () => { if (this.hooks.onState) this.hooks.onState(pc.connectionState); };
    await pc.setRemoteDescription({ type: "offer", sdp });
    for (const candidate of this.pendingCandidates.splice(0)) await this._add(candidate);
    await pc.setLocalDescription(await pc.createAnswer());
    this.signal({ type: "answer", sdp: pc.localDescription.sdp });
  }

  /** A candidate the host trickled (aiortc usually puts all of its own into the offer). */
  async addCandidate(message) {
    if (!message.candidate) return;
    if (!this.pc || !this.pc.remoteDescription) { this.pendingCandidates.push(message); return; }
    await this._add(message);
  }

  async _add(message) {
    const text = message.candidate.startsWith("candidate:") ? message.candidate : "candidate:" + message.candidate;
    try {
      await this.pc.addIceCandidate({ candidate: text, sdpMid: message.sdp_mid, sdpMLineIndex: message.sdp_mline_index });
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

  close() {
    if (this.pc) { this.pc.close(); this.pc = null; }
    this.channels = {};
    this.video.srcObject = null;
  }
}

/**
 * Connection quality since the previous call: fps, bitrate and round-trip time from getStats.
 * @param {RTCPeerConnection} pc
 * @param {{bytes: number, frames: number, at: number}|null} previous what the last call returned in `mark`
 * @returns {Promise<{fps: number|null, kbps: number|null, rttMs: number|null, width: number|null, height: number|null, mark: object}>}
 */
export async function qualityOf(pc, previous) {
  const stats = await pc.getStats();
  let inbound = null, rtt = null;
  stats.forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") inbound = report;
    if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded" && report.currentRoundTripTime !== undefined) rtt = report.currentRoundTripTime;
  });
  const mark = { bytes: inbound ? inbound.bytesReceived : 0, frames: inbound ? (inbound.framesDecoded || 0) : 0, at: performance.now() };
  let fps = null, kbps = null;
  if (previous && inbound && mark.at > previous.at) {
    const seconds = (mark.at - previous.at) / 1000;
    fps = (mark.frames - previous.frames) / seconds;
    kbps = (8 * (mark.bytes - previous.bytes)) / 1000 / seconds;
  }
  return {
    fps, kbps, rttMs: rtt === null ? null : rtt * 1000,
    width: inbound ? inbound.frameWidth || null : null, height: inbound ? inbound.frameHeight || null : null, mark,
  };
}
