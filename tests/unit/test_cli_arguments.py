"""Command-line values are checked before anything runs."""

from __future__ import annotations

import argparse

import pytest

from protocol.cli import number_in_range


def test_accepts_values_within_bounds() -> None:
    assert number_in_range(int, 0, 65535, "port")("0") == 0
    assert number_in_range(float, 1, 60, "frame rate")("29.97") == 29.97


@pytest.mark.parametrize(
    ("kind", "text", "words"),
    [(int, "x", "not a whole number"), (int, "1.5", "not a whole number"), (int, "70000", "between 0 and 65535"),
     (float, "nan", "not a number"), (float, "-1", "between 0 and 65535"), (float, "", "not a number")],
)
def test_refuses_with_a_sentence(kind: type, text: str, words: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        number_in_range(kind, 0, 65535, "port")(text)
