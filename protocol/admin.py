"""Payloads of the admin API: accounts, roles, teams and their session policies."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from .api import Request, Response, UserBrief
from .permissions import Permission, PermissionListError, parse_role_permissions

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
"""Usernames, role and team names: lower case, digits, dot, dash, underscore; 2-64 characters."""


class TeamPolicy(Request):
    """What a team's members may not do in sessions, and what they must."""

    denied: list[Permission] = Field(default_factory=list, max_length=len(Permission))
    """Session permissions the team's members never get, whatever their roles say."""
    recording_required: bool = False
    """Pause control while recording lags, even where the deployment does not require it."""
    control_needs_user: bool = False
    """Control only after the end user consented in person: consent given with
    ``deskhand-host --consent`` (unattended set-ups) does not count for ``control``."""


def _role_permissions(value: list[str]) -> list[str]:
    try:
        return parse_role_permissions(value)
    except PermissionListError as exc:
        raise ValueError(str(exc)) from None


class UserCreate(Request):
    username: str = Field(pattern=NAME_PATTERN)
    display_name: str = Field(min_length=1, max_length=120)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    """Left out: the broker generates one, shows it once, and it must be changed at first sign-in."""
    roles: list[str] = Field(default_factory=lambda: ["technician"], max_length=50)
    teams: list[str] = Field(default_factory=list, max_length=50)


class UserUpdate(Request):
    display_name: str | None = Field(default=None, min_length=1, max_length=120)
    roles: list[str] | None = Field(default=None, max_length=50)
    teams: list[str] | None = Field(default=None, max_length=50)
    disabled: bool | None = None


class UserOut(UserBrief):
    roles: list[str]
    teams: list[str]
    disabled: bool
    totp_enabled: bool
    locked_until: datetime | None
    created_at: datetime


class UserCreated(Response):
    user: UserOut
    password: str | None
    """The generated password, shown this once (None when the request gave one)."""


class PasswordReset(Response):
    password: str
    """A new one-time password; the account must change it at its next sign-in."""


class RoleCreate(Request):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=200)
    permissions: list[str] = Field(default_factory=list, max_length=100)
    require_totp: bool = False

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _role_permissions(value)


class RoleUpdate(Request):
    description: str | None = Field(default=None, max_length=200)
    permissions: list[str] | None = Field(default=None, max_length=100)
    require_totp: bool | None = None

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _role_permissions(value)


class RoleOut(Response):
    id: int
    name: str
    description: str
    builtin: bool
    permissions: list[str]
    require_totp: bool
    members: int


class TeamCreate(Request):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=200)
    policy: TeamPolicy = Field(default_factory=TeamPolicy)
    members: list[str] = Field(default_factory=list, max_length=10_000)


class TeamUpdate(Request):
    description: str | None = Field(default=None, max_length=200)
    policy: TeamPolicy | None = None
    members: list[str] | None = Field(default=None, max_length=10_000)


class TeamOut(Response):
    id: int
    name: str
    description: str
    policy: TeamPolicy
    members: list[str]
