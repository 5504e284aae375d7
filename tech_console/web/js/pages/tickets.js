// The ticket queue: filter by status, open a ticket, create one.

import { api } from "../api.js";
import { h, when } from "../dom.js";

const STATUSES = ["", "open", "closed"];
const PRIORITIES = ["low", "normal", "high", "urgent"];

export async function render(main, ctx) {
  const status = new URLSearchParams(location.hash.split("?")[1] || "").get("status") || "";
  const list = h("tbody");
  const filter = h("select", { id: "status-filter", onchange: () => load(filter.value) },
    ...STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any status")));

  async function load(chosen) {
    const query = chosen ? `?status=${encodeURIComponent(chosen)}` : "";
    const tickets = await api("GET", "/tickets" + query);
    list.replaceChildren(...tickets.map((t) => h("tr", {},
      h("td", {}, h("a", { href: `#/tickets/${t.id}` }, `#${t.id}`)),
      h("td", {}, t.subject), h("td", {}, t.status), h("td", {}, t.priority),
      h("td", {}, t.requester_name), h("td", {}, String(t.session_count)), h("td", {}, when(t.created_at)),
    )));
    if (!tickets.length) list.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No tickets.")));
  }

  const canWrite = ctx.me.permissions.includes("tickets.write");
  main.append(
    h("h1", {}, "Tickets"),
    h("section", { class: "panel" },
      h("div", { class: "row" }, h("label", { for: "status-filter" }, "Status", filter)),
      h("table", { "aria-label": "Tickets" },
        h("thead", {}, h("tr", {}, ...["Ticket", "Subject", "Status", "Priority", "Requester", "Sessions", "Opened"].map((c) => h("th", { scope: "col" }, c)))),
        list)),
    canWrite ? newTicketForm() : "",
  );
  await load(status);
}

function newTicketForm() {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    class: "panel", "aria-labelledby": "new-ticket",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = Object.fromEntries(new FormData(form));
      try {
        const ticket = await api("POST", "/tickets", data);
        location.hash = `#/tickets/${ticket.id}`;
      } catch (err) {
        error.textContent = err.message;
      }
    },
  },
  h("h2", { id: "new-ticket" }, "New ticket"),
  h("div", { class: "row" },
    h("label", {}, "Subject", h("input", { name: "subject", required: true, maxlength: 200, size: 40 })),
    h("label", {}, "Requester", h("input", { name: "requester_name", required: true, maxlength: 120 })),
    h("label", {}, "Requester e-mail", h("input", { name: "requester_email", type: "email", required: true })),
    h("label", {}, "Priority", h("select", { name: "priority" }, ...PRIORITIES.map((p) => h("option", { value: p, selected: p === "normal" }, p))))),
  h("label", {}, "Description", h("textarea", { name: "description", rows: 3, maxlength: 5000 })),
  error, h("div", { class: "row" }, h("button", { type: "submit" }, "Open ticket")));
  return form;
}
