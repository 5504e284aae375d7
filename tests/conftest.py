"""Shared fixtures: real brokers, a real X server, Chromium's path.

* ``broker`` (module scope): one :class:`~tests.support.broker.BrokerProcess` for a module.
* ``start_broker(**env)`` (function scope): a factory for brokers with their own
  settings, e.g. ``start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE="5")``; each is
  stopped at the end of the test.
* ``xvfb`` (session scope): an :class:`~tests.support.xvfb.XvfbServer` at 1920x1080;
  ``xvfb.env`` is ``{"DISPLAY": ...}``.
* ``chromium_path``: Debian's Chromium.

Under ``CI=true`` a missing Xvfb or Chromium fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.support.broker import BrokerProcess
from tests.support.xvfb import XvfbMissing, XvfbServer

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")


def missing_dependency(message: str) -> None:
    """Fail under CI (a missing dependency is a broken set-up), skip elsewhere."""
    if IN_CI:
        pytest.fail(message + " (CI=true: missing test dependencies fail the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess.start() as running:
        yield running


@pytest.fixture
def start_broker() -> Iterator[Callable[..., BrokerProcess]]:
    with ExitStack() as stack:
        yield lambda **env: stack.enter_context(BrokerProcess.start(env))


@pytest.fixture(scope="session")
def xvfb() -> Iterator[XvfbServer]:
    try:
        with XvfbServer.start(1920, 1080) as server:
            yield server
    except XvfbMissing as exc:
        missing_dependency(str(exc))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for path in CHROMIUM_PATHS:
        if shutil.which(path):
            return path
    missing_dependency("Chromium is not installed: apt-get install chromium (./scripts/test does it)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> dict[str, str]:
    """Authorization headers of the module broker's first admin."""
    return {"Authorization": f"Bearer {broker.login()}"}
