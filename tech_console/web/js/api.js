// The broker's REST API, as the signed-in browser calls it, or the join page with its host token.
//
// The login token lives in an HttpOnly cookie this code never sees; every request that
// changes something carries the CSRF token the sign-in answer handed over (kept in
// sessionStorage: it is useless without the cookie, and the cookie is useless without it).
// The join page has no cookie but the host token of its join: it passes `{token}`, which goes
// as `Authorization: Bearer` and sends no cookie (a console signed in in the same browser
// must not lend the end user's page its account).

const CSRF_KEY = "deskhand.csrf";
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

export function csrfToken() {
  return sessionStorage.getItem(CSRF_KEY) || "";
}

/** A promise of `ms` (at least 0): the wait before a request to the broker is tried again. */
export function pause(ms) {
  return new Promise((resolve) => { setTimeout(resolve, Math.max(0, ms)); });
}

/**
 * What authenticates a request: the headers, and the `credentials` mode for fetch.
 * @param {string} method @param {string|null} token a bearer token (the join page's host token), or null for the cookie
 * @returns {{headers: Record<string, string>, credentials: RequestCredentials}}
 */
export function authOf(method, token = null) {
  if (token) return { headers: { Authorization: `Bearer ${token}` }, credentials: "omit" };
  const headers = method !== "GET" && method !== "HEAD" ? { "X-CSRF-Token": csrfToken() } : {};
  return { headers, credentials: "same-origin" };
}

/**
 * The broker's refusal as an ApiError: its JSON error body (docs/api.md), else the bare status.
 * @param {Response} response a response that is not ok
 */
export async function refusalOf(response) {
  let error = "http_" + response.status, message = `the broker answered HTTP ${response.status}`;
  try {
    const data = await response.json();
    error = data.error || error;
    message = data.message || message;
  } catch (_) { /* not our error shape */ }
  return new ApiError(response.status, error, message);
}

/**
 * Call the API; resolves to the parsed JSON (or null), rejects with an ApiError that says what to do.
 * `keepalive`: the request goes on after the page is left (bodies up to 64 KiB); `token`: see authOf.
 */
export async function api(method, path, body, { raw = false, keepalive = false, token = null } = {}) {
  const { headers, credentials } = authOf(method, token);
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: payload, credentials, keepalive });
  } catch (err) {
    throw new ApiError(0, "unreachable", "cannot reach the broker: check the connection and reload");
  }
  if (!response.ok) {
    const refused = await refusalOf(response);
    // The token expired or was revoked: back to the sign-in page (not for a failed sign-in itself).
    if (response.status === 401 && !token && !path.startsWith("/auth/")) window.dispatchEvent(new CustomEvent("deskhand:signed-out"));
    if (refused.error === "password_change_required") window.dispatchEvent(new CustomEvent("deskhand:password-change-required"));
    throw refused;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response;
}

/**
 * Have the broker make a file and hand it to the browser's downloads, under the name the broker
 * gives (Content-Disposition) or `fallbackName`. A POST: the broker audits such exports, and a
 * GET would let any page have one made (and recorded) in the signed-in account's name.
 */
export async function download(path, fallbackName) {
  const response = await api("POST", path, undefined, { raw: true });
  const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = named ? named[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the download has its bytes by then
}

export async function signIn(username, password, totpCode) {
  const body = { username, password, cookie: true };
  if (totpCode) body.totp_code = totpCode;
  const answer = await api("POST", "/auth/login", body);
  sessionStorage.setItem(CSRF_KEY, answer.csrf_token);
  return answer;
}

export async function signOut() {
  try { await api("POST", "/auth/logout"); } finally { sessionStorage.removeItem(CSRF_KEY); }
}

/** The WebSocket URL of a broker path (same origin, so the cookie goes along). */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${API}${path}`;
}
