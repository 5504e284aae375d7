"""``deskhand-host request`` and the survey flags: values the broker would refuse are refused first."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from host_client.cli import DEFAULT_BROKER, EXIT_USAGE, broker_of, build_parser, main, parse_arguments
from protocol.codes import JoinTarget, parse_join_target
from protocol.requests import HelpRequestCreate, SurveyAnswer

REQUEST = ["request", "--broker", "http://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--name", "", "--summary", "Printer"], "--name"),
        (["--name", "Ann", "--summary", "two\x07"], "--summary"),
        (["--name", "Ann", "--summary", " padded "], "--summary"),
        (["--name", "Ann", "--summary", "x" * 201], "--summary"),
        (["--name", "Ann", "--summary", "Printer", "--email", "ann-at-example"], "--email"),
        (["--name", "Ann", "--summary", "Printer", "--details", "nul\x00"], "--details"),
        (["--name", "Ann", "--summary", "Printer", "--survey-comment", "nice"], "--survey-comment needs --survey-rating"),
        (["--name", "Ann", "--summary", "Printer", "--survey-rating", "4", "--no-survey"], "contradict"),
        (["--name", "Ann", "--summary", "Printer", "--survey-rating", "4", "--survey-comment", "x" * 2001],
         "--survey-comment"),
    ],
)
def test_a_bad_value_is_refused_before_anything_connects(capsys, args: list[str], named: str) -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens; a connection attempt would fail differently.
    assert main([*REQUEST, *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("deskhand-host: ") and named in err, err


@pytest.mark.parametrize("rating", ["0", "6", "four"])
def test_a_rating_outside_one_to_five_is_an_argument_error(capsys, rating: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*REQUEST, "--name", "Ann", "--summary", "Printer", "--survey-rating", rating])
    assert exited.value.code == 2
    assert "--survey-rating" in capsys.readouterr().err


def test_a_plain_http_broker_elsewhere_is_refused_without_insecure(capsys) -> None:
    assert main(["request", "--broker", "http://192.0.2.1:8000", "--name", "Ann", "--summary", "Printer"]) == EXIT_USAGE
    assert "insecure" in capsys.readouterr().err


def test_the_payloads_are_strict() -> None:
    host = {"machine_name": "pc", "os": "Linux", "user_name": "ann"}
    assert HelpRequestCreate(name="Ann", summary="Printer", **host).priority.value == "normal"
    with pytest.raises(ValidationError, match="code"):
        HelpRequestCreate(name="Ann", summary="Printer", code="123456789", **host)  # type: ignore[call-arg]  # the point: an unknown field
    assert SurveyAnswer(rating=5, comment="line one\nline two").rating == 5
    for bad in ({"rating": True}, {"rating": "3"}, {"rating": 3.0}, {"rating": 3, "comment": "\x1b[31m"}):
        with pytest.raises(ValidationError):
            SurveyAnswer(**bad)


def test_no_argument_at_all_joins_and_asks_for_the_code() -> None:
    # The single-file build opened with nothing on its command line (scripts/build-host).
    args = parse_arguments(build_parser(), [])
    assert (args.command, args.code, args.ui) == ("join", None, "auto")
    assert parse_arguments(build_parser(), ["-v"]).command is None  # options alone still print the help


def test_the_join_link_names_the_broker_and_a_conflicting_broker_is_refused(capsys) -> None:
    assert broker_of(parse_join_target("https://desk.example.com/join/#123456789"), None, "https://other.example.com") \
        == "https://desk.example.com"  # the link is more specific than the environment
    assert broker_of(JoinTarget("123456789"), None, None) == DEFAULT_BROKER
    assert broker_of(None, "https://desk.example.com/", None) == "https://desk.example.com/"
    link = "https://desk.example.com/join/#123456789"
    assert main(["join", link, "--broker", "https://other.example.com"]) == EXIT_USAGE
    assert "the link names the broker https://desk.example.com but --broker names https://other.example.com" \
        in capsys.readouterr().err
    # The link's broker passes the same check as --broker: plain http only to this machine.
    assert main(["join", "http://192.0.2.1:8000/join/#123456789"]) == EXIT_USAGE
    assert "insecure" in capsys.readouterr().err
