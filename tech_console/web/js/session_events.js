// A browser peer's side of a live session for the audit trail: the browser's version of
// peer/events.py (docs/api.md, "POST /sessions/{id}/events"). The technician's console reports
// what tech_console/remote_view.py reports, the join page (the host, with its host token) what
// host_client/session.py reports of chat, with the same kinds and data.
//
// Events queue without waiting and go in one batch about once a second; input is counted,
// one event per second with how many. What the host reports receiving (a chat message,
// clipboard text, a monitor choice) goes at once, so the trail, in the order the broker
// received it, has the sending before the receipt. Every event has an id: a batch whose
// answer never came is sent again as it was, and the broker stores each id once. What is
// left when the session ends or the page is left goes with `keepalive`.

import { api } from "./api.js";
import { Sha256 } from "./sha256.js";

const FLUSH_MS = 1000;
const MAX_BATCH = 500; // protocol/recording.py MAX_EVENTS_PER_BATCH
const MAX_PENDING = 20000;
const KEEPALIVE_BYTES = 60000; // browsers refuse keepalive bodies over 64 KiB
const MAX_BATCH_BYTES = 1024 * 1024; // protocol/recording.py MAX_EVENT_BATCH_BYTES
const MAX_CHAT_CHARS = 4000; // protocol/channel.py
const SENT_AT_ONCE = new Set(["chat.sent", "clipboard.sent", "monitor.selected"]);

/**
 * Ids for one page's events: 64 random bits naming the page, then a counter ("9c1f…-17").
 * @returns {() => string}
 */
export function eventIds() {
  const name = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  let counter = 0;
  return () => `${name}-${++counter}`;
}

/** What keystroke logging records of an input message, as protocol/channel.py typed_text. */
export function typedText(message) {
  if (message.type === "text") return message.text;
  if (message.type === "key" && message.down && [...message.key].length === 1) return message.key;
  return null;
}

/** What the trail keeps of clipboard text: its length in characters and its SHA-256, never the text. */
export function clipboardFields(text) {
  const hash = new Sha256();
  hash.update(new TextEncoder().encode(text));
  return { chars: [...text].length, sha256: hash.hexDigest() };
}

export class EventReporter {
  /** @param {string} sessionId @param {{token?: string|null}} options `token`: the join page's host token */
  constructor(sessionId, { token = null } = {}) {
    this.path = `/sessions/${sessionId}/events`;
    this.token = token;
    this.nextId = eventIds();
    this.pending = [];
    this.counts = new Map();
    this.timer = null;
    this.sending = null;
    this.again = false;
    this.leaving = false;
  }

  start() {
    if (this.timer === null && !this.leaving) this.timer = setInterval(() => { this.takeCounts(); this.flush(); }, FLUSH_MS);
  }

  /** Queue one event. */
  add(kind, data = {}) {
    if (this.pending.length < MAX_PENDING) this.pending.push({ id: this.nextId(), kind, at: new Date().toISOString(), data });
    if (SENT_AT_ONCE.has(kind)) this.flush();
  }

  /** Count an occurrence; reported as {count, seconds} once a second. */
  count(kind, n = 1) {
    this.counts.set(kind, (this.counts.get(kind) || 0) + n);
  }

  /**
   * Report what the technician sent the host: input is counted (and its typed text logged
   * only when the session's policy says so); chat, clipboard and monitor choices are events.
   * @param {string} label the data channel @param {object} message @param {{keystroke_logging?: boolean}} policy
   */
  sent(label, message, policy) {
    if (label !== "control") {
      this.count("input.sent");
      const typed = typedText(message);
      if (typed && policy && policy.keystroke_logging) this.add("input.text", { text: typed });
    } else if (message.type === "chat") {
      this.add("chat.sent", { text: message.text });
    } else if (message.type === "clipboard") {
      this.add("clipboard.sent", clipboardFields(message.text));
    } else if (message.type === "select_monitor") {
      this.add("monitor.selected", { index: message.index });
    }
  }

  /** Report chat and clipboard text the host sent (unchecked messages: only what fits is reported). */
  received(message) {
    if (typeof message.text !== "string") return;
    if (message.type === "chat" && message.text && [...message.text].length <= MAX_CHAT_CHARS) {
      this.add("chat.received", { text: message.text });
    } else if (message.type === "clipboard") {
      this.add("clipboard.received", clipboardFields(message.text));
    }
  }

  takeCounts() {
    for (const [kind, n] of this.counts) this.add(kind, { count: n, seconds: FLUSH_MS / 1000 });
    this.counts.clear();
  }

  /** Send the oldest queued events, one request at a time; a flush asked for meanwhile follows it. */
  flush() {
    if (this.sending) {
      this.again = true;
    } else {
      this.sending = this._send().finally(() => { this.sending = null; });
    }
    return this.sending;
  }

  /** Stop, and send what is left (the session ended, or the technician leaves the page). */
  close() {
    if (this.leaving) return this.sending || Promise.resolve();
    this.leaving = true;
    clearInterval(this.timer);
    this.takeCounts();
    return this.flush();
  }

  async _send() {
    do {
      this.again = false;
      let batch = this.pending.slice(0, MAX_BATCH);
      const most = this.leaving ? KEEPALIVE_BYTES : MAX_BATCH_BYTES;
      while (batch.length > 1 && new TextEncoder().encode(JSON.stringify({ events: batch })).length > most) {
        batch = batch.slice(0, Math.ceil(batch.length / 2));
      }
      if (!batch.length) return;
      try {
        await api("POST", this.path, { events: batch }, { keepalive: this.leaving, token: this.token });
      } catch (err) {
        // Unreachable, a broker error, or faster than the broker takes events (429): they stay
        // queued and go again with the same ids, at the next flush (each second).
        if (err.status === 0 || err.status === 429 || err.status >= 500) return;
        // Refused (a bug or the policy): keeping them would block the rest.
      }
      this.pending.splice(0, batch.length);
    } while (this.again || (this.leaving && this.pending.length));
  }
}
