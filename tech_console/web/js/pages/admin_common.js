// Shared by the admin pages: the tabs between them, permission lists, small form helpers.

import { h } from "../dom.js";

// The broker's names, in its order (protocol/permissions.py; tests/unit/test_console_vocabulary.py keeps them in step).
export const SESSION_PERMISSIONS = ["view", "control", "clipboard", "chat", "files.send", "files.receive"];
export const ACCOUNT_PERMISSIONS = [
  "session.start", "tickets.read", "tickets.write", "tickets.assign", "recordings.view", "audit.read", "audit.export",
  "users.manage", "roles.manage", "policies.manage", "reports.read", "integrations.manage",
];
export const ROLE_PERMISSIONS = [...ACCOUNT_PERMISSIONS, ...SESSION_PERMISSIONS];

const TABS = [["Accounts", "#/admin/users", "users.manage"], ["Roles", "#/admin/roles", "roles.manage"], ["Teams", "#/admin/teams", "policies.manage"]];

/** The admin section's tab links the account may use. */
export function adminTabs(ctx) {
  return h("nav", { class: "row tabs", "aria-label": "Admin" }, ...TABS.filter(([, , p]) => ctx.me.permissions.includes(p)).map(
    ([label, href]) => h("a", { href, "aria-current": location.hash === href ? "page" : false }, label)));
}

/** A group of labelled checkboxes named ``name``, ``chosen`` ticked. */
export function checkboxes(legend, name, options, chosen = [], idPrefix = name) {
  return h("fieldset", {}, h("legend", {}, legend), h("div", { class: "checks" }, ...options.map((option) => h("label", { class: "check" },
    h("input", { type: "checkbox", name, value: option, checked: chosen.includes(option), id: `${idPrefix}-${option}` }), option))));
}

export function checked(root, name) {
  return [...root.querySelectorAll(`input[type=checkbox][name="${name}"]`)].filter((box) => box.checked).map((box) => box.value);
}

export function alertBox() {
  return h("p", { class: "error", role: "alert" });
}

/** Run ``action``; an API error lands in ``box`` (next to the form), success clears it. */
export async function attempt(box, action) {
  box.textContent = "";
  try {
    return await action();
  } catch (err) {
    box.textContent = err.message;
    return undefined;
  }
}
