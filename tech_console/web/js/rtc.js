// WebRTC conversions both browser peers share: the technician's view (live_view.js) and the
// join page's shared screen (join/share_peer.js). The formats are protocol/ice.py's and
// protocol/signalling.py's.

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

/**
 * A gathered candidate as the `ice` signalling message; null (gathering ended) as the
 * empty candidate that marks the end of candidates.
 * @param {RTCIceCandidate|null} candidate
 */
export function iceMessage(candidate) {
  return candidate && candidate.candidate
    ? { type: "ice", candidate: candidate.candidate, sdp_mid: candidate.sdpMid, sdp_mline_index: candidate.sdpMLineIndex }
    : { type: "ice", candidate: "", sdp_mid: null, sdp_mline_index: null };
}

/**
 * A trickled `ice` message as addIceCandidate takes it (aiortc peers send it without the "candidate:" prefix).
 * @param {{candidate: string, sdp_mid: string|null, sdp_mline_index: number|null}} message
 * @returns {RTCIceCandidateInit}
 */
export function candidateInit(message) {
  const text = message.candidate.startsWith("candidate:") ? message.candidate : "candidate:" + message.candidate;
  return { candidate: text, sdpMid: message.sdp_mid, sdpMLineIndex: message.sdp_mline_index };
}
