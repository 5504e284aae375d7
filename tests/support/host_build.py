"""The single-file ``deskhand-host`` (``scripts/build-host``) for tests and benchmarks, and a bare environment to run it in.

    program = built_host()                       # dist/host/deskhand-host-linux-x86_64, built or from the cache
    subprocess.Popen([str(program)], env=bare_env(home, DISPLAY=":5"))

``scripts/test`` starts the build in the background before the tests (so that a build
the cache does not hold runs beside the first tests); :func:`built_host` runs the script
again, which waits for that build on the cache's lock and then copies the kept file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.line_child import REPO

BUILD_SCRIPT = REPO / "scripts" / "build-host"
BUILD_LOG = REPO / "test-artifacts" / "host-build.log"
"""Where ``scripts/test`` writes the background build's output (shown with a failed build)."""

BUILD_TIMEOUT = 900.0
"""A cold build takes about a minute on two cores; one behind a busy test run, a few."""


class HostBuildFailed(RuntimeError):
    """``scripts/build-host`` failed; the message holds the end of what it said."""


def built_host(out: Path | None = None) -> Path:
    """The built file: ``scripts/build-host`` run now (instant when its cache holds the build)."""
    args = [str(BUILD_SCRIPT)] + (["--out", str(out)] if out is not None else [])
    try:
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostBuildFailed(f"scripts/build-host did not finish within {BUILD_TIMEOUT:g} s") from exc
    if done.returncode != 0:
        background = BUILD_LOG.read_text(errors="replace")[-3000:] if BUILD_LOG.exists() else ""
        raise HostBuildFailed(
            f"scripts/build-host failed (exit {done.returncode}):\n{done.stderr[-6000:]}"
            + (f"\nthe background build of scripts/test said:\n{background}" if background else "")
        )
    program = REPO / done.stdout.splitlines()[0]
    if not os.access(program, os.X_OK):
        raise HostBuildFailed(f"scripts/build-host printed {program}, which is not an executable file")
    return program


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment without this virtualenv or Python: a PATH without ``.venv/bin``, no
    ``VIRTUAL_ENV``, ``PYTHONPATH`` or ``PYTHONHOME``, a home of its own; ``extra`` on top."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if p and Path(p).resolve() != Path(venv_bin).resolve() and not p.startswith(str(REPO))]
    env = {"PATH": os.pathsep.join(path), "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8"),
           "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
           "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    return {**env, **extra}
