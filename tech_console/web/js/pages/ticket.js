// One ticket with its sessions; a technician starts a session here and sees its code.

import { api } from "../api.js";
import { h, when } from "../dom.js";

export async function render(main, ctx, [ticketId]) {
  const ticket = await api("GET", `/tickets/${ticketId}`);
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
  const sessions = h("tbody", {}, ...ticket.sessions.map((s) => h("tr", {},
    h("td", {}, h("a", { href: `#/sessions/${s.id}` }, s.id.slice(0, 8))),
    h("td", {}, s.state), h("td", {}, s.technician.display_name),
    h("td", {}, s.host ? `${s.host.user_name} on ${s.host.machine_name}` : ""),
    h("td", {}, when(s.created_at)), h("td", {}, s.end_reason || ""),
  )));
  main.append(
    h("h1", {}, `Ticket #${ticket.id}: ${ticket.subject}`),
    h("section", { class: "panel" },
      h("p", {}, `${ticket.status}, priority ${ticket.priority}; requested by ${ticket.requester_name} <${ticket.requester_email}>`),
      ticket.description ? h("p", {}, ticket.description) : "",
      ctx.me.permissions.includes("session.start") ? h("div", {}, start, codeBox) : ""),
    h("section", { class: "panel" }, h("h2", {}, "Sessions"),
      h("table", { "aria-label": "Sessions" },
        h("thead", {}, h("tr", {}, ...["Session", "State", "Technician", "Host", "Started", "Note"].map((c) => h("th", { scope: "col" }, c)))),
        sessions)),
  );
}
