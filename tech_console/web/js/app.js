// The console's shell: who is signed in, the navigation their permissions allow, and the router.
//
// Pages are ES modules under pages/, each exporting render(view, ctx, params); the router
// loads one per location hash (#/tickets, #/tickets/12, ...). No build step.

import { api, ApiError, signIn, signOut } from "./api.js";
import { h } from "./dom.js";

// Each page: the hash it answers (groups become params), its module, the permission it needs,
// and its place in the navigation (if any).
const ROUTES = [
  { pattern: /^#\/account$/, module: "./pages/account.js", permission: null },
  { pattern: /^#\/tickets(?:\?.*)?$/, module: "./pages/tickets.js", permission: "tickets.read", nav: ["Tickets", "#/tickets"] },
  { pattern: /^#\/tickets\/(\d+)$/, module: "./pages/ticket.js", permission: "tickets.read" },
  { pattern: /^#\/sessions\/([0-9a-f-]{36})$/, module: "./pages/session.js", permission: "session.start" },
  { pattern: /^#\/audit(?:\?.*)?$/, module: "./pages/audit.js", permission: "audit.read", nav: ["Audit", "#/audit"] },
  { pattern: /^#\/audit\/([0-9a-f-]{36})$/, module: "./pages/audit_session.js", permission: "audit.read" },
  { pattern: /^#\/dashboard(?:\?.*)?$/, module: "./pages/dashboard.js", permission: "reports.read", nav: ["Dashboard", "#/dashboard"] },
  { pattern: /^#\/admin\/users$/, module: "./pages/admin_users.js", permission: "users.manage", nav: ["Admin", "#/admin/users"] },
  { pattern: /^#\/admin\/roles$/, module: "./pages/admin_roles.js", permission: "roles.manage", nav: ["Admin", "#/admin/roles"] },
  { pattern: /^#\/admin\/teams$/, module: "./pages/admin_teams.js", permission: "policies.manage", nav: ["Admin", "#/admin/teams"] },
];

const ctx = { me: null, passwordChangeRequired: false };
const main = document.getElementById("main");
const ACCOUNT_PAGE = "#/account";

function allowed(permission) {
  return !permission || (ctx.me && ctx.me.permissions.includes(permission));
}

function renderNav() {
  const nav = document.getElementById("nav");
  // One link per section (its first page this account may open): an admin who may manage
  // only teams still finds Admin, and lands on the teams page.
  const sections = new Map();
  for (const r of ROUTES) {
    // Until a password someone else set is changed the broker refuses everything else: no sections.
    if (r.nav && allowed(r.permission) && !ctx.passwordChangeRequired && !sections.has(r.nav[0])) sections.set(r.nav[0], r.nav[1]);
  }
  nav.replaceChildren(...[...sections].map(([label, href]) => h("a", { href }, label)));
  nav.hidden = !ctx.me;
  for (const link of nav.querySelectorAll("a")) {
    const section = link.getAttribute("href").split("/").slice(0, 2).join("/");
    if (location.hash === section || location.hash.startsWith(section + "/") || location.hash.startsWith(section + "?")) {
      link.setAttribute("aria-current", "page");
    }
  }
  const who = document.getElementById("who");
  who.replaceChildren(...(ctx.me ? [
    ctx.passwordChangeRequired ? h("a", { href: ACCOUNT_PAGE, class: "attention" }, "Change your password") : "",
    h("span", {}, ctx.me.display_name),
    h("a", { href: "#/account", class: "account-link" }, "Account"),
    h("button", { class: "secondary", onclick: async () => { await signOut(); ctx.me = null; route(); } }, "Sign out"),
  ] : []));
}

function firstPage() {
  const first = ROUTES.find((r) => r.nav && allowed(r.permission));
  return first ? first.nav[1] : "#/";
}

// Routing runs are numbered: a page still loading for an earlier hash (the landing page right
// after signing in, say) must not paint over the page asked for since. Each run renders into
// its own view; one overtaken stops at its next step or finishes into a detached view.
let routing = 0;

async function route() {
  const run = ++routing;
  if (!ctx.me) {
    // Asked of /auth/session, which never answers with an error: a signed-out visitor is
    // no failure, and must not show up as one in the browser's console.
    const state = await api("GET", "/auth/session");
    ctx.me = state.signed_in ? state.user : null;
    ctx.passwordChangeRequired = state.signed_in && state.password_change_required;
    if (run !== routing) return;
  }
  renderNav();
  if (!ctx.me) return renderLogin();
  if (ctx.passwordChangeRequired && location.hash !== ACCOUNT_PAGE) { location.hash = ACCOUNT_PAGE; return; }
  if (!location.hash || location.hash === "#/") { location.hash = firstPage(); return; }
  const found = ROUTES.find((r) => r.pattern.test(location.hash));
  if (!found) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: firstPage() }, "Back to the start")));
    return;
  }
  const { pattern, module, permission } = found;
  if (!allowed(permission)) {
    main.replaceChildren(h("h1", {}, "Not allowed"), h("p", {}, `This page needs the ${permission} permission; ask an admin.`));
    return;
  }
  const params = location.hash.match(pattern).slice(1);
  const page = await import(module);
  if (run !== routing) return;
  const view = h("div", { class: "view" });
  main.replaceChildren(view);
  try {
    await page.render(view, ctx, params);
  } catch (err) {
    view.append(h("p", { class: "error", role: "alert" }, err.message || String(err)));
  }
  if (run === routing) main.focus();
}

function renderLogin() {
  const error = h("p", { class: "error", role: "alert" });
  const totp = h("label", { hidden: true }, "Code from your authenticator app",
    h("input", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}" }));
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      try {
        const answer = await signIn(data.get("username"), data.get("password"), data.get("totp"));
        ctx.me = answer.user;
        // A password someone else set (the first admin's, a reset): the header says so until changed.
        ctx.passwordChangeRequired = answer.password_change_required;
        route();
      } catch (err) {
        if (err instanceof ApiError && err.error === "totp_required") {
          totp.hidden = false;
          totp.querySelector("input").focus();
        }
        error.textContent = err.message;
      }
    },
  },
  h("label", {}, "Username", h("input", { name: "username", autocomplete: "username", required: true, autofocus: true })),
  h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
  totp, error, h("button", { type: "submit" }, "Sign in"));
  main.replaceChildren(h("section", { class: "panel login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to Deskhand"), form));
  form.querySelector("input").focus();
}

window.addEventListener("hashchange", route);
window.addEventListener("deskhand:signed-out", () => { ctx.me = null; route(); });
// The broker refused a request until the password is changed (reset while signed in, say).
window.addEventListener("deskhand:password-change-required", () => { ctx.passwordChangeRequired = true; route(); });
window.addEventListener("deskhand:password-changed", () => { ctx.passwordChangeRequired = false; renderNav(); });
route();
