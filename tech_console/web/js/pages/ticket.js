// One ticket: its properties and lifecycle, SLA timers, sessions (start one, see its code),
// the conversation (internal notes, public replies, session reports, survey answers).

import { api } from "../api.js";
import { counted, h, toast, when } from "../dom.js";
import { assigneeText, duration, slaBadge, PRIORITIES } from "./ticket_common.js";

export async function render(main, ctx, [ticketId]) {
  const ticket = await api("GET", `/tickets/${ticketId}`);
  const can = (p) => ctx.me.permissions.includes(p);
  const rerender = async () => { main.replaceChildren(); await render(main, ctx, [ticketId]); };

  async function change(body, done) {
    try {
      await api("PATCH", `/tickets/${ticket.id}`, body);
      toast(done);
      await rerender();
    } catch (err) {
      toast(err.message);
      main.querySelector("#ticket-error").textContent = err.message;
    }
  }

  main.append(
    h("h1", {}, `Ticket #${ticket.id}: ${ticket.subject}`),
    h("p", { class: "row" },
      h("span", { class: `status status-${ticket.status}`, id: "ticket-status" }, ticket.status),
      h("span", { class: `prio prio-${ticket.priority}` }, `priority ${ticket.priority}`),
      slaBadge(ticket),
      h("span", {}, "Assigned: ", assigneeText(ticket)),
      ticket.external ? h("span", { class: "muted" }, `${ticket.external.system} ${ticket.external.key}`) : ""),
    h("p", { class: "error", role: "alert", id: "ticket-error" }),
    h("div", { class: "grid2" },
      h("div", {},
        requestPanel(ticket),
        sessionsPanel(ticket, can("session.start")),
        conversationPanel(ticket, can("tickets.write"), rerender)),
      h("div", {},
        can("tickets.write") ? workPanel(ticket, ctx.me, can("tickets.assign"), change) : "",
        slaPanel(ticket),
        surveysPanel(ticket))),
  );
}

function requestPanel(ticket) {
  const email = ticket.requester_email ? ` <${ticket.requester_email}>` : "";
  const via = { console: "", host: " from their computer (no code)", inbound: ` via ${ticket.external ? ticket.external.system : "an external helpdesk"}` }[ticket.created_via];
  return h("section", { class: "panel", "aria-labelledby": "request-title" },
    h("h2", { id: "request-title" }, "Request"),
    h("p", {}, `Requested by ${ticket.requester_name}${email}${via}, ${when(ticket.created_at)}.`),
    ticket.category ? h("p", {}, `Category: ${ticket.category}`) : "",
    ticket.description ? h("p", { class: "prewrap" }, ticket.description) : h("p", { class: "muted" }, "No description."));
}

function workPanel(ticket, me, mayAssign, change) {
  const status = h("select", { id: "ticket-status-select", name: "status", "aria-label": "Status" },
    h("option", { value: "", selected: true }, `${ticket.status} (now)`),
    ...ticket.allowed_statuses.map((s) => h("option", { value: s }, s)));
  const priority = h("select", { name: "priority", "aria-label": "Priority" }, ...PRIORITIES.map((p) => h("option", { value: p, selected: p === ticket.priority }, p)));
  const category = h("input", { name: "category", maxlength: 64, value: ticket.category });
  const assignee = h("select", { name: "assignee", "aria-label": "Assignee", disabled: !mayAssign }, h("option", { value: "" }, "nobody"));
  const team = h("select", { name: "team", "aria-label": "Team", disabled: !mayAssign }, h("option", { value: "" }, "no team"));
  const system = h("input", { name: "external_system", maxlength: 32, size: 10, value: ticket.external ? ticket.external.system : "", placeholder: "jira" });
  const key = h("input", { name: "external_key", maxlength: 128, size: 14, value: ticket.external ? ticket.external.key : "", placeholder: "HELP-42" });

  api("GET", "/tickets/assignees").then((found) => {
    assignee.append(...found.people.map((p) => h("option", { value: p.username, selected: ticket.assignee && ticket.assignee.id === p.id }, p.display_name)));
    team.append(...found.teams.map((t) => h("option", { value: t.name, selected: ticket.team && ticket.team.id === t.id }, t.name)));
  }).catch((err) => toast(err.message));

  const form = h("form", {
    class: "admin-form",
    onsubmit: (event) => {
      event.preventDefault();
      const body = {};
      if (status.value) body.status = status.value;
      if (priority.value !== ticket.priority) body.priority = priority.value;
      if (category.value.trim() !== ticket.category) body.category = category.value.trim();
      if (mayAssign) {
        const was = ticket.assignee ? ticket.assignee.username : "";
        if (assignee.value !== was) body.assignee = assignee.value || null;
        const wasTeam = ticket.team ? ticket.team.name : "";
        if (team.value !== wasTeam) body.team = team.value || null;
      }
      const ref = system.value.trim() && key.value.trim() ? { system: system.value.trim(), key: key.value.trim() } : null;
      const wasRef = ticket.external ? `${ticket.external.system}/${ticket.external.key}` : "";
      if ((ref ? `${ref.system}/${ref.key}` : "") !== wasRef) body.external = ref;
      if (!Object.keys(body).length) { toast("Nothing changed."); return; }
      change(body, "Ticket saved.");
    },
  },
  h("label", {}, "Status", status),
  h("label", {}, "Priority", priority),
  h("label", {}, "Category", category),
  h("label", {}, "Assignee", assignee),
  h("label", {}, "Team", team),
  h("fieldset", {}, h("legend", {}, "External helpdesk"),
    h("div", { class: "row" }, h("label", {}, "System", system), h("label", {}, "Key", key))),
  h("div", { class: "row" },
    h("button", { type: "submit" }, "Save"),
    !ticket.assignee || ticket.assignee.id !== me.id
      ? h("button", { type: "button", class: "secondary", onclick: () => change({ assignee: me.username }, "The ticket is yours.") }, "Take it")
      : ""));
  return h("section", { class: "panel", "aria-labelledby": "work-title" }, h("h2", { id: "work-title" }, "Work"), form);
}

function timerRow(name, timer) {
  const state = { running: "running", at_risk: "at risk", breached: "breached", paused: "paused", met: "met" }[timer.state];
  let detail = `${duration(timer.spent_s)} of ${duration(timer.target_s)}`;
  if (timer.due_at) detail += `, due ${when(timer.due_at)}`;
  if (timer.met_at) detail += `, met ${when(timer.met_at)}`;
  return h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, h("span", { class: `badge badge-${timer.state}` }, state)), h("td", {}, detail));
}

function slaPanel(ticket) {
  const body = ticket.sla
    ? h("table", { "aria-label": "SLA timers" }, h("tbody", {},
      timerRow("First response", ticket.sla.first_response), timerRow("Resolution", ticket.sla.resolution)))
    : h("p", { class: "muted" }, "This ticket has no SLA targets.");
  return h("section", { class: "panel", "aria-labelledby": "sla-title" },
    h("h2", { id: "sla-title" }, "SLA"), body,
    ticket.sla && ticket.sla.business_hours ? h("p", { class: "muted" }, "Counted in business hours.") : "",
    ticket.reopen_count ? h("p", {}, `Reopened ${counted(ticket.reopen_count, "time")}.`) : "");
}

function surveysPanel(ticket) {
  if (!ticket.surveys.length) return "";
  return h("section", { class: "panel", "aria-labelledby": "survey-title" },
    h("h2", { id: "survey-title" }, "Satisfaction"),
    h("ul", {}, ...ticket.surveys.map((s) => h("li", {},
      h("strong", { "aria-label": `rated ${s.rating} of 5` }, "★".repeat(s.rating) + "☆".repeat(5 - s.rating)),
      s.comment ? ` “${s.comment}”` : "", h("span", { class: "muted" }, ` ${when(s.submitted_at)}`)))));
}

function sessionsPanel(ticket, mayStart) {
  const codeBox = h("div", { "aria-live": "polite" });
  const start = h("button", {
    onclick: async () => {
      start.disabled = true;
      try {
        const started = await api("POST", "/sessions", { ticket_id: ticket.id });
        // The broker shows a code only once: the session page of this tab reads it back.
        sessionStorage.setItem(`deskhand.code.${started.session.id}`, started.code_display);
        codeBox.replaceChildren(
          h("p", {}, "Read this code to the end user:"),
          h("p", { class: "code", id: "session-code", "aria-label": "support code " + started.code_display }, started.code_display),
          h("p", { class: "muted" }, `Valid until ${when(started.session.code_expires_at)}. `,
            h("a", { href: `#/sessions/${started.session.id}` }, "Open the session")),
        );
      } catch (err) {
        codeBox.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
      } finally {
        start.disabled = false;
      }
    },
  }, "Start a support session");
  const rows = ticket.sessions.map((s) => h("tr", {},
    h("td", {}, h("a", { href: `#/sessions/${s.id}` }, s.id.slice(0, 8))),
    h("td", {}, s.state), h("td", {}, s.technician.display_name),
    h("td", {}, s.host ? `${s.host.user_name} on ${s.host.machine_name}` : ""),
    h("td", {}, when(s.created_at)), h("td", {}, s.end_reason || ""),
  ));
  return h("section", { class: "panel", "aria-labelledby": "sessions-title" },
    h("h2", { id: "sessions-title" }, "Sessions"),
    mayStart ? h("div", {}, start, codeBox) : "",
    rows.length
      ? h("table", { "aria-label": "Sessions" },
        h("thead", {}, h("tr", {}, ...["Session", "State", "Technician", "Host", "Started", "Note"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...rows))
      : h("p", { class: "muted" }, "No sessions yet."));
}

const KIND_LABELS = { note: "Internal note", reply: "Reply to requester", session_report: "Session report", survey: "Survey answer", inbound: "From the external helpdesk" };

function conversationPanel(ticket, mayWrite, rerender) {
  const items = ticket.comments.map((c) => h("li", { class: `comment comment-${c.visibility}`, dataset: { kind: c.kind } },
    h("p", { class: "comment-head" },
      h("strong", {}, KIND_LABELS[c.kind] || c.kind), " · ",
      c.author_user ? c.author_user.display_name : c.author, " · ", when(c.at),
      c.visibility === "internal" ? h("span", { class: "muted" }, " · internal") : ""),
    h("p", { class: "prewrap" }, c.body)));
  const error = h("p", { class: "error", role: "alert" });
  const text = h("textarea", { id: "comment-body", name: "body", rows: 4, maxlength: 20000, required: true });
  const form = h("form", {
    class: "admin-form",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const visibility = new FormData(form).get("visibility");
      try {
        await api("POST", `/tickets/${ticket.id}/comments`, { body: text.value, visibility });
        toast(visibility === "public" ? "Reply added." : "Note added.");
        await rerender();
      } catch (err) {
        error.textContent = err.message;
      }
    },
  },
  h("label", {}, "Add to the conversation", text),
  h("div", { class: "row", role: "radiogroup", "aria-label": "Who it is for" },
    h("label", { class: "check" }, h("input", { type: "radio", name: "visibility", value: "internal", checked: true }), "Internal note"),
    h("label", { class: "check" }, h("input", { type: "radio", name: "visibility", value: "public" }), "Public reply to the requester")),
  error, h("button", { type: "submit" }, "Add"));
  return h("section", { class: "panel", "aria-labelledby": "conversation-title" },
    h("h2", { id: "conversation-title" }, "Conversation"),
    items.length ? h("ol", { class: "comments" }, ...items) : h("p", { class: "muted" }, "Nothing yet."),
    mayWrite ? form : "");
}
