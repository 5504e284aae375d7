// Teams: a session policy (denied session permissions, recording required, control only with
// the user in person) and members.

import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { adminTabs, alertBox, attempt, checkboxes, checked, SESSION_PERMISSIONS } from "./admin_common.js";

function policyFields(form) {
  return {
    denied: checked(form, "denied"),
    recording_required: form.elements.recording_required.checked,
    control_needs_user: form.elements.control_needs_user.checked,
  };
}

function members(text) {
  return text.split(/[\s,]+/).map((m) => m.trim()).filter(Boolean);
}

function fields(prefix, team) {
  const policy = team ? team.policy : { denied: [], recording_required: false, control_needs_user: false };
  return [
    h("label", {}, "Description", h("input", { name: "description", value: team ? team.description : "", maxlength: 200, size: 50 })),
    checkboxes("Denied session permissions", "denied", SESSION_PERMISSIONS, policy.denied, `${prefix}-denied`),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "recording_required", checked: policy.recording_required }),
      "Recording required (pause control while the recording lags)"),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "control_needs_user", checked: policy.control_needs_user }),
      "Control needs the user in person (a --consent flag does not count)"),
    h("label", {}, "Members (usernames, separated by spaces or commas)",
      h("textarea", { name: "members", rows: 2, cols: 60 }, team ? team.members.join(", ") : "")),
  ];
}

export async function render(main, ctx) {
  const teams = await api("GET", "/teams");
  const rerender = () => { main.replaceChildren(); return render(main, ctx); };

  const panels = teams.map((team) => {
    const error = alertBox();
    const form = h("form", {
      class: "panel admin-form", "aria-labelledby": `team-${team.name}`,
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { description: form.elements.description.value, policy: policyFields(form), members: members(form.elements.members.value) };
        if (await attempt(error, () => api("PATCH", `/teams/${team.name}`, body))) { await rerender(); toast(`Saved team ${team.name}`); }
      },
    },
    h("h2", { id: `team-${team.name}` }, team.name),
    ...fields(`team-${team.name}`, team), error,
    h("div", { class: "row" }, h("button", { type: "submit" }, `Save ${team.name}`),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Delete the team ${team.name}?`)) return;
        if (await attempt(error, () => api("DELETE", `/teams/${team.name}`)) !== undefined) await rerender();
      } }, `Delete ${team.name}`)));
    return form;
  });

  const createError = alertBox();
  const create = h("form", {
    class: "panel admin-form", "aria-labelledby": "new-team",
    onsubmit: async (event) => {
      event.preventDefault();
      const body = { name: create.elements.name.value, description: create.elements.description.value,
        policy: policyFields(create), members: members(create.elements.members.value) };
      if (await attempt(createError, () => api("POST", "/teams", body))) { await rerender(); toast(`Created team ${body.name}`); }
    },
  },
  h("h2", { id: "new-team" }, "New team"),
  h("label", {}, "Name", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9._\\-]{1,63}", title: "lower case letters, digits, . _ -; 2 to 64" })),
  ...fields("new-team", null), createError, h("div", { class: "row" }, h("button", { type: "submit" }, "Create team")));

  main.append(h("h1", {}, "Admin: teams"), adminTabs(ctx), create,
    teams.length ? "" : h("p", { class: "muted" }, "No teams yet."), ...panels);
}
