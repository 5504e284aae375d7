// Helpdesk dashboard: KPI tiles, per-day charts, CSAT distribution, per-technician and per-team
// tables, and the same figures as CSV. Charts are inline SVG built element by element (the CSP
// allows no outside library, and nothing here is parsed as markup).
//
// The range is whole UTC days (the broker counts days in UTC), kept in the hash:
// #/dashboard?from=YYYY-MM-DD&to=YYYY-MM-DD[&technician=..][&team=..]. Once the figures and
// charts are drawn, the page's section gets data-ready="true" (tests wait for it).

import { api, download } from "../api.js";
import { counted, h } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const DEFAULT_DAYS = 30;
const MAX_SPAN_DAYS = 366; // protocol/kpis.py MAX_SPAN_DAYS
const FILTERS = ["from", "to", "technician", "team"];

/** Load the page's own stylesheet once (style-src 'self' allows it). */
function loadStyles() {
  if (document.querySelector('link[href="/css/dashboard.css"]')) return;
  document.head.append(h("link", { rel: "stylesheet", href: "/css/dashboard.css" }));
}

/** An SVG element with attributes and children (no markup parsing). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function utcDay(offsetDays = 0) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

/** Seconds as the largest sensible unit: "45 s", "12 min", "3.5 h", "2.1 d". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 36 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

/** A share as a percentage with one decimal, "–" when there is nothing to share. */
export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

function tile(key, label, value, raw, detail) {
  return h("div", { class: "tile", "data-kpi": key, "data-value": raw === null || raw === undefined ? "" : raw },
    h("span", { class: "tile-label" }, label),
    h("strong", { class: "tile-value" }, value),
    h("span", { class: "tile-detail muted" }, detail));
}

function tiles(f) {
  return h("div", { class: "tiles", role: "list", "aria-label": "Key figures" },
    ...[
      tile("volume", "Tickets created", String(f.volume), f.volume, "in the range"),
      tile("backlog", "Backlog", String(f.backlog), f.backlog, "not done at the end"),
      tile("first-response", "First response (median)", duration(f.first_response.median_seconds),
        f.first_response.median_seconds, `p90 ${duration(f.first_response.p90_seconds)} · ${counted(f.first_response.count, "ticket")}`),
      tile("resolution", "Resolution (median)", duration(f.resolution.median_seconds),
        f.resolution.median_seconds, `p90 ${duration(f.resolution.p90_seconds)} · ${counted(f.resolution.count, "ticket")}`),
      tile("fcr", "First contact resolution", percent(f.first_contact_resolution.rate), f.first_contact_resolution.rate,
        `${f.first_contact_resolution.count} of ${f.first_contact_resolution.of} done`),
      tile("csat", "Satisfied (CSAT)", percent(f.csat.rate), f.csat.rate,
        `${counted(f.csat.surveys, "survey")} · average ${f.csat.average === null ? "–" : f.csat.average.toFixed(2)}`),
      tile("repeats", "Repeat incidents", percent(f.repeats.rate), f.repeats.rate, `${f.repeats.count} of ${f.repeats.of}`),
    ].map((t) => { t.setAttribute("role", "listitem"); return t; }));
}

const W = 480, H = 220, PAD = { left: 40, right: 10, top: 14, bottom: 30 };

/** Axes with the maximum and zero on the left, the first and last day underneath. */
function frame(max, firstLabel, lastLabel) {
  const bottom = H - PAD.bottom;
  return [
    s("line", { x1: PAD.left, y1: bottom, x2: W - PAD.right, y2: bottom, class: "axis" }),
    s("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "axis" }),
    s("text", { x: PAD.left - 6, y: PAD.top + 4, "text-anchor": "end", class: "tick" }, String(max)),
    s("text", { x: PAD.left - 6, y: bottom, "text-anchor": "end", class: "tick" }, "0"),
    s("text", { x: PAD.left, y: H - 8, class: "tick" }, firstLabel),
    s("text", { x: W - PAD.right, y: H - 8, "text-anchor": "end", class: "tick" }, lastLabel),
  ];
}

function chart(title, id, ...parts) {
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-title`, id },
      s("title", { id: `${id}-title` }, title), ...parts),
    h("figcaption", {}, title));
}

/** Bars per day: tickets created. */
function volumeChart(daily) {
  const max = Math.max(1, ...daily.map((d) => d.created));
  const span = (W - PAD.left - PAD.right) / daily.length;
  const height = H - PAD.top - PAD.bottom;
  const bars = daily.map((d, i) => {
    const tall = (d.created / max) * height;
    return s("rect", { x: (PAD.left + i * span + span * 0.1).toFixed(1), y: (H - PAD.bottom - tall).toFixed(1),
      width: Math.max(1, span * 0.8).toFixed(1), height: tall.toFixed(1), class: "bar" },
    s("title", {}, `${d.day}: ${d.created} created, ${d.resolved} resolved`));
  });
  return chart("Tickets created per day", "chart-volume", frame(max, daily[0].day, daily[daily.length - 1].day), bars);
}

/** A line per day: backlog at the end of each day. */
function backlogChart(daily) {
  const max = Math.max(1, ...daily.map((d) => d.backlog));
  const span = daily.length > 1 ? (W - PAD.left - PAD.right) / (daily.length - 1) : 0;
  const height = H - PAD.top - PAD.bottom;
  const points = daily.map((d, i) => [PAD.left + i * span, H - PAD.bottom - (d.backlog / max) * height]);
  const dots = daily.map((d, i) => s("circle", { cx: points[i][0].toFixed(1), cy: points[i][1].toFixed(1), r: 2.5, class: "dot" },
    s("title", {}, `${d.day}: backlog ${d.backlog}`)));
  return chart("Backlog at the end of each day", "chart-backlog", frame(max, daily[0].day, daily[daily.length - 1].day),
    s("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: "line" }), dots);
}

/** Five bars: how many surveys gave each rating. */
function csatChart(csat) {
  const max = Math.max(1, ...csat.distribution);
  const span = (W - PAD.left - PAD.right) / 5;
  const height = H - PAD.top - PAD.bottom;
  const bars = csat.distribution.map((count, i) => {
    const tall = (count / max) * height, x = PAD.left + i * span;
    return s("g", {},
      s("rect", { x: (x + span * 0.2).toFixed(1), y: (H - PAD.bottom - tall).toFixed(1), width: (span * 0.6).toFixed(1),
        height: tall.toFixed(1), class: i >= 3 ? "bar good" : i === 2 ? "bar" : "bar bad" },
      s("title", {}, `rated ${i + 1}: ${count}`)),
      s("text", { x: (x + span / 2).toFixed(1), y: H - 8, "text-anchor": "middle", class: "tick" }, `${i + 1}★ (${count})`));
  });
  const bottom = H - PAD.bottom;
  return chart(`Survey ratings (${counted(csat.surveys, "answer")})`, "chart-csat",
    s("line", { x1: PAD.left, y1: bottom, x2: W - PAD.right, y2: bottom, class: "axis" }),
    s("text", { x: PAD.left - 6, y: PAD.top + 4, "text-anchor": "end", class: "tick" }, String(max)), bars);
}

function groupTable(label, groups) {
  const columns = ["Name", "Created", "Backlog", "First response (median)", "Resolution (median)", "FCR", "CSAT", "Surveys", "Repeats"];
  const rows = groups.map((g) => {
    const f = g.figures;
    return h("tr", { "data-group": g.name },
      h("th", { scope: "row" }, g.display_name, g.id !== null && g.display_name !== g.name ? h("span", { class: "muted" }, ` (${g.name})`) : ""),
      h("td", { class: "num" }, String(f.volume)), h("td", { class: "num" }, String(f.backlog)),
      h("td", { class: "num" }, duration(f.first_response.median_seconds)), h("td", { class: "num" }, duration(f.resolution.median_seconds)),
      h("td", { class: "num" }, percent(f.first_contact_resolution.rate)), h("td", { class: "num" }, percent(f.csat.rate)),
      h("td", { class: "num" }, String(f.csat.surveys)), h("td", { class: "num" }, percent(f.repeats.rate)));
  });
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing in this range.")));
  return h("section", { class: "panel" }, h("h2", {}, label),
    h("div", { class: "scroll-x" }, h("table", { "aria-label": label },
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))));
}

export async function render(main) {
  loadStyles();
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "");
  const query = new URLSearchParams({ from: wanted.get("from") || utcDay(-(DEFAULT_DAYS - 1)), to: wanted.get("to") || utcDay(0) });
  for (const key of ["technician", "team"]) if (wanted.get(key)) query.set(key, wanted.get(key));

  const error = h("p", { class: "error", role: "alert" });
  const body = h("div", { class: "dashboard-body" });
  const section = h("section", { class: "dashboard", "aria-busy": "true" });
  // Filter choices: the groups of the unfiltered range (a name nobody has would only earn a 404).
  const technicianChoice = h("select", { name: "technician" }, h("option", { value: "" }, "Everyone"));
  const teamChoice = h("select", { name: "team" }, h("option", { value: "" }, "Every team"));
  const form = h("form", {
    class: "row filters", role: "search", "aria-label": "Report range",
    onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams();
      for (const [key, value] of new FormData(form)) if (value && FILTERS.includes(key)) next.set(key, value);
      // The broker refuses these too; saying so here spares a round trip (and a 422 in the console).
      const span = (Date.parse(next.get("to")) - Date.parse(next.get("from"))) / 86400000 + 1;
      if (!(span >= 1)) { error.textContent = "The range ends before it starts: swap From and To."; return; }
      if (span > MAX_SPAN_DAYS) { error.textContent = `The range covers ${span} days; at most ${MAX_SPAN_DAYS} fit in one report.`; return; }
      const target = "#/dashboard?" + next.toString();
      if (location.hash !== target) location.hash = target;
    },
  },
  h("label", {}, "From (UTC)", h("input", { name: "from", type: "date", value: query.get("from"), required: true })),
  h("label", {}, "To (UTC)", h("input", { name: "to", type: "date", value: query.get("to"), required: true })),
  h("label", {}, "Technician", technicianChoice),
  h("label", {}, "Team", teamChoice),
  h("button", { type: "submit" }, "Show"),
  h("button", {
    type: "button", class: "secondary", id: "kpi-csv",
    onclick: () => download(`/reports/kpis.csv?${query}`, "deskhand-kpis.csv").catch((err) => { error.textContent = err.message; }),
  }, "Download CSV"));

  main.append(h("h1", {}, "Dashboard"), section);
  section.append(h("div", { class: "panel" }, form, error), body);

  let report;
  try {
    report = await api("GET", `/reports/kpis?${query}`);
  } catch (err) {
    error.textContent = err.message;
    section.setAttribute("aria-busy", "false");
    return;
  }
  fillChoices(technicianChoice, report.technicians, query.get("technician"));
  fillChoices(teamChoice, report.teams, query.get("team"));
  const f = report.overall;
  const scope = [report.technician && `technician ${report.technician}`, report.team && `team ${report.team}`].filter(Boolean).join(", ");
  body.append(
    h("p", { class: "muted" }, `${report.from} to ${report.to} (UTC days)${scope ? ", " + scope : ""}; repeat window ${counted(report.repeat_window_days, "day")}.`),
    tiles(f),
    h("div", { class: "charts" }, volumeChart(report.daily), backlogChart(report.daily), csatChart(f.csat)),
    groupTable("Per technician", report.technicians),
    groupTable("Per team", report.teams),
  );
  section.setAttribute("aria-busy", "false");
  section.dataset.ready = "true";
}

function fillChoices(select, groups, chosen) {
  const names = groups.filter((g) => g.id !== null).map((g) => [g.name, g.display_name]);
  if (chosen && !names.some(([name]) => name === chosen)) names.push([chosen, chosen]);
  select.append(...names.map(([name, display]) => h("option", { value: name, selected: name === chosen }, display === name ? name : `${display} (${name})`)));
}
