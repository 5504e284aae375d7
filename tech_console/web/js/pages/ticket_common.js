// What the ticket list and the ticket page both show: statuses, priorities, SLA flags, assignees.

import { h } from "../dom.js";

// The broker's names, in its order (protocol/; tests/unit/test_console_vocabulary.py keeps them in step).
export const STATUSES = ["new", "open", "pending", "resolved", "closed", "reopened"];
export const PRIORITIES = ["low", "normal", "high", "urgent"];

/** "3 h 20 min", "12 min", "40 s": a duration a person reads at a glance. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.round(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60), rest = minutes % 60;
  if (hours < 48) return rest ? `${hours} h ${rest} min` : `${hours} h`;
  return `${Math.round(hours / 24)} d`;
}

function soonestDue(sla) {
  const dues = [sla.first_response, sla.resolution].map((t) => t.due_at).filter(Boolean).map((d) => new Date(d));
  return dues.length ? new Date(Math.min(...dues)) : null;
}

/** The SLA state of a ticket as one short badge (text, not colour alone, carries the meaning). */
export function slaBadge(ticket) {
  const sla = ticket.sla;
  if (!sla) return h("span", { class: "muted" }, "no SLA");
  const due = soonestDue(sla);
  if (sla.breached) return h("span", { class: "badge badge-breached" }, "Breached");
  if (sla.at_risk) return h("span", { class: "badge badge-risk" }, due ? `At risk · ${duration((due - Date.now()) / 1000)} left` : "At risk");
  if (due) return h("span", { class: "badge" }, `Due in ${duration((due - Date.now()) / 1000)}`);
  const states = [sla.first_response.state, sla.resolution.state];
  if (states.includes("paused")) return h("span", { class: "badge badge-paused" }, "Paused");
  return h("span", { class: "badge badge-met" }, "Met");
}

export function assigneeText(ticket) {
  const parts = [];
  if (ticket.assignee) parts.push(ticket.assignee.display_name);
  if (ticket.team) parts.push(`team ${ticket.team.name}`);
  return parts.length ? parts.join(", ") : h("span", { class: "muted" }, "unassigned");
}
