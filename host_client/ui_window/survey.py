"""After the session: "How satisfied are you with this help?". Tk thread only."""

from __future__ import annotations

import tkinter
from tkinter import ttk
from typing import TYPE_CHECKING

from pydantic import ValidationError

from protocol.requests import RATING_MAX, RATING_MIN, SURVEY_COMMENT_MAX, SurveyAnswer

from ..tk_variables import IntVar, StringVar
from .layout import TEXT_WIDTH, Answer

if TYPE_CHECKING:
    from .shell import Window


def show_survey(window: Window, answer: Answer) -> None:
    """One choice from 1 to 5, a comment box, Send and Skip; answers the survey, or None."""
    labels = {RATING_MIN: "very unhappy", RATING_MAX: "very happy"}

    def send() -> None:
        if not rating.get():
            error.set(f"Choose {RATING_MIN} to {RATING_MAX}, or Skip.")
            return
        try:
            survey = SurveyAnswer(rating=rating.get(), comment=comment.get("1.0", "end").strip())
        except ValidationError:
            error.set(f"At most {SURVEY_COMMENT_MAX} characters of plain text, please.")
            return
        window.show_waiting("Thank you!")
        answer(survey)

    body = window.new_body(on_return=send, on_escape=lambda: window.give_up(answer),
                           on_close=lambda: window.give_up(answer))
    rating = IntVar(body, 0)
    error = StringVar(body)
    ttk.Label(body, text="How satisfied are you with this help?", style="Heading.TLabel",
              wraplength=TEXT_WIDTH).pack(anchor="w", pady=(0, 6))
    first: ttk.Radiobutton | None = None
    for value in range(RATING_MIN, RATING_MAX + 1):
        text = f"{value} ({labels[value]})" if value in labels else str(value)
        choice = ttk.Radiobutton(body, text=text, value=value, variable=rating, command=lambda: error.set(""))
        choice.pack(anchor="w", pady=1)
        first = first or choice
    ttk.Label(body, text="Anything you would like to add? (optional)", wraplength=TEXT_WIDTH).pack(
        anchor="w", pady=(8, 2))
    comment = tkinter.Text(body, height=4, width=36, wrap="word")
    comment.pack(anchor="w", fill="x")
    ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=TEXT_WIDTH).pack(anchor="w", pady=4)
    buttons = ttk.Frame(body)
    buttons.pack(anchor="w", pady=6)
    ttk.Button(buttons, text="Send", default="active", command=send).pack(side="left")
    ttk.Button(buttons, text="Skip", command=lambda: window.give_up(answer)).pack(side="left", padx=6)
    assert first is not None
    window.take_focus(first)
