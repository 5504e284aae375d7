// The join page's downloads: the single-file deskhand-host builds this broker offers
// (GET /api/v1/downloads, from DESKHAND_HOST_DOWNLOADS), each with its size and SHA-256, for an
// end user who must give control (a browser cannot) or be recorded from the computer itself.
// The section (#host-downloads in join/index.html) stays hidden when the broker offers none.

import { byteSize, h } from "../dom.js";

const SYSTEMS = { linux: "Linux", windows: "Windows", macos: "macOS" };

export const DOWNLOAD_WORDS = {
  title: "Full control: the Deskhand app",
  why: "Sharing from this page lets your technician see your screen. If they need to control your mouse and "
    + "keyboard, or the session must be recorded from your computer, download the Deskhand app for your computer "
    + "instead, run it, and paste the link your technician sends you into its window (the link names this help desk "
    + "and holds the code). Nothing else needs to be installed.",
  link: "Download the Deskhand app",
};

let listed = null;

/** The builds the broker offers, asked once: [{platform, file_name, size, sha256, url}], [] when none or on any failure. */
export function hostDownloads() {
  listed ??= fetch("/api/v1/downloads", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : { downloads: [] }))
    .then((body) => (Array.isArray(body.downloads) ? body.downloads : []))
    .catch(() => []);
  return listed;
}

/** "linux-x86_64" -> "Linux (x86_64)". */
export function platformText(platform) {
  const [system, ...machine] = platform.split("-");
  return `${SYSTEMS[system] || system} (${machine.join("-")})`;
}

function commandLine(download) {
  const program = download.file_name.endsWith(".exe") ? download.file_name : `./${download.file_name}`;
  return `${program} join --broker ${location.origin}`;
}

function render(section, downloads) {
  section.replaceChildren(
    h("h2", { id: "downloads-title" }, DOWNLOAD_WORDS.title),
    h("p", {}, DOWNLOAD_WORDS.why),
    h("ul", { class: "downloads" }, downloads.map((d) => h("li", { dataset: { platform: d.platform } },
      h("a", { href: d.url, download: d.file_name }, `${platformText(d.platform)}: ${d.file_name}`),
      ` (${byteSize(d.size)})`,
      h("div", { class: "muted" }, "SHA-256: ", h("code", { class: "sha256" }, d.sha256)),
      h("div", { class: "muted" }, d.file_name.endsWith(".exe") ? "From a command prompt: " : "Make it runnable (chmod +x), then: ",
        h("code", {}, commandLine(d)))))),
  );
  section.hidden = false;
}

/** Fill and show the section when the broker offers builds. */
async function showDownloads() {
  const section = document.getElementById("host-downloads");
  if (!section) return;
  const downloads = await hostDownloads();
  if (downloads.length) render(section, downloads);
}

/** `paragraph` (the page's "control needs the app" note) with a link to the section, once there are builds. */
export function linkToDownloads(paragraph) {
  hostDownloads().then((downloads) => {
    if (!downloads.length) return;
    paragraph.append(" ", h("a", {
      href: "#host-downloads", id: "downloads-link",
      onclick: (event) => {
        event.preventDefault(); // the address's fragment is the code's place: left alone
        const section = document.getElementById("host-downloads");
        section.scrollIntoView({ behavior: "smooth" });
        section.focus({ preventScroll: true });
      },
    }, `${DOWNLOAD_WORDS.link}.`));
  });
  return paragraph;
}

showDownloads();
