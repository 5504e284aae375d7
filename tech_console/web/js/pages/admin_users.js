// Accounts: list, create (a generated password shown once), roles and teams, disable/enable,
// password reset, delete.

import { api } from "../api.js";
import { h, toast, when } from "../dom.js";
import { adminTabs, alertBox, attempt, checkboxes, checked } from "./admin_common.js";

// A password to show once after the page is drawn again (a new account, a reset).
let pending = null;

export async function render(main, ctx) {
  const [users, roles, teams] = await Promise.all([
    api("GET", "/users"),
    ctx.me.permissions.includes("roles.manage") ? api("GET", "/roles") : null,
    ctx.me.permissions.includes("policies.manage") ? api("GET", "/teams") : null,
  ]);
  // Without roles.manage/policies.manage the choices are what accounts already hold.
  const roleNames = roles ? roles.map((r) => r.name) : [...new Set(["admin", "technician", "auditor", ...users.flatMap((u) => u.roles)])];
  const teamNames = teams ? teams.map((t) => t.name) : [...new Set(users.flatMap((u) => u.teams))];
  const secret = h("div", { "aria-live": "polite", id: "secret" });
  const rerender = () => { main.replaceChildren(); return render(main, ctx); };

  function showSecret(username, password) {
    pending = { username, password };
    return rerender();
  }
  if (pending) {
    const { username, password } = pending;
    pending = null;
    secret.replaceChildren(h("section", { class: "panel admin-form", "aria-labelledby": "secret-title" },
      h("h2", { id: "secret-title" }, `Password for ${username}`),
      h("p", {}, "Shown this once: hand it over safely. It must be changed at the first sign-in."),
      h("p", { class: "secret", id: "new-password" }, password)));
  }

  const rows = users.map((user) => {
    const error = alertBox();
    const editor = h("form", {
      class: "inline-edit", "aria-label": `Roles and teams of ${user.username}`,
      onsubmit: async (event) => {
        event.preventDefault();
        const done = await attempt(error, () => api("PATCH", `/users/${user.username}`,
          { roles: checked(editor, "roles"), teams: checked(editor, "teams") }));
        if (done) { await rerender(); toast(`Saved ${user.username}`); }
      },
    },
    checkboxes("Roles", "roles", roleNames, user.roles, `roles-${user.username}`),
    teamNames.length ? checkboxes("Teams", "teams", teamNames, user.teams, `teams-${user.username}`) : "",
    h("button", { type: "submit", class: "secondary" }, `Save ${user.username}`));
    const act = (label, cls, action) => h("button", { type: "button", class: cls, "aria-label": `${label} ${user.username}`, onclick: async () => {
      const done = await attempt(error, action);
      if (done !== undefined) await rerender();
      return done;
    } }, label);
    return h("tr", {},
      h("th", { scope: "row" }, user.username, h("div", { class: "muted" }, user.display_name)),
      h("td", {}, user.disabled ? h("span", { class: "error" }, "disabled") : "enabled",
        user.totp_enabled ? h("div", { class: "muted" }, "TOTP") : "", user.locked_until ? h("div", { class: "muted" }, `locked until ${when(user.locked_until)}`) : ""),
      h("td", {}, editor),
      h("td", {}, h("div", { class: "row" },
        act(user.disabled ? "Enable" : "Disable", "secondary", () => api("PATCH", `/users/${user.username}`, { disabled: !user.disabled })),
        h("button", { type: "button", class: "secondary", "aria-label": `Reset password of ${user.username}`, onclick: async () => {
          const reset = await attempt(error, () => api("POST", `/users/${user.username}/password-reset`));
          if (reset) await showSecret(user.username, reset.password);
        } }, "Reset password"),
        act("Delete", "danger", () => (confirm(`Delete ${user.username}?`) ? api("DELETE", `/users/${user.username}`) : undefined))),
      error));
  });

  const createError = alertBox();
  const form = h("form", {
    class: "panel admin-form", "aria-labelledby": "new-account",
    onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const made = await attempt(createError, () => api("POST", "/users", {
        username: data.get("username"), display_name: data.get("display_name"),
        roles: checked(form, "roles"), teams: checked(form, "teams"),
      }));
      if (made) await showSecret(made.user.username, made.password);
    },
  },
  h("h2", { id: "new-account" }, "New account"),
  h("div", { class: "row" },
    h("label", {}, "Username", h("input", { name: "username", required: true, pattern: "[a-z0-9][a-z0-9._\\-]{1,63}", title: "lower case letters, digits, . _ -; 2 to 64", autocomplete: "off" })),
    h("label", {}, "Display name", h("input", { name: "display_name", required: true, maxlength: 120, autocomplete: "off" }))),
  checkboxes("Roles", "roles", roleNames, ["technician"], "new-roles"),
  teamNames.length ? checkboxes("Teams", "teams", teamNames, [], "new-teams") : "",
  createError,
  h("div", { class: "row" }, h("button", { type: "submit" }, "Create account"), h("span", { class: "muted" }, "A password is generated and shown once.")));

  main.append(
    h("h1", {}, "Admin: accounts"), adminTabs(ctx), secret,
    h("section", { class: "panel" }, h("table", { "aria-label": "Accounts" },
      h("thead", {}, h("tr", {}, ...["Account", "State", "Roles and teams", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...rows))),
    form,
  );
}
