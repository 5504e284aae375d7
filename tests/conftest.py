"""Shared fixtures: real brokers, a real X server, Chromium's path.

Brokers (see :mod:`tests.support.broker` for what a :class:`BrokerProcess` offers):

* ``broker`` (module scope) -> ``BrokerProcess``: one real broker shared by the
  tests of a module, with a fresh data directory. Its settings come from the
  module-scoped ``broker_env`` fixture, ``{}`` by default; a module overrides it
  to configure its broker, e.g.::

      @pytest.fixture(scope="module")
      def broker_env() -> dict[str, str]:
          return {"DESKHAND_SIGNAL_MAX_MESSAGE_BYTES": "16384"}

* ``start_broker(**env)`` (function scope) -> ``Callable[..., BrokerProcess]``: a
  factory for brokers of one test, each with its own settings and data directory,
  e.g. ``start_broker(DESKHAND_CODE_FAILURES_PER_SOURCE="5")``; all are stopped
  (SIGTERM, then SIGKILL) when the test ends.
* ``admin`` (module scope) -> ``dict[str, str]``: ``Authorization`` headers of the
  module broker's first admin.
* ``in_process_broker`` (module scope) -> :class:`~tests.support.in_process.AppBroker`: the
  same broker (settings from ``broker_env``) as an app in the test process, no server; a
  module about the broker's rules runs on it by returning it from its own ``broker`` fixture.

Databases: brokers keep their data in SQLite unless told otherwise.

* ``broker_db`` (module scope) -> :class:`~tests.support.database.BrokerDatabases`: what the module's
  brokers run on. The embedded default (SQLite, files, alone); in a module marked
  ``pytestmark = pytest.mark.both_stacks`` (the broker-facing tier), the embedded default and then
  what several brokers share (PostgreSQL, a Redis of the module's own, the run's S3 bucket).
  ``broker_db.env()`` is the settings of a broker with a fresh database of that kind (``{}``
  for SQLite; the database URL, ``DESKHAND_REDIS_URL`` and ``DESKHAND_OBJECT_STORE_*`` for the
  cluster; the brokers of one module share the bucket's corner and the Redis). The default
  ``broker_env`` is ``broker_db.env()``, so a marked module's ``broker`` runs on both; a module
  with settings of its own returns them with ``**broker_db.env()``, and a test gives
  ``start_broker(**broker_db.env())`` for its own brokers.
* ``postgres`` (session scope) -> :class:`~tests.support.postgres.PostgresCluster`:
  the run's throwaway PostgreSQL server, started on first use.
* ``redis_server`` (session scope) -> :class:`~tests.support.redis_server.RedisServer`:
  the run's throwaway Redis on 127.0.0.1 (``redis_server.url`` for ``DESKHAND_REDIS_URL``).
* ``object_store`` (session scope) -> :class:`~tests.support.object_store.ObjectStore`:
  the run's throwaway S3 server (SeaweedFS) on 127.0.0.1 (``object_store.env()`` for ``DESKHAND_OBJECT_STORE_*``).
* ``nginx_program`` (session scope) -> ``str``: the nginx binary; a test that puts brokers
  behind nginx (:class:`~tests.support.nginx.ProxiedBrokers`) asks for it first.

Display and browser:

* ``xvfb`` (session scope) -> :class:`~tests.support.xvfb.XvfbServer`: a private
  Xvfb at 1920x1080x24; ``xvfb.display`` is e.g. ``":5"``, ``xvfb.env`` is
  ``{"DISPLAY": ":5"}`` (merge it into ``os.environ`` for child processes).
* ``recorder`` (function scope) -> :class:`~tests.support.input_recorder.RecorderProcess`:
  a Tk window on ``xvfb`` that records the clicks and text it receives.
* ``chromium_path`` (session scope) -> ``str``: ``/usr/bin/chromium`` or
  ``/usr/lib/chromium/chromium``.

Networks (root only: ``ip netns``):

* ``net_topology`` (module scope) -> :class:`~tests.support.netns.NetTopology`: the ``user``,
  ``tech`` and ``relay`` namespaces, where user and tech reach only the relay's public
  address 198.18.0.1. A test that cuts a link or moves an address puts it back, or makes
  its own with ``NetTopology.create()``.
* ``coturn`` (module scope) -> :class:`~tests.support.coturn.CoturnServer`: coturn on
  198.18.0.1 in that relay namespace (UDP and TCP on 3478, TLS on 5349), with
  :data:`~tests.support.coturn.SECRET` as its shared secret.

A missing Xvfb, Chromium, PostgreSQL, Redis, nginx, coturn or network namespaces skips the test with what to
install or why, except under ``CI=true``, where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from local_services.nginx import NginxMissing
from local_services.nginx import program as nginx_binary
from tests.support.broker import BrokerProcess
from tests.support.coturn import CoturnMissing, CoturnServer
from tests.support.database import BrokerDatabases
from tests.support.in_process import AppBroker
from tests.support.input_recorder import RecorderProcess
from tests.support.netns import NetnsUnavailable, NetTopology
from tests.support.object_store import ObjectStore, ObjectStoreMissing
from tests.support.postgres import PostgresCluster, PostgresMissing
from tests.support.redis_server import RedisMissing, RedisServer
from tests.support.xvfb import XvfbMissing, XvfbServer

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")


SCREEN_FOLDERS = frozenset({"e2e", "netns"})
"""Test folders whose tests drive screens: Xvfb, real WebRTC peers encoding video, namespaces with relays."""


def drives_screens(items: list[pytest.Item]) -> bool:
    """True when the tests of one module drive a screen: they are in :data:`SCREEN_FOLDERS`, or one
    of them uses the ``xvfb`` fixture (a host streaming its screen to Chromium, say)."""
    return any(item.path.parent.name in SCREEN_FOLDERS or "xvfb" in getattr(item, "fixturenames", ())
               for item in items)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marks into work units
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (``scripts/test`` runs the whole suite on two workers).

    The modules that drive screens form one group, run one after another on one worker: two
    of them at once would share two cores between two video encoders and their timing
    checks. Every other module (Chromium on the console's pages alone, say) is a group of
    its own, so its module-scoped broker starts once, and those groups run beside the
    screens on the other worker.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    for module, members in modules.items():
        group = "screens" if drives_screens(members) else module
        for item in members:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_xdist_node_collection_finished(node: WorkerController, ids: list[str]) -> None:
    """Stops the run when a worker's tests lost their groups, instead of letting the suite run ungrouped.

    xdist carries a group in the test's id (``...::test@group``); when it cannot (pytest 9.2
    ignores the way xdist 3.8 writes it: pytest-xdist issue 1386), every test becomes a unit
    of its own, a module's tests are spread over both workers, each worker starts the
    module's broker again, and a test that counts on an earlier one's state fails at random.
    """
    lost = [nodeid for nodeid in ids if "@" not in nodeid.rsplit("]", 1)[-1]]
    if lost and node.config.getvalue("dist") == "loadgroup":
        raise pytest.UsageError(f"pytest-xdist did not group {len(lost)} of {len(ids)} tests ({lost[0]}, ...): "
                                "this pytest and this pytest-xdist do not work together; see pyproject.toml's pin")


def in_ci() -> bool:
    """True when the run is a CI run (``CI=true``), where missing dependencies are failures."""
    return os.environ.get("CI", "").strip().lower() == "true"


def missing_dependency(message: str) -> None:
    """Fail under CI (a missing dependency is a broken set-up), skip elsewhere. Never returns."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing test dependency fails the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """Settings (``DESKHAND_*`` variables) of the module's ``broker``: what ``broker_db`` runs it on; override
    per module."""
    return broker_db.env()


@pytest.fixture(scope="module")
def broker(broker_env: dict[str, str]) -> Iterator[BrokerProcess]:
    """A real broker shared by the tests of one module."""
    with BrokerProcess.start(broker_env) as running:
        yield running


@pytest.fixture(scope="module")
def in_process_broker(broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppBroker]:
    """The broker's app in the test process (the domain tier: :mod:`tests.support.in_process`)."""
    with AppBroker.start(broker_env, tmp_path_factory.mktemp("app-broker")) as app:
        yield app


@pytest.fixture
def start_broker() -> Iterator[Callable[..., BrokerProcess]]:
    """A factory ``start_broker(**env)`` of brokers that live until the test ends."""
    with ExitStack() as stack:

        def start(**env: str) -> BrokerProcess:
            return stack.enter_context(BrokerProcess.start(env))

        yield start


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> dict[str, str]:
    """Authorization headers of the module broker's first admin."""
    return {"Authorization": f"Bearer {broker.login()}"}


T = TypeVar("T")

STACKS = ("embedded", "cluster")
"""What a broker runs on, for ``broker_db``: the embedded default (SQLite, files under the data directory,
alone), and what several brokers share (PostgreSQL, Redis, an S3 bucket)."""


def running_service(start: Callable[[], AbstractContextManager[T]], missing: type[Exception]) -> Iterator[T]:
    """The service ``start()`` runs, for a fixture to yield; ``missing`` (its "not installed") skips or fails."""
    with ExitStack() as stack:
        try:
            service = stack.enter_context(start())
        except missing as exc:
            missing_dependency(str(exc))
        yield service


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server on 127.0.0.1 for the whole run."""
    yield from running_service(PostgresCluster.start, PostgresMissing)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway Redis on 127.0.0.1 for the whole run (a test that needs it empty calls ``flush()``)."""
    yield from running_service(RedisServer.start, RedisMissing)


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """A throwaway S3 server (SeaweedFS) on 127.0.0.1 for the whole run; ``object_store.env()`` gives a
    broker its settings, under a prefix of its own."""
    yield from running_service(ObjectStore.start, ObjectStoreMissing)


@pytest.fixture(scope="session")
def nginx_program() -> str:
    """The nginx binary that :class:`~tests.support.nginx.ProxiedBrokers` runs (checked once, skipped or failed if missing)."""
    try:
        return nginx_binary()
    except NginxMissing as exc:
        missing_dependency(str(exc))
        raise  # not reached: missing_dependency skips or fails


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked ``both_stacks`` runs its tests on each of :data:`STACKS` (``broker_db``)."""
    if "broker_db" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_stacks"):
        metafunc.parametrize("broker_db", STACKS, indirect=True, scope="module")


@pytest.fixture(scope="module")
def broker_db(request: pytest.FixtureRequest) -> Iterator[BrokerDatabases]:
    """The module's brokers on the embedded default, or (``cluster``) on PostgreSQL with a Redis of the
    module's own (limits keyed by 127.0.0.1 must not meet another module's) and an S3 bucket; its
    databases dropped and its Redis stopped after the module."""
    if getattr(request, "param", "embedded") == "embedded":
        yield BrokerDatabases("sqlite", None, ExitStack())
        return
    store, postgres = request.getfixturevalue("object_store"), request.getfixturevalue("postgres")
    with ExitStack() as stack:
        try:
            own_redis = stack.enter_context(RedisServer.start())
        except RedisMissing as exc:
            missing_dependency(str(exc))
        shared = {"DESKHAND_REDIS_URL": own_redis.url, **store.env()}
        yield BrokerDatabases("postgresql", postgres, stack, shared)


@pytest.fixture(scope="session")
def xvfb() -> Iterator[XvfbServer]:
    """A private Xvfb (1920x1080x24) for the whole run."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(XvfbServer.start(1920, 1080))
        except XvfbMissing as exc:
            missing_dependency(str(exc))
        yield server


@pytest.fixture(scope="module")
def net_topology() -> Iterator[NetTopology]:
    """The user, tech and relay namespaces (:mod:`tests.support.netns`), removed after the module."""
    with ExitStack() as stack:
        try:
            net = stack.enter_context(NetTopology.create())
        except NetnsUnavailable as exc:
            missing_dependency(str(exc))
        yield net


@pytest.fixture(scope="module")
def coturn(net_topology: NetTopology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoturnServer]:
    """coturn in the relay namespace (:mod:`tests.support.coturn`), stopped after the module."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(CoturnServer.start(net_topology, tmp_path_factory.mktemp("coturn")))
        except CoturnMissing as exc:
            missing_dependency(str(exc))
        yield server


@pytest.fixture
def recorder(xvfb: XvfbServer) -> Iterator[RecorderProcess]:
    """A window on the test display that records what input reaches it."""
    with RecorderProcess(xvfb.env) as running:
        yield running


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The path of Debian's Chromium binary."""
    for path in CHROMIUM_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    missing_dependency(
        f"Chromium is not installed (looked for {' and '.join(CHROMIUM_PATHS)}): "
        "apt-get install chromium (./scripts/test does it)"
    )
    raise AssertionError("unreachable")


@pytest.fixture(scope="session", autouse=True)
def private_home_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep what the clients write (host state, downloads, console credentials) out of the real home."""
    root = tmp_path_factory.mktemp("home")
    values = {
        "XDG_STATE_HOME": root / "state",
        "XDG_CONFIG_HOME": root / "config",
        "DESKHAND_DOWNLOADS": root / "Downloads",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(path) for name, path in values.items()})
    yield root
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
