// Files from the join page, both ways, through the broker as the host moves them (transfers.js,
// the same chunks, hashes and checks): a file the technician sends (`files.send`) is taken
// as it is offered, its SHA-256 checked, and kept in the page for the user to save; a file the
// technician asks for (`files.receive`) is one the user picks or declines. Only what the user
// allowed: the broker refuses the rest at the offer, before anything moves.

import { api } from "../api.js";
import { byteSize, h } from "../dom.js";
import { receiveFile, sendFile } from "../transfers.js";

export class FilesPanel {
  /**
   * @param {{sessionId: string, token: string, technician: string}} options the session, the page's host token,
   *   the technician's name as the page shows it
   */
  constructor({ sessionId, token, technician }) {
    this.sessionId = sessionId;
    this.token = token;
    this.technician = technician;
    this.allowed = { receive: false, send: false };
    /** Transfers and file requests already on the page, by id. */
    this.seen = new Set();
    this.list = h("ul", { class: "transfers", id: "transfers", "aria-label": "Files" });
    this.element = h("section", { class: "files", id: "files-panel", "aria-labelledby": "files-title", hidden: true },
      h("h2", { id: "files-title" }, "Files"),
      h("p", { class: "muted", id: "files-help" }), this.list);
  }

  /**
   * What the user allowed.
   * @param {{receive: boolean, send: boolean}} allowed `receive`: the technician may send files here
   *   (files.send); `send`: they may ask for files from here (files.receive)
   */
  allow(allowed) {
    this.allowed = allowed;
    const words = [];
    if (allowed.receive) words.push(`Files ${this.technician} sends you appear here: save them where you want.`);
    if (allowed.send) words.push(`When ${this.technician} asks for a file, you pick which one, or decline.`);
    this.element.querySelector("#files-help").textContent = words.join(" ");
    this.element.hidden = !words.length && !this.hasFiles;
  }

  /** Whether the panel shows any file (kept in view after the end: received files can still be saved). */
  get hasFiles() { return this.list.children.length > 0; }

  /** After (re)connecting: what the session has running (as host_client/file_transfers.py resume). */
  async resume() {
    const base = `/sessions/${this.sessionId}`;
    try {
      const [transfers, requests] = await Promise.all([
        api("GET", `${base}/transfers`, undefined, { token: this.token }),
        api("GET", `${base}/file-requests`, undefined, { token: this.token }),
      ]);
      for (const transfer of transfers) this.onTransfer(transfer);
      for (const request of requests) this.onFileRequest(request);
    } catch (_) { /* the signalling's own updates still come */ }
  }

  /** A `transfer` update (signalling). */
  onTransfer(transfer) {
    if (transfer.direction !== "to_host" || transfer.state !== "offered" || this.seen.has(transfer.id)) return;
    if (!this.allowed.receive) return; // the broker refused such an offer; nothing to take
    this.seen.add(transfer.id);
    this.receive(transfer);
  }

  /** A `file_request` update (signalling). */
  onFileRequest(request) {
    if (request.state !== "pending" || this.seen.has(request.id)) return;
    this.seen.add(request.id);
    this.ask(request);
  }

  receive(offered) {
    const bar = h("progress", { max: String(offered.size || 1), value: "0", "aria-label": `Receiving ${offered.name}` });
    const status = h("span", { class: "muted" }, "receiving");
    const row = h("li", { dataset: { name: offered.name, direction: "in" } },
      h("span", {}, `⬇ ${offered.name} (${byteSize(offered.size)}) from ${this.technician}`), bar, status);
    this.list.prepend(row);
    receiveFile(this.sessionId, offered, (done, total) => {
      bar.value = done;
      status.textContent = `receiving ${Math.round((100 * done) / (total || 1))} %`;
    }, { token: this.token }).then(({ transfer, blob }) => {
      row.dataset.state = transfer.state;
      if (!blob) {
        status.textContent = `not received: ${transfer.reason || transfer.state}`;
        status.className = "error";
        return;
      }
      bar.value = offered.size || 1;
      status.className = "";
      status.replaceChildren(h("span", { class: "ok" }, "complete, SHA-256 verified "),
        h("a", { href: URL.createObjectURL(blob), download: transfer.saved_as || offered.name, class: "button" }, `Save ${offered.name}`));
    }).catch((err) => this.failed(row, status, err));
  }

  ask(request) {
    const status = h("span", { class: "muted" });
    const picker = h("input", { type: "file", class: "visually-hidden", "aria-label": "The file to send" });
    const choose = h("button", { type: "button", onclick: () => picker.click() }, "Choose a file…");
    const decline = h("button", { type: "button", class: "secondary", onclick: () => this.decline(request, row, status) }, "Decline");
    const buttons = h("span", { class: "row" }, choose, decline);
    const what = [request.path && `“${request.path}”`, request.note && `(${request.note})`].filter(Boolean).join(" ");
    const row = h("li", { dataset: { request: request.id, direction: "out" } },
      h("span", {}, `${this.technician} asks for a file${what ? `: ${what}` : ""}`), picker, buttons, status);
    picker.addEventListener("change", () => {
      const file = picker.files[0];
      if (!file) return;
      buttons.remove();
      this.send(request, file, row, status);
    });
    this.list.prepend(row);
  }

  send(request, file, row, status) {
    const bar = h("progress", { max: String(file.size || 1), value: "0", "aria-label": `Sending ${file.name}` });
    row.dataset.name = file.name;
    status.before(bar);
    status.textContent = "offering";
    sendFile(this.sessionId, file, (what, done, total) => {
      status.textContent = `${what} ${Math.round((100 * done) / (total || 1))} %`;
      bar.value = done;
    }, { token: this.token, requestId: request.id }).then((t) => {
      row.dataset.state = t.state;
      const sent = t.state === "completed";
      status.textContent = sent ? `sent ${file.name} (${byteSize(file.size)}), SHA-256 verified` : `not sent: ${t.reason || t.state}`;
      status.className = sent ? "ok" : "error";
      if (sent) bar.value = file.size || 1;
    }).catch((err) => this.failed(row, status, err));
  }

  async decline(request, row, status) {
    try {
      await api("POST", `/sessions/${this.sessionId}/file-requests/${request.id}/answer`,
        { approve: false, reason: "the user declined" }, { token: this.token });
      row.dataset.state = "refused";
      row.querySelector(".row").remove();
      status.textContent = "declined";
    } catch (err) {
      status.textContent = `could not decline: ${err.message}`;
      status.className = "error";
    }
  }

  failed(row, status, err) {
    row.dataset.state = "failed";
    status.textContent = `failed: ${err.message}`;
    status.className = "error";
  }
}
