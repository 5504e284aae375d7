// Is the host still there? The browser console's copy of peer/liveness.py for the side that
// answers offers: ping once a second on `control`, answer the host's pings, say "interrupted"
// after 3 s without a pong to our own pings, "restored" when one comes again, and give up
// after 60 s of reconnecting (the host offers the new connections; this side only waits for them).
// Pure like its Python model: the time (monotonic seconds) is passed in, events go in and
// actions come out; live_view.js carries them out. tests/browser/test_liveness_rules.py runs
// the same events through both and holds the numbers equal.

/** The rules' numbers, in seconds: PING_SECONDS, SILENCE_SECONDS and GIVE_UP_SECONDS of peer/liveness.py. */
export const LIVENESS_SECONDS = Object.freeze({ ping: 1.0, silence: 3.0, giveUp: 60.0 });

const round3 = (seconds) => Math.round(seconds * 1000) / 1000;

/**
 * One technician's view of whether the host is there, across the session's peer connections.
 *
 * Actions are plain objects: `{type: "send_ping", seq}`, `{type: "send_pong", seq}`,
 * `{type: "interrupted", silentSeconds}`, `{type: "restored", silentSeconds}`, `{type: "gave_up", seconds}`.
 * The caller tells it when the current connection's control channel opens and closes, hands it
 * every ping and pong of that channel, and calls tick() at dueAt() (or at least once a second).
 */
export class Recovery {
  /** @param {{pingSeconds?: number, silenceSeconds?: number, giveUpSeconds?: number}} seconds */
  constructor({ pingSeconds = LIVENESS_SECONDS.ping, silenceSeconds = LIVENESS_SECONDS.silence,
    giveUpSeconds = LIVENESS_SECONDS.giveUp } = {}) {
    this.pingSeconds = pingSeconds;
    this.silenceSeconds = silenceSeconds;
    this.giveUpSeconds = giveUpSeconds;
    this.nextSeq = 1;
    /** The first seq pinged on the open channel; null while no channel is open. */
    this.channelFirstSeq = null;
    this.nextPingAt = null;
    /** When the host last answered (or the channel opened); null while not watching. */
    this.lastAnswer = null;
    /** When the host last answered before the interruption; null while not interrupted. */
    this.gapFrom = null;
    /** When the interruption was noticed; null while not reconnecting. */
    this.reconnectingSince = null;
  }

  /** Between an interruption and its outcome: "reconnecting" shows, no connect deadline applies. */
  get reconnecting() { return this.reconnectingSince !== null; }

  /** A new connection's control channel is open: ping at once, then every second. */
  opened(now) {
    this.channelFirstSeq = this.nextSeq;
    // Outside an interruption the new channel gets the full silence; within one only a pong restores.
    if (this.gapFrom === null) this.lastAnswer = now;
    return [this._ping(now)];
  }

  /** The control channel is gone (closed or replaced): no pings until the next opens; the silence counts on. */
  closed() {
    this.channelFirstSeq = this.nextPingAt = null;
    return [];
  }

  /** The host left, or the session is over: no watching, no reconnecting, until a channel opens again. */
  stop() {
    this.channelFirstSeq = this.nextPingAt = this.lastAnswer = this.gapFrom = this.reconnectingSince = null;
    return [];
  }

  /** The time is `now`: a ping when due, the interruption when the silence is long enough, giving up when too long. */
  tick(now) {
    const actions = [];
    if (this.nextPingAt !== null && now >= this.nextPingAt) actions.push(this._ping(now));
    if (this.lastAnswer !== null && this.gapFrom === null && now - this.lastAnswer >= this.silenceSeconds) {
      this.gapFrom = this.lastAnswer;
      actions.push({ type: "interrupted", silentSeconds: round3(now - this.lastAnswer) });
      if (this.reconnectingSince === null) this.reconnectingSince = now;
    }
    if (this.reconnectingSince !== null && now - this.reconnectingSince >= this.giveUpSeconds) {
      actions.push({ type: "gave_up", seconds: round3(now - this.reconnectingSince) });
      this.stop();
    }
    return actions;
  }

  /** When tick() next has something to do (null: nothing until another event). */
  dueAt() {
    const due = [];
    if (this.nextPingAt !== null) due.push(this.nextPingAt);
    if (this.lastAnswer !== null && this.gapFrom === null) due.push(this.lastAnswer + this.silenceSeconds);
    if (this.reconnectingSince !== null) due.push(this.reconnectingSince + this.giveUpSeconds);
    return due.length ? Math.min(...due) : null;
  }

  /** The host pinged on the open channel: answer (that proves nothing to this side). */
  pingReceived(seq) {
    return this.channelFirstSeq === null ? [] : [{ type: "send_pong", seq }];
  }

  /** The host answered; a pong for a ping sent before the open channel was (or never sent) proves nothing. */
  pongReceived(seq, now) {
    if (this.channelFirstSeq === null || this.lastAnswer === null) return [];
    if (!(this.channelFirstSeq <= seq && seq < this.nextSeq)) return [];
    this.lastAnswer = Math.max(this.lastAnswer, now);
    if (this.gapFrom === null) return [];
    const gap = now - this.gapFrom;
    this.gapFrom = this.reconnectingSince = null;
    return [{ type: "restored", silentSeconds: round3(gap) }];
  }

  _ping(now) {
    const seq = this.nextSeq++;
    this.nextPingAt = now + this.pingSeconds;
    return { type: "send_ping", seq };
  }
}

/**
 * A ping or pong frame on `control`, or null: recognised before anything else is parsed; a
 * longer frame is none (protocol/channel.py's MAX_LIVENESS_FRAME_BYTES, 128).
 * @param {string} data @returns {{type: "ping"|"pong", seq: number}|null}
 */
export function parseLiveness(data) {
  if (typeof data !== "string" || data.length > 128) return null;
  let message;
  try { message = JSON.parse(data); } catch (_) { return null; }
  if (!message || (message.type !== "ping" && message.type !== "pong")) return null;
  if (!Number.isSafeInteger(message.seq) || message.seq < 0) return null;
  return { type: message.type, seq: message.seq };
}
