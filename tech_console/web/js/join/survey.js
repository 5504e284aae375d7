// After a session that happened, the satisfaction survey (docs/api.md, "POST /sessions/{id}/survey"),
// as the host asks it (host_client/ui_window/survey.py): one rating from 1 to 5, an optional
// comment, Send or Skip; answered with the page's host token, once.

import { api } from "../api.js";
import { h } from "../dom.js";

/** protocol/requests.py RATING_MIN, RATING_MAX, SURVEY_COMMENT_MAX. */
const RATING_MIN = 1, RATING_MAX = 5, SURVEY_COMMENT_MAX = 2000;
const LABELS = { [RATING_MIN]: "very unhappy", [RATING_MAX]: "very happy" };

/**
 * The survey's form; it replaces itself with the outcome.
 * @param {{sessionId: string, token: string}} options
 * @returns {HTMLElement}
 */
export function surveyForm({ sessionId, token }) {
  const error = h("p", { class: "error", role: "alert", id: "survey-error" });
  const comment = h("textarea", { id: "survey-comment", rows: 3, maxlength: SURVEY_COMMENT_MAX });
  const ratings = [];
  for (let value = RATING_MIN; value <= RATING_MAX; value++) {
    ratings.push(h("label", { class: "check" }, h("input", { type: "radio", name: "rating", value }),
      value in LABELS ? `${value} (${LABELS[value]})` : String(value)));
  }
  const send = h("button", { type: "submit" }, "Send");
  const section = h("section", { class: "survey", id: "survey", "aria-labelledby": "survey-title" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      const chosen = form.querySelector("input[name=rating]:checked");
      if (!chosen) { error.textContent = `Choose ${RATING_MIN} to ${RATING_MAX}, or Skip.`; return; }
      const rating = Number(chosen.value);
      send.disabled = true;
      try {
        await api("POST", `/sessions/${sessionId}/survey`, { rating, comment: comment.value.trim() }, { token });
        section.replaceChildren(h("p", { class: "ok", id: "survey-done" }, `Thank you: your rating ${rating}/${RATING_MAX} was recorded.`));
      } catch (err) {
        error.textContent = `Your answer was not recorded: ${err.message}`;
        send.disabled = false;
      }
    },
  },
  h("fieldset", {}, h("legend", {}, "How satisfied are you with this help?"), ...ratings),
  h("label", {}, "Anything you would like to add? (optional)", comment),
  error,
  h("div", { class: "row" }, send, h("button", { type: "button", class: "secondary", onclick: () => section.remove() }, "Skip")));
  section.append(form);
  return section;
}
