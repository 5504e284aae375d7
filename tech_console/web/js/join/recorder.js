// The join page records what the user shares, as the host does (docs/architecture.md, "Record";
// docs/api.md, "Recording and the audit trail"): one-second standalone WebM segments of one VP8
// stream at the session policy's frame rate, uploaded in order with the host token to
// PUT /sessions/{id}/recording/{n}, where the broker checks (broker/audit/segment_check.py),
// encrypts and chains them like a host's, and where `X-Segment-Recorder: browser` puts
// `recorder: "browser"` into each segment's `recording.segment` event.
//
// How: the shared video is drawn onto a canvas at the policy's frame rate and a MediaRecorder
// (`video/webm;codecs=vp8`) records the canvas's stream (captureStream(0): a frame only when this
// code asks for one). A new canvas and a new MediaRecorder for every second: each segment is then
// a WebM of its own that begins with a keyframe of the canvas's size, so it plays alone, and a
// shared window that changes size changes the next segment, never the middle of one. Every segment
// gets a frame at its start, then one every 1/fps s (in Chromium also the canvas's picture at the
// recorder's start: the first, a keyframe).
//
// Segments wait in memory (at most MAX_QUEUED_BYTES; what does not fit is not recorded, and the
// trail and the user are told) and go one at a time, in order; a refusal that may pass (the
// broker away, busy, restarting, a full disk) is tried again with backoff, one for good
// (the segment can never be stored) is dropped, as the host's uploader does. While the oldest
// waiting segment is older than the policy's `recording_max_lag_seconds`, or the recorder
// failed, the page reports `recording.behind` (and `recording.caught_up` once it is not), and
// says so; sharing goes on. When the share stops the last segment is closed and the queue is
// emptied: the broker takes segments for a grace period after the session's end.

import { API, authOf, pause, refusalOf } from "../api.js";
import { EventReporter } from "../session_events.js";
import { sha256Hex } from "../sha256.js";

export const MIME = "video/webm;codecs=vp8";
/** How long a segment lasts (ms), as the host's (host_client/recorder.py). */
export const SEGMENT_MS = 1000;
/** The host's full-quality recording bit rate (host_client/recording_quality.py). */
const BITS_PER_SECOND = 1_500_000;
/** broker/audit/segment_check.py MAX_SIDE: the canvas is scaled down to fit. */
const MAX_SIDE = 8192;
/** What may wait for upload in the page's memory. */
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** protocol/recording.py SessionPolicy's defaults, for a policy the broker did not send. */
const DEFAULT_POLICY = { recording_required: true, recording_max_lag_seconds: 5, recording_fps: 2 };
/** Upload retries (ms), as the host's uploader: from 0.5 s, doubling, at most 10 s. */
const RETRY_FIRST_MS = 500, RETRY_MOST_MS = 10_000;
/** How long a segment's recorder goes on after its last frame, to encode what it was given (ms). */
const STOP_AFTER_MS = 1000;
/** How often the lag is checked (ms). */
const CHECK_MS = 1000;

/** The policy of the broker's welcome, with the defaults for what it lacks. */
export function recordingPolicy(policy) {
  return { ...DEFAULT_POLICY, ...(policy || {}) };
}

/** Why this browser cannot record what it shares ("" when it can). */
export function cannotRecord() {
  if (typeof MediaRecorder !== "function") return "it has no MediaRecorder";
  if (typeof MediaRecorder.isTypeSupported !== "function" || !MediaRecorder.isTypeSupported(MIME)) {
    return "it cannot record VP8 video in WebM";
  }
  if (typeof HTMLCanvasElement.prototype.captureStream !== "function") return "it cannot record a canvas";
  return "";
}

export const WORDS = {
  /** @param {object} policy */
  recorded: (policy) => `What you share is recorded for the audit trail (${fpsWords(policy.recording_fps)}).`,
  /** @param {string} why what cannotRecord() said */
  cannotRecordRequired: (why) => `This session must be recorded, and this browser cannot record what you share (${why}), `
    + "so nothing was shared. Open this page in a current Chrome, Edge or Firefox on a computer, or install the "
    + "Deskhand app your technician sends you (deskhand-host); either way, ask your technician for a new code.",
  /** @param {string} why */
  notRecorded: (why) => `This browser cannot record what you share (${why}): the session goes on unrecorded.`,
  /** @param {number} seconds */
  behind: (seconds) => `The recording is ${Math.round(seconds)} s behind: this page keeps what it recorded until `
    + "the server takes it, and sharing goes on.",
  /** @param {string} error */
  failed: (error) => `The recording has a problem (${error}): sharing goes on.`,
  caughtUp: "The recording caught up.",
  /** @param {number} seconds */
  saving: (seconds) => `Saving the last ${Math.max(1, Math.round(seconds))} s of the recording: keep this page open until it is done.`,
  saved: "The recording is saved: you may close this page.",
};

function fpsWords(fps) {
  return fps === 1 ? "one picture a second" : `${fps} pictures a second`;
}

/** WebM's Cluster element id: a segment's frames are in clusters. */
const CLUSTER_ID = [0x1f, 0x43, 0xb6, 0x75];

/** Whether `bytes` (a WebM) hold a cluster, hence a frame. */
function holdsCluster(bytes) {
  for (let i = bytes.indexOf(CLUSTER_ID[0]); i >= 0 && i + 3 < bytes.length; i = bytes.indexOf(CLUSTER_ID[0], i + 1)) {
    if (bytes[i + 1] === CLUSTER_ID[1] && bytes[i + 2] === CLUSTER_ID[2] && bytes[i + 3] === CLUSTER_ID[3]) return true;
  }
  return false;
}

/** Whether a refused upload may pass if sent again (the host's uploader keeps the segment then). */
function temporary(status) {
  return status === 0 || status >= 500 || [401, 404, 408, 410, 429].includes(status);
}

export class ShareRecorder {
  /**
   * @param {{sessionId: string, token: string, policy: object,
   *          onStatus?: (text: string, level: "info"|"warning") => void}} options
   *   `onStatus`: what the user should read about the recording, as it changes
   */
  constructor({ sessionId, token, policy, onStatus }) {
    this.path = `${API}/sessions/${sessionId}/recording`;
    this.token = token;
    this.policy = recordingPolicy(policy);
    this.onStatus = onStatus || (() => {});
    /** Its own reporter: it goes on after the page's (closed at the end) while segments still upload. */
    this.reporter = new EventReporter(sessionId, { token });
    /** Segments made and not yet stored (or refused for good), oldest first. */
    this.queue = [];
    this.queuedBytes = 0;
    this.index = 0;
    this.stored = 0;
    this.running = false;
    /** Whether this browser records at all (start() found it can). */
    this.recording = false;
    this.stopping = null;
    this.uploading = null;
    this.behind = false;
    this.failure = null;
    this.reporting = null;
    /** Segments closing, one after the other, so they queue in the order they were made. */
    this.closing = Promise.resolve();
    /** What the recording waits for (its next frame), ended early by stop(). */
    this.waits = new Set();
  }

  /** A promise of `ms`, ended early by stop(). */
  _wait(ms) {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); this.waits.delete(done); resolve(); };
      const timer = setTimeout(done, Math.max(0, ms));
      this.waits.add(done);
    });
  }

  /** How far behind the recording is (s): the age of the oldest segment not yet stored. */
  lagSeconds() {
    return this.queue.length ? (performance.now() - this.queue[0].madeAt) / 1000 : 0;
  }

  /** Start recording `stream`'s video; what this browser cannot record is reported and said. */
  start(stream) {
    const why = cannotRecord();
    if (why) {
      this.onStatus(WORDS.notRecorded(why), "warning");
      this._report("recording.behind", { lag_seconds: 0, error: `this browser cannot record: ${why}` });
      return;
    }
    this.running = this.recording = true;
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.srcObject = stream;
    this.video.play().catch(() => {});
    this.onStatus(WORDS.recorded(this.policy), "info");
    this.checker = setInterval(() => this._check(), CHECK_MS);
    this.loop = this._record();
  }

  /**
   * Stop recording: the segment under way is closed and queued; uploads go on (the broker takes them
   * for a while after the session's end). Resolves once the last segment is queued.
   */
  stop() {
    if (!this.stopping) this.stopping = this._stop();
    return this.stopping;
  }

  async _stop() {
    this.running = false;
    for (const done of [...this.waits]) done();
    await this.loop;
    await this.closing;
    if (this.video) this.video.srcObject = null;
    this._check();
  }

  /** Whether recorded seconds wait to be stored (leaving the page now would lose them). */
  get unsaved() { return this.queue.length > 0; }

  /** Resolves once every queued segment is stored or refused for good, or after `timeoutMs`; true when none is left. */
  async drain(timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    while (this.queue.length && performance.now() < deadline) {
      this.onStatus(WORDS.saving(this.queue.reduce((s, q) => s + q.durationMs, 0) / 1000), "info");
      this._upload();
      await pause(250);
    }
    clearInterval(this.checker);
    this._check();
    // The trail has the lag's end too before the user is told all is saved.
    if (this.reporting) await Promise.race([this.reporting, pause(deadline - performance.now())]);
    if (this.recording && !this.queue.length) this.onStatus(WORDS.saved, "info");
    return !this.queue.length;
  }

  // --- recording ------------------------------------------------------------------------------

  async _record() {
    const frameMs = 1000 / Math.min(Math.max(this.policy.recording_fps, 0.1), 30);
    // The recording's origin is its first picture (the shared video has a size once it has one).
    while (this.running && !this.video.videoWidth) await this._wait(50);
    this.originMs = Date.now();
    this.startedAt = performance.now();
    while (this.running) {
      const start = performance.now();
      const segment = this._openSegment(start);
      for (let at = 0; this.running && at < SEGMENT_MS; at += frameMs) {
        await this._wait(start + at - performance.now());
        if (!this.running) break;
        if (segment) segment.frame();
      }
      await this._wait(start + SEGMENT_MS - performance.now());
      if (segment) {
        // The recorder stops a while after the segment's last frame: stopped at once, a busy browser
        // dropped the frames it had not encoded yet (at 1920x1080 on two busy cores, most segments).
        setTimeout(segment.stop, STOP_AFTER_MS);
        const end = performance.now();
        this.closing = this.closing.then(() => segment.close(end));
      }
    }
  }

  /** A segment starting at `start` (performance.now() ms): its canvas, stream and recorder; null when
   * there is no picture yet to record (the video has no size). */
  _openSegment(start) {
    const width = this.video.videoWidth, height = this.video.videoHeight;
    if (!width || !height) return null;
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    const context = canvas.getContext("2d", { alpha: false });
    const stream = canvas.captureStream(0);
    const track = stream.getVideoTracks()[0];
    let recorder;
    try {
      recorder = new MediaRecorder(stream, { mimeType: MIME, videoBitsPerSecond: BITS_PER_SECOND });
    } catch (err) {
      this._failed(`the recorder could not start: ${err && err.message ? err.message : err}`);
      track.stop();
      return null;
    }
    const chunks = [];
    let error = null;
    recorder.ondataavailable = (event) => { if (event.data && event.data.size) chunks.push(event.data); };
    recorder.onerror = (event) => { error = event.error ? event.error.message || event.error.name : "the recorder failed"; };
    const done = new Promise((resolve) => { recorder.onstop = resolve; });
    // The picture is on the canvas before the recorder starts: Chromium hands a new recorder the canvas's
    // current frame (a frame asked for before the recorder is attached would be lost).
    context.drawImage(this.video, 0, 0, canvas.width, canvas.height);
    recorder.start();
    let frames = 0;
    const frame = () => {
      context.drawImage(this.video, 0, 0, canvas.width, canvas.height);
      track.requestFrame();
      frames += 1;
    };
    const stop = () => { if (recorder.state !== "inactive") recorder.stop(); };
    const close = async (end) => {
      await done;
      track.stop();
      if (error) { this._failed(error); return; }
      if (!frames || !chunks.length) return;
      const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
      // A WebM header alone records nothing (the broker could not read it): the second is lost, and said.
      if (holdsCluster(bytes)) this._queue(bytes, start, end);
      else this._failed(`the browser recorded no picture from ${Math.round((start - this.startedAt) / 1000)} s on`);
    };
    return { frame, stop, close };
  }

  /** Queue a finished segment (its bytes, made from `start` to `end`, performance.now() ms). */
  _queue(bytes, start, end) {
    if (this.queuedBytes + bytes.length > MAX_QUEUED_BYTES) {
      this._failed(`more than ${MAX_QUEUED_BYTES / 1024 / 1024} MiB of recording wait for upload; seconds are lost`);
      return;
    }
    // Whole milliseconds from the origin, the end of one segment the start of the next: never overlapping.
    const offsetMs = Math.floor(start - this.startedAt), endMs = Math.floor(end - this.startedAt);
    this.queue.push({ index: this.index++, bytes, offsetMs, durationMs: endMs - offsetMs, madeAt: end, sha256: null });
    this.queuedBytes += bytes.length;
    this._upload();
  }

  _failed(error) {
    this.failure = String(error).slice(0, 500);
    this._check();
  }

  // --- uploading ------------------------------------------------------------------------------

  /** Upload what is queued, one segment at a time, in order (one loop at a time). */
  _upload() {
    if (!this.uploading) this.uploading = this._uploadAll().finally(() => { this.uploading = null; });
    return this.uploading;
  }

  async _uploadAll() {
    let delay = RETRY_FIRST_MS;
    while (this.queue.length) {
      const segment = this.queue[0];
      segment.sha256 = segment.sha256 || await sha256Hex(segment.bytes);
      let status = 0, refusal = "";
      try {
        const auth = authOf("PUT", this.token);
        const response = await fetch(`${this.path}/${segment.index}`, {
          method: "PUT", body: segment.bytes, credentials: auth.credentials,
          headers: {
            ...auth.headers, "Content-Type": "video/webm",
            "X-Segment-SHA256": segment.sha256, "X-Segment-Offset-Ms": String(segment.offsetMs),
            "X-Segment-Duration-Ms": String(segment.durationMs), "X-Recording-Origin-Ms": String(this.originMs),
            "X-Segment-Recorder": "browser",
          },
        });
        status = response.status;
        if (!response.ok) refusal = (await refusalOf(response)).message;
      } catch (_) {
        status = 0; // the broker is unreachable
      }
      if (status >= 400 || status === 0) {
        if (temporary(status)) {
          await pause(delay);
          delay = Math.min(delay * 2, RETRY_MOST_MS);
          continue;
        }
        // Refused for good (it can never be stored): keeping it would hold up every later segment.
        this.failure = `the broker refused segment ${segment.index}: ${refusal}`.slice(0, 500);
      } else {
        this.stored += 1;
        this.failure = null; // a failure passes once a segment is stored again
      }
      delay = RETRY_FIRST_MS;
      this.queue.shift();
      this.queuedBytes -= segment.bytes.length;
    }
    this._check();
  }

  // --- the lag, reported -----------------------------------------------------------------------

  /** Whether the recording is behind (or failed): said to the user and reported once each way. */
  _check() {
    const lag = this.lagSeconds();
    const behind = this.failure !== null || lag > this.policy.recording_max_lag_seconds;
    if (behind && !this.behind) {
      this.behind = true;
      this._report("recording.behind", { lag_seconds: Math.round(lag * 10) / 10, error: this.failure });
      this.onStatus(this.failure ? WORDS.failed(this.failure) : WORDS.behind(lag), "warning");
    } else if (behind && !this.failure) {
      this.onStatus(WORDS.behind(lag), "warning");
    } else if (!behind && this.behind) {
      this.behind = false;
      this._report("recording.caught_up", {});
      this.onStatus(WORDS.caughtUp, "info");
    }
  }

  /** Report one host event (docs/api.md, "Peer events"); sent again until the broker takes it or refuses it for good. */
  _report(kind, data) {
    this.reporter.add(kind, data);
    if (!this.reporting) this.reporting = this._sendEvents().finally(() => { this.reporting = null; });
  }

  /** Send until the broker took them: the reporter keeps what it could not send (unreachable, busy, 429). */
  async _sendEvents() {
    let delay = RETRY_FIRST_MS;
    for (;;) {
      await this.reporter.flush();
      if (!this.reporter.pending.length) return;
      await pause(delay);
      delay = Math.min(delay * 2, RETRY_MOST_MS);
    }
  }
}
