// One session for an auditor: the recording beside the event timeline (an event seeks the video
// to its moment; frequent events come in runs), chat, files with their hashes, consent,
// integrity, and the export bundle.

import { api, download } from "../api.js";
import { h, when } from "../dom.js";

/** mm:ss (or h:mm:ss) of a number of milliseconds. */
function clock(ms) {
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600), minutes = Math.floor((total % 3600) / 60), seconds = total % 60;
  const mmss = `${String(minutes).padStart(hours ? 2 : 1, "0")}:${String(seconds).padStart(2, "0")}`;
  return hours ? `${hours}:${mmss}` : mmss;
}

/** What a timeline entry says besides its kind and who: a run's size, or the event's gist. */
function describe(event) {
  const d = event.data || {};
  if (event.count > 1) {
    const total = event.total === null ? "" : `, ${event.total} in all`;
    return `×${event.count}${total} over ${clock(event.span_seconds * 1000)}`;
  }
  if (event.total !== null) return String(event.total);
  switch (event.kind) {
    case "chat.sent": case "chat.received": case "input.text": return d.text ? `“${d.text}”` : "";
    case "monitor.selected": return `monitor ${d.index}`;
    case "consent.changed": return (d.permissions || []).join(", ") || "nothing";
    case "recording.segment": return `segment ${d.index}` + (d.recorder ? `, recorded by the ${d.recorder}` : "");
    case "transfer.completed": case "transfer.offered": case "transfer.failed": return d.name || "";
    case "session.ended": return [d.ended_by, d.reason].filter(Boolean).join(": ");
    case "grant.issued": return (d.permissions || []).join(", ");
    case "media.interrupted": return `nothing from the technician for ${d.silent_seconds} s: reconnecting`;
    case "media.restored": return `back after ${d.silent_seconds} s (${d.attempts} new connections)`;
    case "media.lost": return `not restored after ${d.seconds} s (${d.attempts} new connections)`;
    case "session.ice_failed": return iceFailure(d);
    case "session.ice_failures_capped": return `more than ${d.cap} failed attempts (from attempt ${d.attempt} on): not recorded one by one`;
    default: return "";
  }
}

/** A `session.ice_failed` event's data (broker/sessions/ice_failures.py): which attempt gave up after
 * how long, the candidate kinds each side had, and each relay that refused and why. */
function iceFailure(d) {
  const kinds = (types) => (types || []).join(", ") || "none";
  const refusals = (d.turn_failures || []).map((f) => `${f.url}: ${f.reason}`);
  return `attempt ${d.attempt} gave up after ${Number(d.seconds).toFixed(1)} s; candidates tried: ${kinds(d.local_types)} here, ` +
    `${kinds(d.remote_types)} from the other side; ` +
    (refusals.length ? `relay refusals: ${refusals.join("; ")}` : "no relay refused");
}

/** Who recorded the segments, when not the Deskhand host: the join page marks its own (`recorder: "browser"`, its claim). */
function recordedBy(report) {
  const segments = report.events.filter((e) => e.kind === "recording.segment");
  const browser = segments.filter((e) => e.data && e.data.recorder === "browser").length;
  if (!browser) return "";
  return browser === segments.length ? ", recorded by the user's web browser" : `, ${browser} of them recorded by the user's web browser`;
}

export async function render(main, ctx, [sessionId]) {
  const report = await api("GET", `/audit/sessions/${sessionId}/report`);
  const can = (p) => ctx.me.permissions.includes(p);
  const session = report.session;
  // The recording's time 0 is when the host joined (it records from then on); a segment's own
  // event knows its offset exactly.
  const start = Date.parse(session.connected_at || session.created_at);
  const durationMs = report.recording.duration_ms;
  const offsetOf = (event) => event.kind === "recording.segment" && Number.isFinite(event.data?.offset_ms)
    ? event.data.offset_ms : Date.parse(event.at) - start;

  let video = null;
  const status = h("p", { class: "muted", "aria-live": "polite", id: "player-status" });
  if (!report.integrity.ok) {
    status.textContent = "The recording is withheld: nothing is played from a trail that does not verify (see Integrity).";
  } else if (!report.recording.segments) {
    status.textContent = "This session has no recording.";
  } else if (!can("recordings.view")) {
    status.textContent = "Playing recordings needs the recordings.view permission.";
  } else {
    // Opening the page starts a playback, which the broker records (recording.played); the
    // player's byte ranges then present its id (a page elsewhere has none, and cannot start one).
    try {
      const playback = await api("POST", `/audit/sessions/${sessionId}/playbacks`);
      video = h("video", {
        id: "recording", controls: true, preload: "auto", src: playback.url,
        "aria-label": `Recording of session ${sessionId.slice(0, 8)}, ${clock(durationMs)} long`,
        onerror: () => {
          status.textContent = `The recording stopped loading: a playback lapses after ${Math.round(playback.idle_seconds / 60)} ` +
            "minutes unused, and stops when the trail no longer verifies. Reload the page to start another.";
        },
      });
      status.textContent = `Recording: ${clock(durationMs)}, ${report.recording.segments} segments${recordedBy(report)}. ` +
        "Choose an event to jump to it.";
    } catch (err) {
      status.textContent = `The recording cannot be played: ${err.message}`;
    }
  }

  function seek(ms) {
    if (!video) return;
    const seconds = Math.min(Math.max(ms, 0), durationMs) / 1000;
    video.currentTime = seconds;
    status.textContent = `Jumped to ${clock(seconds * 1000)}.`;
    video.focus();
  }

  const timeline = h("ol", { class: "timeline", "aria-label": "Events" }, ...report.timeline.map((event) => {
    const ms = offsetOf(event);
    const inRecording = video && ms >= 0 && ms <= durationMs + 1000;
    const label = [h("span", { class: "t" }, ms >= 0 ? clock(ms) : "before"), " ",
      h("strong", {}, event.kind), " ", h("span", { class: "muted who" }, event.who), " ", describe(event)];
    // The broker's time of receipt orders the trail; a peer's own clock is shown beside it.
    const title = `received ${when(event.at)}` + (event.count > 1 ? ` to ${when(event.last_at)}` : "") +
      (event.reported_at ? `; ${when(event.reported_at)} by the sender's clock` : "");
    return h("li", { dataset: { kind: event.kind, offsetMs: String(Math.round(ms)), count: String(event.count) } },
      inRecording
        ? h("button", { class: "event", title, onclick: () => seek(ms) }, ...label)
        : h("span", { class: "event", title }, ...label));
  }));

  const exportStatus = h("span", { class: "muted", "aria-live": "polite", id: "export-status" });
  async function exportBundle(event) {
    const button = event.currentTarget;
    button.disabled = true;
    exportStatus.textContent = " Building the bundle…";
    try {
      await download(`/audit/sessions/${sessionId}/export`, `deskhand-session-${sessionId}.zip`);
      exportStatus.textContent = " Exported (recorded in the trail as audit.exported).";
    } catch (err) {
      exportStatus.textContent = ` ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  const integrity = report.integrity;
  const verdict = integrity.ok
    ? h("p", { class: "ok", id: "integrity" }, `Integrity verified: ${integrity.events} events, ${integrity.checkpoints} signed heads, ${integrity.segments} segments` +
      (integrity.unsealed ? ` (${integrity.unsealed} events not yet sealed)` : "") + ".")
    : h("div", { id: "integrity", role: "alert" }, h("p", { class: "error" }, "Integrity check FAILED:"),
      h("ul", {}, ...integrity.problems.map((p) => h("li", { class: "error" }, p))));

  const table = (label, columns, rows, empty) => rows.length
    ? h("table", { "aria-label": label }, h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, ...rows))
    : h("p", { class: "muted" }, empty);

  const [tech, host] = report.participants;
  const counts = report.counts;
  main.append(
    h("h1", {}, `Session ${sessionId.slice(0, 8)} on ticket #${report.ticket.id}: ${report.ticket.subject}`),
    h("section", { class: "panel", "aria-label": "Summary" },
      h("p", { id: "participants" }, `Technician ${tech.who}, account ${tech.username}; ${host.who} on ${host.machine_name || "?"}` +
        `${host.os ? ` (${host.os})` : ""}${host.address ? `, ${host.address}` : ""}.`),
      h("p", { id: "counts" }, `Chat messages ${counts.chat_messages}, clipboard shares ${counts.clipboard_shares}, ` +
        `inputs sent ${counts.inputs_sent} (applied ${counts.inputs_applied}, refused ${counts.inputs_refused}), ` +
        `monitor switches ${counts.monitor_switches}, files ${counts.files}.`),
      h("p", {}, `${session.state}; created ${when(session.created_at)}`, session.connected_at ? `, connected ${when(session.connected_at)}` : "",
        session.ended_at ? `, ended ${when(session.ended_at)}${session.end_reason ? ` (${session.end_reason})` : ""}` : ""),
      verdict,
      can("audit.export")
        ? h("p", {}, h("button", { type: "button", id: "export", onclick: exportBundle }, "Export bundle"), exportStatus)
        : ""),
    h("div", { class: "grid2 audit" },
      h("section", { class: "panel", "aria-labelledby": "player-title" }, h("h2", { id: "player-title" }, "Recording"), video || "", status),
      h("section", { class: "panel scroll", "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline)),
    h("div", { class: "grid2 even" },
      h("section", { class: "panel", "aria-labelledby": "chat-title" }, h("h2", { id: "chat-title" }, "Chat"),
        table("Chat", ["Time", "From", "Text"], report.chat.map((c) => h("tr", {}, h("td", {}, when(c.at)), h("td", {}, c.who), h("td", {}, c.text))), "No chat.")),
      h("section", { class: "panel", "aria-labelledby": "consent-title" }, h("h2", { id: "consent-title" }, "Consent"),
        table("Consent", ["Time", "Allowed", "Given by"], report.consent.map((c) => h("tr", {}, h("td", {}, when(c.at)),
          h("td", {}, (c.permissions || []).join(", ") || "nothing"), h("td", {}, c.given_by || ""))), "No consent recorded."))),
    h("section", { class: "panel", "aria-labelledby": "files-title" }, h("h2", { id: "files-title" }, "Files"),
      table("Files", ["Name", "Direction", "State", "Size", "SHA-256 (sender)", "SHA-256 (broker)", "Note"], report.files.map((f) => h("tr", {},
        h("td", {}, f.name, f.saved_as && f.saved_as !== f.name ? h("span", { class: "muted" }, ` saved as ${f.saved_as}`) : ""),
        h("td", {}, f.direction), h("td", {}, f.state), h("td", {}, String(f.size)),
        h("td", { class: "hash" }, f.sha256 || ""), h("td", { class: "hash" }, f.broker_sha256 || ""), h("td", {}, f.reason || ""))), "No files.")),
  );
}
