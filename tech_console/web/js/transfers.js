// File transfers from a browser, either peer's side: the browser's version of peer/transfers.py
// (docs/api.md, "File transfers"). Files go through the broker over HTTP in 4 MiB chunks, each
// PUT with its SHA-256; the whole file's SHA-256 is declared at the end. The technician's console
// sends files to the host and takes the files the user sends; the join page, the session's host,
// takes the technician's and sends what they ask for: it passes its host token (`token`) where
// the console's browser has its cookie.

import { API, api, authOf, pause } from "./api.js";
import { Sha256, sha256Hex } from "./sha256.js";

const IN_FLIGHT = 3; // chunks uploading at once: keeps the pipe full, memory at ~12 MiB
const POLL_SECONDS = 25;

/** The long-poll tag of a transfer, as protocol/transfers.py transfer_version makes it. */
function version(t) {
  return `${t.state}:${t.chunks_at_broker.length}:${t.sha256 || ""}`;
}

const OVER = new Set(["completed", "refused", "cancelled", "failed"]);

/**
 * Long-poll a transfer until `until(t)` holds.
 * @param {string} sessionId
 * @param {object} transfer as the broker last showed it
 * @param {(t: object) => boolean} until
 * @returns {Promise<object>} the transfer once `until` holds
 */
export async function waitFor(sessionId, transfer, until, token = null) {
  while (!until(transfer)) {
    const query = new URLSearchParams({ wait: String(POLL_SECONDS), known: version(transfer) });
    transfer = await api("GET", `/sessions/${sessionId}/transfers/${transfer.id}?${query}`, undefined, { token });
  }
  return transfer;
}

/**
 * Upload the chunks in `wanted`, reading the whole file once, in order, for its hash.
 * @returns {Promise<string>} the whole file's SHA-256 (hex)
 */
async function uploadChunks(sessionId, transfer, file, wanted, progress, token) {
  const whole = new Sha256();
  const size = transfer.size, chunkSize = transfer.chunk_size;
  let done = 0;
  for (let i = 0; i < transfer.chunk_count; i++) if (!wanted.has(i)) done += Math.min(chunkSize, size - i * chunkSize);
  const running = new Set();
  for (let index = 0; index < transfer.chunk_count; index++) {
    const start = index * chunkSize;
    const bytes = new Uint8Array(await file.slice(start, Math.min(size, start + chunkSize)).arrayBuffer());
    whole.update(bytes);
    if (!wanted.has(index)) continue;
    const chunkHash = await sha256Hex(bytes);
    const put = (async () => {
      await putChunk(sessionId, transfer.id, index, bytes, chunkHash, token);
      done += bytes.length;
      progress(done, size);
    })();
    running.add(put);
    put.finally(() => running.delete(put)).catch(() => {});
    if (running.size >= IN_FLIGHT) await Promise.race(running);
  }
  await Promise.all(running);
  return whole.hexDigest();
}


/**
 * One chunk request (not api(): chunks carry their own headers and raw bodies), retried with
 * backoff when the broker does not answer: a restart or a dropped connection must not lose a
 * transfer of hundreds of megabytes. `askAgain` statuses mean "not now" and are asked again.
 * @returns {Promise<Response>} the successful response
 */
async function chunkRequest(url, init, what, token, askAgain = []) {
  const auth = authOf(init.method || "GET", token);
  for (let attempt = 0; ; attempt++) {
    let response = null;
    try {
      response = await fetch(url, { ...init, credentials: auth.credentials, headers: { ...auth.headers, ...init.headers } });
    } catch (_) { /* unreachable: retried below */ }
    if (response && response.ok) return response;
    if (response && askAgain.includes(response.status)) {
      attempt = -1; // the broker answered: not a failure, only not yet
      await pause(1000);
      continue;
    }
    if (response && response.status < 500) {
      let message = `the broker refused ${what} (HTTP ${response.status})`;
      try { message = (await response.json()).message || message; } catch (_) { /* keep ours */ }
      throw new Error(message);
    }
    if (attempt >= 5) throw new Error(`${what} failed: the broker did not answer`);
    await pause(500 * 2 ** attempt);
  }
}

function chunkUrl(sessionId, transferId, index) {
  return `${API}/sessions/${sessionId}/transfers/${transferId}/chunks/${index}`;
}

async function putChunk(sessionId, transferId, index, bytes, chunkHash, token) {
  await chunkRequest(chunkUrl(sessionId, transferId, index), {
    method: "PUT", body: bytes,
    headers: { "X-Chunk-SHA256": chunkHash, "Content-Type": "application/octet-stream" },
  }, `chunk ${index}`, token);
}

/**
 * Send one file: offer, wait for the receiver to accept, upload, finish, and wait for the
 * receiver to confirm the hash (re-uploading chunks it hands back).
 * @param {string} sessionId
 * @param {File} file
 * @param {(state: string, done: number, total: number, transfer?: object) => void} onProgress
 * @param {{token?: string|null, requestId?: string}} options `requestId`: the file request this
 *   file answers, which makes it go to the technician (the host sends files only so); without,
 *   the technician's file for the host
 * @returns {Promise<object>} the transfer in its final state
 */
export async function sendFile(sessionId, file, onProgress, { token = null, requestId = null } = {}) {
  const offer = requestId
    ? { name: file.name, size: file.size, direction: "to_technician", request_id: requestId }
    : { name: file.name, size: file.size, direction: "to_host" };
  let transfer = await api("POST", `/sessions/${sessionId}/transfers`, offer, { token });
  onProgress(requestId ? "waiting for the technician to accept" : "waiting for the host to accept", 0, file.size, transfer);
  transfer = await waitFor(sessionId, transfer, (t) => t.state !== "offered", token);
  if (transfer.state !== "accepted") return transfer;
  for (;;) {
    const atBroker = new Set(transfer.chunks_at_broker);
    const wanted = new Set();
    for (let i = 0; i < transfer.chunk_count; i++) if (!atBroker.has(i)) wanted.add(i);
    const sha256 = await uploadChunks(sessionId, transfer, file, wanted, (done, total) => onProgress("sending", done, total, transfer), token);
    try {
      transfer = await api("POST", `/sessions/${sessionId}/transfers/${transfer.id}/finish`, { sha256 }, { token });
    } catch (err) {
      if (err.error !== "transfer_over") throw err;
      transfer = await api("GET", `/sessions/${sessionId}/transfers/${transfer.id}`, undefined, { token });
    }
    onProgress(requestId ? "the technician is checking the file" : "the host is checking the file", file.size, file.size, transfer);
    // Until the receiver completes, it may hand chunks back (they failed their hash there).
    transfer = await waitFor(sessionId, transfer, (t) => OVER.has(t.state) || t.chunks_at_broker.length < t.chunk_count, token);
    if (OVER.has(transfer.state)) return transfer;
  }
}

/**
 * Ask the user for a file (needs files.receive); the user picks or declines on their side.
 * @param {string} sessionId
 * @param {{path?: string, note?: string}} request
 * @returns {Promise<object>} the file request
 */
export function requestFile(sessionId, request) {
  return api("POST", `/sessions/${sessionId}/file-requests`, request);
}

async function fetchChunk(sessionId, transferId, index, token) {
  // 404: not uploaded yet; 410: let go in a broker restart, the sender uploads it again.
  const response = await chunkRequest(`${chunkUrl(sessionId, transferId, index)}?wait=${POLL_SECONDS}`, {},
    `chunk ${index}`, token, [404, 410]);
  return { bytes: new Uint8Array(await response.arrayBuffer()), sha256: response.headers.get("X-Chunk-SHA256") || "" };
}

/**
 * Take a file the other side offers: accept it, fetch every chunk (each checked against the
 * SHA-256 its sender declared), hash the whole file in order, and complete the transfer only if
 * that hash is the sender's too. The file is kept in memory (a Blob) for the user to save.
 * @param {string} sessionId
 * @param {object} offered the transfer, state "offered"; its name is safe already (the broker
 *   made it so at the offer: protocol/transfers.py safe_file_name)
 * @param {(done: number, total: number) => void} onProgress
 * @param {{token?: string|null}} options
 * @returns {Promise<{transfer: object, blob: Blob | null}>} the final transfer, and the file when completed
 */
export async function receiveFile(sessionId, offered, onProgress, { token = null } = {}) {
  let transfer = await api("POST", `/sessions/${sessionId}/transfers/${offered.id}/decision`, { accept: true, saved_as: offered.name }, { token });
  const whole = new Sha256();
  const parts = [];
  let done = 0;
  for (let index = 0; index < transfer.chunk_count; index++) {
    // Wait on the transfer (a long poll that answers 200) until the chunk is there, rather
    // than on the chunk itself, whose "not yet" is a 404 the browser reports as an error.
    transfer = await waitFor(sessionId, transfer, (t) => t.chunks_at_broker.includes(index) || OVER.has(t.state), token);
    if (OVER.has(transfer.state)) return { transfer, blob: null };
    const { bytes, sha256 } = await fetchChunk(sessionId, transfer.id, index, token);
    if ((await sha256Hex(bytes)) !== sha256) {
      // Refused here: the broker forgets it and the sender uploads it again.
      await api("DELETE", `/sessions/${sessionId}/transfers/${transfer.id}/chunks/${index}`, undefined, { token });
      index -= 1;
      continue;
    }
    whole.update(bytes);
    parts.push(bytes);
    done += bytes.length;
    onProgress(done, transfer.size);
  }
  const digest = whole.hexDigest();
  transfer = await waitFor(sessionId, transfer, (t) => t.sha256 || OVER.has(t.state), token);
  if (OVER.has(transfer.state)) return { transfer, blob: null };
  transfer = await complete(sessionId, transfer, digest, token);
  return { transfer, blob: transfer.state === "completed" ? new Blob(parts) : null };
}

/**
 * Report the whole file. A broker that restarted during the transfer hashes the file again
 * first (409 hashing_again): the sender uploads the chunks it no longer holds, and the report
 * is made again once the broker holds every chunk.
 * @returns {Promise<object>} the transfer in its final state
 */
async function complete(sessionId, transfer, sha256, token) {
  for (;;) {
    try {
      return await api("POST", `/sessions/${sessionId}/transfers/${transfer.id}/complete`, { sha256 }, { token });
    } catch (err) {
      if (err.error !== "hashing_again") throw err;
    }
    const now = await api("GET", `/sessions/${sessionId}/transfers/${transfer.id}`, undefined, { token });
    transfer = await waitFor(sessionId, now, (t) => OVER.has(t.state) || t.chunks_at_broker.length === t.chunk_count, token);
    if (OVER.has(transfer.state)) return transfer;
  }
}
