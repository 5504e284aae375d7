// A session's signalling WebSocket (docs/api.md, "Signalling"; protocol/signalling.py).
//
// The technician's browser's HttpOnly cookie authenticates it: the broker accepts the cookie
// on this socket only with the broker's own Origin, which a page it served always has. The
// join page has no cookie but the host token of its join: it offers it as a subprotocol
// beside BEARER_SUBPROTOCOL (a browser cannot set Authorization on a WebSocket).

import { wsUrl } from "./api.js";

/** broker/accounts/socket_bearer.py's BEARER_SUBPROTOCOL. */
export const BEARER_SUBPROTOCOL = "deskhand.bearer";

/** Reconnect delays (ms): signalling may drop (broker restart) while the media stays up. */
const RETRY_MS = [500, 1000, 2000, 4000, 8000];

/**
 * Open the session's signalling and keep it open until the session ends or close() is called.
 * @param {string} sessionId
 * @param {(message: object) => void} onMessage every JSON message from the broker
 * @param {(state: "open"|"reconnecting"|"closed", why?: string) => void} onState
 * @param {{token?: string}} options `token`: a host token to authenticate with instead of the cookie
 * @returns {{send: (message: object) => boolean, close: () => void}}
 */
export function openSignalling(sessionId, onMessage, onState, { token } = {}) {
  let socket = null, stopped = false, attempt = 0, timer = null;

  function connect() {
    const url = wsUrl(`/sessions/${sessionId}/signal`);
    socket = token ? new WebSocket(url, [BEARER_SUBPROTOCOL, token]) : new WebSocket(url);
    socket.onopen = () => { attempt = 0; onState("open"); };
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.type === "session_ended") stopped = true; // the socket closes next: no retry
      onMessage(message);
    };
    socket.onclose = (event) => {
      // 4000: a newer connection (another tab) replaced this one; fighting it back would loop.
      if (event.code === 4000) stopped = true;
      if (stopped) { onState("closed", event.reason); return; }
      if (attempt >= RETRY_MS.length) { onState("closed", "lost the connection to the broker"); return; }
      onState("reconnecting");
      timer = setTimeout(connect, RETRY_MS[attempt++]);
    };
  }
  connect();
  return {
    send(message) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(message));
      return true;
    },
    close() {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}
