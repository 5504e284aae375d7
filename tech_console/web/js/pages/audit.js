// Auditors: every session, newest first, filtered by technician, ticket, host and date range.

import { api } from "../api.js";
import { h, when } from "../dom.js";

const FILTERS = ["technician", "ticket", "host", "since", "until"];

export async function render(main) {
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "");
  const list = h("tbody");
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    class: "row filters", role: "search", "aria-label": "Filter sessions",
    onsubmit: (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
      const text = query.toString();
      const target = "#/audit" + (text ? "?" + text : "");
      if (location.hash === target) load(); else location.hash = target;
    },
  },
  h("label", {}, "Technician", h("input", { name: "technician", value: wanted.get("technician") || "", placeholder: "username", maxlength: 64 })),
  h("label", {}, "Ticket", h("input", { name: "ticket", value: wanted.get("ticket") || "", inputmode: "numeric", pattern: "[0-9]*", size: 8 })),
  h("label", {}, "Host", h("input", { name: "host", value: wanted.get("host") || "", placeholder: "machine or user", maxlength: 253 })),
  h("label", {}, "From", h("input", { name: "since", type: "date", value: wanted.get("since") || "" })),
  h("label", {}, "To", h("input", { name: "until", type: "date", value: wanted.get("until") || "" })),
  h("button", { type: "submit" }, "Filter"));

  async function load() {
    error.textContent = "";
    const query = new URLSearchParams();
    for (const key of FILTERS) {
      const value = wanted.get(key);
      if (!value) continue;
      // Whole local days: from the start of the first to the end of the last, sent in UTC.
      if (key === "since") query.set(key, new Date(value + "T00:00:00").toISOString());
      else if (key === "until") query.set(key, new Date(value + "T23:59:59.999").toISOString());
      else query.set(key, value);
    }
    let sessions;
    try {
      sessions = await api("GET", "/audit/sessions" + (query.toString() ? "?" + query : ""));
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    list.replaceChildren(...sessions.map((s) => h("tr", {},
      h("td", {}, h("a", { href: `#/audit/${s.id}`, "aria-label": `Session ${s.id.slice(0, 8)} on ticket ${s.ticket_id}` }, s.id.slice(0, 8))),
      h("td", {}, h("a", { href: `#/tickets/${s.ticket_id}` }, `#${s.ticket_id}`)),
      h("td", {}, s.technician.display_name, h("span", { class: "muted" }, ` (${s.technician.username})`)),
      h("td", {}, s.host ? `${s.host.user_name} on ${s.host.machine_name}` : ""),
      h("td", {}, s.state), h("td", {}, when(s.created_at)), h("td", {}, when(s.ended_at)),
    )));
    if (!sessions.length) list.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No sessions match.")));
  }

  main.append(
    h("h1", {}, "Audit: sessions"),
    h("section", { class: "panel" }, form, error,
      h("table", { "aria-label": "Sessions" },
        h("thead", {}, h("tr", {}, ...["Session", "Ticket", "Technician", "Host", "State", "Started", "Ended"].map((c) => h("th", { scope: "col" }, c)))),
        list)),
  );
  await load();
}
