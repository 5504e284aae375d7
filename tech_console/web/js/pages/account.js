// Your own account: who you are, what your roles allow, and changing your password.

import { api } from "../api.js";
import { h, toast } from "../dom.js";

export async function render(main, ctx) {
  const me = ctx.me;
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    class: "panel", "aria-labelledby": "password-title",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      if (data.get("new_password") !== data.get("again")) {
        error.textContent = "the two new passwords differ";
        return;
      }
      try {
        await api("POST", "/auth/password", { current_password: data.get("current_password"), new_password: data.get("new_password") });
        form.reset();
        document.getElementById("password-required")?.remove();
        window.dispatchEvent(new CustomEvent("deskhand:password-changed"));
        toast("Password changed; your other sign-ins were ended.");
      } catch (err) {
        error.textContent = err.message;
      }
    },
  },
  h("h2", { id: "password-title" }, "Change your password"),
  ctx.passwordChangeRequired ? h("p", { class: "error", id: "password-required" }, "Your password was set by someone else: choose your own now.") : "",
  h("div", { class: "row" },
    h("label", {}, "Current password", h("input", { name: "current_password", type: "password", autocomplete: "current-password", required: true })),
    h("label", {}, "New password", h("input", { name: "new_password", type: "password", autocomplete: "new-password", required: true })),
    h("label", {}, "New password again", h("input", { name: "again", type: "password", autocomplete: "new-password", required: true }))),
  error, h("div", { class: "row" }, h("button", { type: "submit" }, "Change password")));
  main.append(
    h("h1", {}, "Your account"),
    h("section", { class: "panel" },
      h("p", {}, `${me.display_name} (${me.username}); roles: ${me.roles.join(", ") || "none"}`),
      h("p", { class: "muted" }, `Allowed: ${me.permissions.join(", ") || "nothing"}`)),
    form,
  );
}
