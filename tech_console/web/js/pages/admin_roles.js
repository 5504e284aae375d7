// Roles: each with its permissions; create, edit (permissions, TOTP), delete those not built in.

import { api } from "../api.js";
import { counted, h, toast } from "../dom.js";
import { adminTabs, alertBox, attempt, checkboxes, checked, ROLE_PERMISSIONS } from "./admin_common.js";

export async function render(main, ctx) {
  const roles = await api("GET", "/roles");
  const rerender = () => { main.replaceChildren(); return render(main, ctx); };

  const panels = roles.map((role) => {
    const error = alertBox();
    const fixed = role.name === "admin";  // admin's permissions cannot change
    const form = h("form", {
      class: "panel admin-form", "aria-labelledby": `role-${role.name}`,
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { description: form.elements.description.value, require_totp: form.elements.require_totp.checked };
        if (!fixed) body.permissions = checked(form, "permissions");
        if (await attempt(error, () => api("PATCH", `/roles/${role.name}`, body))) { await rerender(); toast(`Saved role ${role.name}`); }
      },
    },
    h("h2", { id: `role-${role.name}` }, role.name, role.builtin ? h("span", { class: "muted" }, " (built in)") : "",
      h("span", { class: "muted" }, ` · ${counted(role.members, "member")}`)),
    h("label", {}, "Description", h("input", { name: "description", value: role.description, maxlength: 200, size: 60 })),
    fixed ? h("p", { class: "muted" }, "Every permission; the admin role's permissions cannot change.")
      : checkboxes("Permissions", "permissions", ROLE_PERMISSIONS, role.permissions, `perm-${role.name}`),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "require_totp", checked: role.require_totp }), "Members must sign in with TOTP"),
    error,
    h("div", { class: "row" }, h("button", { type: "submit" }, `Save ${role.name}`),
      role.builtin ? "" : h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete the role ${role.name}?`)) return;
        if (await attempt(error, () => api("DELETE", `/roles/${role.name}`)) !== undefined) await rerender();
      } }, `Delete ${role.name}`)));
    return form;
  });

  const createError = alertBox();
  const create = h("form", {
    class: "panel admin-form", "aria-labelledby": "new-role",
    onsubmit: async (event) => {
      event.preventDefault();
      const body = { name: create.elements.name.value, description: create.elements.description.value,
        permissions: checked(create, "permissions"), require_totp: create.elements.require_totp.checked };
      if (await attempt(createError, () => api("POST", "/roles", body))) { await rerender(); toast(`Created role ${body.name}`); }
    },
  },
  h("h2", { id: "new-role" }, "New role"),
  h("div", { class: "row" },
    h("label", {}, "Name", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9._\\-]{1,63}", title: "lower case letters, digits, . _ -; 2 to 64" })),
    h("label", {}, "Description", h("input", { name: "description", maxlength: 200, size: 50 }))),
  checkboxes("Permissions", "permissions", ROLE_PERMISSIONS, [], "new-perm"),
  h("label", { class: "check" }, h("input", { type: "checkbox", name: "require_totp" }), "Members must sign in with TOTP"),
  createError, h("div", { class: "row" }, h("button", { type: "submit" }, "Create role")));

  main.append(h("h1", {}, "Admin: roles"), adminTabs(ctx), create, ...panels);
}
