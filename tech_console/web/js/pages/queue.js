// Help requests waiting without a code, above the ticket list: who asks, since when, and
// "Pick up", which starts the session and opens its live page (the user still consents).
//
// Rendered into the slot tickets.js provides; refreshed every few seconds while it is shown.

import { api, ApiError } from "../api.js";
import { h } from "../dom.js";

const REFRESH_MS = 5000;

function waited(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  const minutes = Math.floor(seconds / 60);
  return minutes ? `${minutes} min ${seconds % 60} s` : `${seconds} s`;
}

/** Fill ``slot`` with the queue and keep it current until the slot leaves the page. */
export async function renderQueue(slot, ctx) {
  const canPickUp = ctx.me.permissions.includes("session.start");
  const error = h("p", { class: "error", role: "alert" });
  const rows = h("tbody");
  const heading = h("h2", { id: "queue-title" }, "Waiting for help");
  const panel = h("section", { class: "panel", id: "help-queue", "aria-labelledby": "queue-title" },
    heading,
    h("table", { "aria-label": "Help requests waiting" },
      h("thead", {}, h("tr", {}, ...["#", "Waiting", "Requester", "Subject", "Priority", "Computer", ""]
        .map((c) => h("th", { scope: "col" }, c)))),
      rows),
    error);
  slot.replaceChildren(panel);

  async function pickUp(request, button) {
    button.disabled = true;
    error.textContent = "";
    try {
      const picked = await api("POST", `/requests/${request.id}/pickup`);
      location.hash = `#/sessions/${picked.session.id}`;
    } catch (err) {
      // Someone was faster, or the user gave up: say so, and show the queue as it is now.
      error.textContent = err instanceof ApiError ? err.message : String(err);
      await refresh();
    }
  }

  async function refresh() {
    const waiting = await api("GET", "/requests");
    heading.textContent = waiting.length ? `Waiting for help (${waiting.length})` : "Waiting for help";
    rows.replaceChildren(...waiting.map((r) => {
      const button = h("button", { type: "button", "aria-label": `Pick up ${r.requester_name}: ${r.subject}` }, "Pick up");
      button.addEventListener("click", () => pickUp(r, button));
      return h("tr", { dataset: { request: r.id } },
        h("td", {}, String(r.position)),
        h("td", {}, waited(r.created_at)),
        h("td", {}, r.requester_name, r.requester_email ? h("span", { class: "muted" }, ` <${r.requester_email}>`) : ""),
        h("td", {}, h("a", { href: `#/tickets/${r.ticket_id}` }, r.subject),
          r.details ? h("div", { class: "muted" }, r.details.slice(0, 200)) : ""),
        h("td", {}, h("span", { class: `prio prio-${r.priority}` }, r.priority)),
        h("td", {}, `${r.host.user_name} on ${r.host.machine_name}`, h("div", { class: "muted" }, r.host.os)),
        h("td", {}, canPickUp ? button : ""));
    }));
    if (!waiting.length) rows.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Nobody is waiting.")));
  }

  await refresh();
  const timer = setInterval(async () => {
    if (!slot.isConnected) { clearInterval(timer); return; }
    try { await refresh(); } catch (err) { error.textContent = err.message || String(err); }
  }, REFRESH_MS);
}
