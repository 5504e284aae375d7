// Chat between the end user and the technician, from the join page: `chat` messages on the
// `control` channel (protocol/channel.py), both ways, reported for the trail as the host
// reports them (`chat.sent`, `chat.received`). Only while the user allowed chat; a message
// from the technician otherwise is answered with a `refused`, as the host does.

import { h } from "../dom.js";

/** protocol/channel.py MAX_CHAT_CHARS. */
export const MAX_CHAT_CHARS = 4000;

export class ChatPanel {
  /**
   * @param {{technician: string, send: (message: object) => boolean,
   *          report: (kind: string, data: object) => void}} options
   *   `send`: a control message to the technician (false when it cannot go); `report`: an event for the trail
   */
  constructor({ technician, send, report }) {
    this.technician = technician;
    this.send = send;
    this.report = report;
    this.allowed = false;
    this.refused = 0;
    this.log = h("ol", { class: "chat-log", id: "chat-log", "aria-live": "polite", "aria-label": `Chat with ${technician}` });
    this.input = h("textarea", { id: "chat-input", rows: 2, maxlength: MAX_CHAT_CHARS, "aria-label": `Message to ${technician}` });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); this.submit(); }
    });
    this.error = h("p", { class: "error", role: "alert", id: "chat-error" });
    this.form = h("form", { class: "row", onsubmit: (event) => { event.preventDefault(); this.submit(); } },
      this.input, h("button", { type: "submit" }, "Send"));
    this.off = h("p", { class: "muted", id: "chat-off", hidden: true }, `Chat is off: you no longer allow ${technician} to chat with you.`);
    this.element = h("section", { class: "chat", id: "chat-panel", "aria-labelledby": "chat-title", hidden: true },
      h("h2", { id: "chat-title" }, `Chat with ${technician}`), this.log, this.error, this.form, this.off);
  }

  /** Whether the user allows chat (the grant offered it and they keep it ticked); what was said stays in view. */
  allow(allowed) {
    this.allowed = allowed;
    const said = this.log.children.length > 0;
    this.element.hidden = !allowed && !said;
    this.form.hidden = !allowed;
    this.off.hidden = allowed || !said;
  }

  submit() {
    const text = this.input.value.trim();
    this.error.textContent = "";
    if (!text) return;
    if ([...text].length > MAX_CHAT_CHARS) {
      this.error.textContent = `A message has at most ${MAX_CHAT_CHARS} characters: split it.`;
      return;
    }
    if (!this.send({ type: "chat", text })) {
      this.error.textContent = `Not sent: ${this.technician} is not connected yet and too many messages wait. Try again in a moment.`;
      return;
    }
    this.report("chat.sent", { text });
    this.show("you", text);
    this.input.value = "";
  }

  /** A `chat` message from the technician (parsed JSON, not yet checked). */
  received(message) {
    const text = typeof message.text === "string" ? message.text : "";
    if (!text || [...text].length > MAX_CHAT_CHARS) return; // not a chat message the protocol allows
    if (!this.allowed) {
      this.refused += 1;
      this.send({ type: "refused", seq: null, what: "chat", reason: "the user has not allowed chat", refused_total: this.refused });
      return;
    }
    this.report("chat.received", { text });
    this.show(this.technician, text);
  }

  show(who, text) {
    this.log.append(h("li", { class: who === "you" ? "mine" : "theirs" }, h("b", {}, `${who}: `), h("span", { class: "text" }, text)));
    this.log.scrollTop = this.log.scrollHeight;
  }
}
