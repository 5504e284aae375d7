// The ticket queue: filters kept in the address (so a view can be bookmarked), SLA flags, a new ticket.

import { api } from "../api.js";
import { counted, h } from "../dom.js";
import { renderQueue } from "./queue.js";
import { assigneeText, slaBadge, PRIORITIES, STATUSES } from "./ticket_common.js";

const OPEN_WORK = "new,open,pending,reopened";
const FILTERS = {
  status: [["", "any status"], [OPEN_WORK, "open work"], ...STATUSES.map((s) => [s, s])],
  priority: [["", "any priority"], ...PRIORITIES.map((p) => [p, p])],
  assignee: [["", "anyone"], ["me", "me"], ["none", "unassigned"]],
  sla: [["", "any SLA"], ["breached", "breached"], ["at_risk", "at risk"], ["on_track", "on track"]],
  order: [["newest", "newest first"], ["due", "SLA due first"], ["updated", "recently updated"], ["oldest", "oldest first"]],
};
const LABELS = { status: "Status", priority: "Priority", assignee: "Assigned to", sla: "SLA", order: "Order" };

function currentFilters() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  if (!location.hash.includes("?")) params.set("status", OPEN_WORK);
  return params;
}

export async function render(main, ctx) {
  const params = currentFilters();
  const list = h("tbody");
  const count = h("p", { class: "muted", "aria-live": "polite" });

  function apply(name, value) {
    const next = currentFilters();
    if (value) next.set(name, value); else next.delete(name);
    if (name === "status" && !value) next.set("status", "");
    location.hash = "#/tickets?" + next.toString();
  }

  const selects = Object.entries(FILTERS).map(([name, options]) => h("label", {}, LABELS[name],
    h("select", { id: `filter-${name}`, "aria-label": LABELS[name], onchange: (e) => apply(name, e.target.value) },
      ...options.map(([value, text]) => h("option", { value, selected: (params.get(name) || "") === value }, text)))));
  const search = h("input", { id: "filter-q", type: "search", maxlength: 200, value: params.get("q") || "" });
  const searchForm = h("form", { class: "row", role: "search", onsubmit: (e) => { e.preventDefault(); apply("q", search.value.trim()); } },
    h("label", {}, "Search", search), h("button", { type: "submit", class: "secondary" }, "Search"));

  const query = new URLSearchParams();
  for (const [key, value] of params) if (value) query.set(key, value);
  const tickets = await api("GET", "/tickets?" + query.toString());
  list.replaceChildren(...tickets.map((t) => h("tr", { dataset: { ticket: t.id } },
    h("td", {}, h("a", { href: `#/tickets/${t.id}` }, `#${t.id}`)),
    h("td", {}, t.subject, t.external ? h("span", { class: "muted" }, ` · ${t.external.system} ${t.external.key}`) : ""),
    h("td", {}, h("span", { class: `status status-${t.status}` }, t.status)),
    h("td", {}, h("span", { class: `prio prio-${t.priority}` }, t.priority)),
    h("td", {}, slaBadge(t)),
    h("td", {}, assigneeText(t)),
    h("td", {}, t.requester_name),
    h("td", {}, String(t.session_count)),
    h("td", {}, new Date(t.created_at).toLocaleString()),
  )));
  if (!tickets.length) list.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No tickets match.")));
  count.textContent = tickets.length === 100 ? "Showing the first 100." : `${counted(tickets.length, "ticket")}.`;

  const canWrite = ctx.me.permissions.includes("tickets.write");
  main.append(
    h("h1", {}, "Tickets"),
    h("div", { id: "ticket-queue-slot" }),
    h("section", { class: "panel" },
      h("div", { class: "row filters" }, ...selects, searchForm),
      h("div", { class: "scroll-x" }, h("table", { "aria-label": "Tickets" },
        h("thead", {}, h("tr", {}, ...["Ticket", "Subject", "Status", "Priority", "SLA", "Assigned", "Requester", "Sessions", "Opened"]
          .map((c) => h("th", { scope: "col" }, c)))),
        list)),
      count),
    canWrite ? newTicketForm(ctx.me.username) : "",
  );
  await renderQueue(main.querySelector("#ticket-queue-slot"), ctx);
}

function newTicketForm(me) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    class: "panel", "aria-labelledby": "new-ticket",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = Object.fromEntries(new FormData(form));
      if (!data.category) delete data.category;
      if (data.take) data.assignee = me;
      delete data.take;
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
    h("label", {}, "Priority", h("select", { name: "priority" }, ...PRIORITIES.map((p) => h("option", { value: p, selected: p === "normal" }, p)))),
    h("label", {}, "Category", h("input", { name: "category", maxlength: 64 }))),
  h("label", {}, "Description", h("textarea", { name: "description", rows: 3, maxlength: 20000 })),
  h("label", { class: "check" }, h("input", { type: "checkbox", name: "take", value: "1" }), "Assign it to me"),
  error, h("div", { class: "row" }, h("button", { type: "submit" }, "Open ticket")));
  return form;
}
