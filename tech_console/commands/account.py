"""Account commands: ``login``, ``logout``, ``whoami``, ``passwd`` and ``totp`` (two-factor sign-in)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from protocol.api import LoginResponse
from protocol.totp import is_totp_code, normalize_second_factor, normalize_totp_code

from ..client import ConsoleError, TechConsole
from ..credentials import Credentials, forget_credentials, save_credentials
from . import arguments as arg
from .command import Command, Subcommands
from .context import Context
from .exit_codes import EXIT_OK, EXIT_USAGE


def _add_login(commands: Subcommands) -> argparse.ArgumentParser:
    login = commands.add_parser("login", help="sign in and remember the token")
    login.add_argument("--username", "-u", required=True, help="your account name")
    login.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from the first line of standard input instead of prompting "
        "(and a TOTP code, if the broker asks for one, from the second)",
    )
    second = login.add_mutually_exclusive_group()
    second.add_argument("--totp", type=arg.totp_code, metavar="CODE",
                        help="the 6-digit code from your authenticator app (otherwise asked for when needed)")
    second.add_argument("--recovery-code", type=arg.recovery_code, metavar="CODE",
                        help="one of your one-time recovery codes, instead of a TOTP code")
    return login


def _add_logout(commands: Subcommands) -> argparse.ArgumentParser:
    return commands.add_parser("logout", help="revoke the token and forget it")


def _add_whoami(commands: Subcommands) -> argparse.ArgumentParser:
    return commands.add_parser("whoami", help="show the signed-in account")


def _add_passwd(commands: Subcommands) -> argparse.ArgumentParser:
    passwd = commands.add_parser("passwd", help="change your password (the broker's policy says how long)")
    passwd.add_argument(
        "--stdin", action="store_true",
        help="read the current and the new password from the first two lines of standard input",
    )
    return passwd


def _add_totp(commands: Subcommands) -> argparse.ArgumentParser:
    second_factor = commands.add_parser("totp", help="turn two-factor sign-in (an authenticator app) on or off")
    totp_cmds = second_factor.add_subparsers(dest="totp_command", metavar="ACTION", required=True)
    enroll = totp_cmds.add_parser(
        "enroll", help="show a new secret for your authenticator app, confirm it with a code, get recovery codes",
    )
    enroll.add_argument("--code", type=arg.totp_code, metavar="CODE",
                        help="confirm with this code instead of being asked (only useful with a known secret)")
    disable = totp_cmds.add_parser("disable", help="turn it off (needs your password and a code)")
    disable.add_argument("--code", type=arg.second_factor, metavar="CODE",
                         help="a current 6-digit code or a recovery code (otherwise asked for)")
    disable.add_argument("--password-stdin", action="store_true",
                         help="read the password (and then the code, if no --code) from standard input")
    return second_factor


async def _login(ctx: Context) -> int:
    args = ctx.args
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.username}: ")
    async with ctx.client() as tc:
        result = await _sign_in(tc, args.username, password, args.totp, args.recovery_code)
    # The token is in the body: only a browser asks for it as a cookie (then it is None).
    assert result.access_token is not None
    save_credentials(
        ctx.credentials_path,
        Credentials(ctx.broker, result.access_token, result.user.username, result.expires_at.isoformat()),
    )
    ctx.emit(result.user, f"Signed in to {ctx.broker} as {result.user.username} until {result.expires_at:%Y-%m-%d %H:%M} UTC.")
    if result.password_change_required:
        print("Your password must be changed: run 'deskhand-console passwd'.", file=sys.stderr)
    if result.totp_enrollment_required:
        print("Your role requires two-factor sign-in: run 'deskhand-console totp enroll' before anything else.",
              file=sys.stderr)
    return EXIT_OK


async def _sign_in(
    tc: TechConsole, username: str, password: str, totp_code: str | None, recovery_code: str | None
) -> LoginResponse:
    """Sign in, asking for a TOTP code when the broker wants one and none was given."""
    try:
        return await tc.login(username, password, totp_code=totp_code, recovery_code=recovery_code)
    except ConsoleError as exc:
        if exc.error != "totp_required" or totp_code or recovery_code:
            raise
    code = _ask_code("Code from your authenticator app (or a recovery code): ", normalize_second_factor)
    if is_totp_code(code):
        return await tc.login(username, password, totp_code=code)
    return await tc.login(username, password, recovery_code=code)


def _ask_code(prompt: str, normalize: Callable[[str], str]) -> str:
    """A code typed on (or piped into) standard input, checked with ``normalize``."""
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise ConsoleError("no code given (standard input ended)")
    try:
        return normalize(line.strip())
    except ValueError as exc:
        raise ConsoleError(str(exc)) from None


async def _totp(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as tc:
        if args.totp_command == "enroll":
            started = await tc.enroll_totp()
            ctx.emit(started, [f"Secret: {started.secret}", f"URI:    {started.provisioning_uri}",
                               "Add it to your authenticator app (type the secret, or make a QR code of the URI)."])
            code = args.code or _ask_code("Code now shown by the app: ", normalize_totp_code)
            recovery = await tc.confirm_totp(code)
            ctx.emit(recovery, ["Two-factor sign-in is on. Recovery codes, each good once; keep them safe, "
                                "they are not shown again:", *(f"  {c}" for c in recovery.recovery_codes)])
        else:
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass("Password: ")
            code = args.code or _ask_code("Code from your authenticator app (or a recovery code): ",
                                          normalize_second_factor)
            await tc.disable_totp(password, code)
            print("Two-factor sign-in is off.")
    return EXIT_OK


async def _logout(ctx: Context) -> int:
    async with ctx.client() as tc:
        try:
            await tc.logout()
        finally:
            forget_credentials(ctx.credentials_path)
    print("Signed out.")
    return EXIT_OK


async def _whoami(ctx: Context) -> int:
    async with ctx.client() as tc:
        user = await tc.me()
    ctx.emit(user, f"{user.username} ({user.display_name}){' admin' if user.is_admin else ''} at {ctx.broker}")
    return EXIT_OK


async def _passwd(ctx: Context) -> int:
    if ctx.args.stdin:
        current = sys.stdin.readline().rstrip("\n")
        new = sys.stdin.readline().rstrip("\n")
    else:
        current = getpass.getpass("Current password: ")
        new = getpass.getpass("New password: ")
        if getpass.getpass("New password again: ") != new:
            print("deskhand-console: the two new passwords differ", file=sys.stderr)
            return EXIT_USAGE
    # The length and the other rules are the broker's (configurable there); its refusal names the rule.
    async with ctx.client() as tc:
        await tc.change_password(current, new)
    print("Password changed.")
    return EXIT_OK


LOGIN = Command(_add_login, _login)
LOGOUT = Command(_add_logout, _logout)
WHOAMI = Command(_add_whoami, _whoami)
PASSWD = Command(_add_passwd, _passwd)
TOTP = Command(_add_totp, _totp)
