"""The terminal's questions without a session: asking for help without a code, and the survey.

The user's keyboard is a pipe; each answer is typed once its question is on screen,
as a person would (a line typed before its question is not an answer to it).
"""

from __future__ import annotations

import asyncio
import io
import os

from host_client.ui_terminal import TerminalUI
from protocol.codes import JoinTarget
from protocol.requests import HelpRequestCreate, SurveyAnswer


class Keyboard:
    """A terminal whose screen is a StringIO and whose keyboard is a pipe."""

    def __init__(self) -> None:
        read, self._write = os.pipe()
        self.screen = io.StringIO()
        self.ui = TerminalUI(stdin=os.fdopen(read, "r"), stdout=self.screen)
        self._answered = 0  # how much of the screen was there at the last answer

    async def answer(self, question: str, line: str, timeout: float = 5) -> None:
        """Wait until ``question`` is newly asked (the last thing on screen since the previous
        answer), then type ``line`` and Enter."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.screen.getvalue()[self._answered:].endswith(question):
            assert asyncio.get_running_loop().time() < deadline, f"never asked {question!r}: {self.screen.getvalue()!r}"
            await asyncio.sleep(0.01)
        self._answered = len(self.screen.getvalue())
        os.write(self._write, (line + "\n").encode())

    def close(self) -> None:
        os.close(self._write)


async def test_enter_at_the_code_prompt_asks_for_help_and_names_a_refused_field() -> None:
    keyboard = Keyboard()
    asked = asyncio.ensure_future(keyboard.ui.ask_code())
    await keyboard.answer("just Enter if you have none): ", "")
    await keyboard.answer("Your name: ", "Ann")
    await keyboard.answer("What is wrong, in one line: ", "Printer offline")
    await keyboard.answer("Your email (optional): ", "not-an-email")
    # Refused: said, and asked again from the start.
    await keyboard.answer("Your name: ", "Ann")
    await keyboard.answer("What is wrong, in one line: ", "Printer offline")
    await keyboard.answer("Your email (optional): ", "ann@example.com")
    request = await asyncio.wait_for(asked, 5)
    keyboard.close()
    assert isinstance(request, HelpRequestCreate)
    assert (request.name, request.summary, request.email) == ("Ann", "Printer offline", "ann@example.com")
    assert "Your email: value is not a valid email address" in keyboard.screen.getvalue()


async def test_a_code_is_still_a_code() -> None:
    keyboard = Keyboard()
    asked = asyncio.ensure_future(keyboard.ui.ask_code())
    await keyboard.answer("just Enter if you have none): ", "123-456-789")
    assert await asyncio.wait_for(asked, 5) == JoinTarget("123456789")
    keyboard.close()


async def test_without_a_known_broker_only_the_join_link_will_do() -> None:
    keyboard = Keyboard()
    asked = asyncio.ensure_future(keyboard.ui.ask_code(link_needed=True))
    await keyboard.answer("Paste the link your technician sent: ", "123 456 789")
    await keyboard.answer("Paste the link your technician sent: ", "")  # no help desk to ask either
    await keyboard.answer("Paste the link your technician sent: ", "https://desk.example.com/join/#123456789")
    assert await asyncio.wait_for(asked, 5) == JoinTarget("123456789", "https://desk.example.com")
    keyboard.close()
    assert keyboard.screen.getvalue().count("does not know your help desk's address yet") == 2


async def test_the_survey_takes_a_rating_from_one_to_five_and_a_comment() -> None:
    keyboard = Keyboard()
    asked = asyncio.ensure_future(keyboard.ui.ask_survey())
    await keyboard.answer("1-5 (Enter to skip): ", "9")
    await keyboard.answer("1-5 (Enter to skip): ", "4")
    await keyboard.answer("Anything you would like to add? (Enter to skip): ", "  Quick and kind  ")
    assert await asyncio.wait_for(asked, 5) == SurveyAnswer(rating=4, comment="Quick and kind")
    assert "Type a number from 1 (very unhappy) to 5 (very happy)" in keyboard.screen.getvalue()
    keyboard.close()


async def test_enter_or_the_end_of_input_skips_the_survey() -> None:
    keyboard = Keyboard()
    asked = asyncio.ensure_future(keyboard.ui.ask_survey())
    await keyboard.answer("1-5 (Enter to skip): ", "")
    assert await asyncio.wait_for(asked, 5) is None
    keyboard.close()

    closed = Keyboard()
    closed.close()
    assert await asyncio.wait_for(closed.ui.ask_survey(), 5) is None
