"""``deskhand-console login``, ``totp enroll`` and ``totp disable`` against a real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.accounts import PASSWORD, code_at, make_user

CONSOLE = [sys.executable, "-m", "tech_console.cli"]


@pytest.fixture
def env(broker, tmp_path) -> dict[str, str]:
    # Unbuffered: 'totp enroll' prints the secret, then waits for a code we compute from it.
    values = {**os.environ, "DESKHAND_BROKER": broker.base_url, "PYTHONUNBUFFERED": "1",
              "DESKHAND_CONSOLE_CREDENTIALS": str(tmp_path / "c.json")}
    values.pop("DESKHAND_TOKEN", None)
    return values


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONSOLE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


def enroll(env: dict[str, str]) -> tuple[str, list[str], str]:
    """Run 'totp enroll' as a person would: read the secret, answer with the app's code.
    Returns the secret, the recovery codes printed and the code used."""
    child = subprocess.Popen([*CONSOLE, "totp", "enroll"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stdin is not None
    # Read the three lines before the prompt here: communicate() reads the pipe itself and
    # would miss what readline() had buffered.
    shown = [child.stdout.readline() for _ in range(3)]
    secret = shown[0].removeprefix("Secret:").strip()
    assert shown[1].startswith("URI:") and "otpauth://totp/Deskhand:" in shown[1] and secret in shown[1]
    code = code_at(secret)
    out, err = child.communicate(code + "\n", timeout=60)
    assert child.returncode == 0, err
    assert "not shown again" in out
    codes = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert len(codes) == 10
    return secret, codes, code


def test_enrol_then_sign_in_with_a_prompted_code_a_flag_or_a_recovery_code_then_disable(broker, env) -> None:
    make_user(broker, "cara")
    assert run(env, "login", "-u", "cara", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    secret, codes, _used = enroll(env)

    # Asked for, and standard input ends: one clear line, exit 1.
    missing = run(env, "login", "-u", "cara", "--password-stdin", stdin=PASSWORD + "\n")
    assert missing.returncode == 1 and "authenticator app" in missing.stderr and "no code given" in missing.stderr
    malformed = run(env, "login", "-u", "cara", "--password-stdin", stdin=PASSWORD + "\n12345\n")
    assert malformed.returncode == 1 and "6-digit code" in malformed.stderr

    next_code = code_at(secret, 30)  # once: computed again later, a 30 s step may have ended in between
    prompted = run(env, "login", "-u", "cara", "--password-stdin", stdin=f"{PASSWORD}\n{next_code}\n")
    assert prompted.returncode == 0, prompted.stderr
    replayed = run(env, "login", "-u", "cara", "--password-stdin", "--totp", next_code, stdin=PASSWORD + "\n")
    assert replayed.returncode == 1 and "already used" in replayed.stderr
    recovered = run(env, "login", "-u", "cara", "--password-stdin", "--recovery-code", codes[0], stdin=PASSWORD + "\n")
    assert recovered.returncode == 0, recovered.stderr

    wrong = run(env, "totp", "disable", "--password-stdin", "--code", codes[0], stdin=PASSWORD + "\n")
    assert wrong.returncode == 1 and "already used" in wrong.stderr
    off = run(env, "totp", "disable", "--password-stdin", stdin=f"{PASSWORD}\n{codes[1]}\n")
    assert off.returncode == 0 and "off" in off.stdout, off.stderr
    assert run(env, "login", "-u", "cara", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0


@pytest.mark.parametrize(("args", "words"), [
    (["login", "-u", "x", "--totp", "12345"], "6 digits"),
    (["login", "-u", "x", "--totp", "abcdef"], "6 digits"),
    (["login", "-u", "x", "--recovery-code", "abc"], "recovery code is 16"),
    (["login", "-u", "x", "--totp", "123456", "--recovery-code", "2345-6789-abcd-efgh"], "not allowed with"),
    (["totp", "enroll", "--code", "1234567"], "6 digits"),
    (["totp", "disable", "--code", "12-34"], "recovery codes"),
])
def test_malformed_codes_are_usage_errors(env, args: list[str], words: str) -> None:
    result = run(env, *args)
    assert result.returncode == 2 and words in result.stderr, result.stderr


def test_a_wrong_confirmation_code_leaves_totp_off(broker, env) -> None:
    make_user(broker, "dev")
    assert run(env, "login", "-u", "dev", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    result = run(env, "totp", "enroll", "--code", "000000")
    # Almost surely wrong (1 in 333,333 it is right: then the broker says so and we accept that).
    assert (result.returncode == 1 and "does not match" in result.stderr) or result.returncode == 0
    if result.returncode == 1:
        assert broker.sql("SELECT totp_enabled_at FROM users WHERE username = 'dev'") == [(None,)]
