// Redeeming a support code from the join page: the same POST /join the host client makes
// (host_client/join.py), so the same answers and rate limits apply. Never with the
// technician's cookie (a console signed in in the same browser): the code is the credential.

import { API, ApiError, refusalOf } from "../api.js";

/** What the join tells the technician about this machine: a browser, not an installed host. */
export const BROWSER_MACHINE_NAME = "web browser";

/** A code's digits as typed or taken from the address ("123 456 789", "123-456-789"); "" if none. */
export function codeDigits(text) {
  return String(text || "").replace(/[\s-]/g, "");
}

/** This browser and its system, as far as the page can tell (shown to the technician as the "OS"). */
export function browserDescription() {
  const data = navigator.userAgentData;
  if (data && Array.isArray(data.brands)) {
    const named = data.brands.find((b) => !/not.?a.?brand|chromium/i.test(b.brand)) || data.brands.find((b) => /chromium/i.test(b.brand));
    if (named) return `${named.brand} ${named.version} on ${data.platform || "an unknown system"}`.slice(0, 128);
  }
  return (navigator.userAgent || "unknown browser").slice(0, 128);
}

/**
 * Redeem `code`; resolves to the join answer (protocol/api.py JoinResponse), rejects with the
 * broker's ApiError (wrong, used or expired code, too many attempts) or an unreachable one.
 * @param {string} code @param {string} userName how the user calls themselves ("" for unnamed)
 */
export async function redeem(code, userName) {
  const body = {
    code, machine_name: BROWSER_MACHINE_NAME, os: browserDescription(),
    user_name: (userName.trim() || "browser user").slice(0, 256),
  };
  let response;
  try {
    response = await fetch(API + "/join", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), credentials: "omit",
    });
  } catch (_) {
    throw new ApiError(0, "unreachable", "cannot reach the broker: check your connection and try again");
  }
  if (!response.ok) throw await refusalOf(response);
  return response.json();
}
