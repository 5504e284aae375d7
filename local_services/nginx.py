"""A private nginx on 127.0.0.1 and a free port, in front of brokers on 127.0.0.1 (Debian's ``nginx`` package).

Usage (``tests/support/nginx.py``, ``scripts/cluster`` and ``bench/broker_load.py`` wrap it)::

    with NginxProxy.start([8001, 8002]) as proxy:
        proxy.base_url     # "http://127.0.0.1:PORT": every request and WebSocket goes to a broker in turn
        proxy.error_text() # the end of nginx's error log

It runs as whoever starts it (``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'``): the pid file,
the logs and nginx's temporary files live in a temporary directory, and as root the workers
stay root (``user``) instead of switching to an account that could not read that directory.
The configuration is the one a deployment needs (see docs/operations.md, "Running several
brokers"): WebSocket upgrades, hour-long reads for signalling and long polls, the forwarded
headers the brokers believe from 127.0.0.1 (``DESKHAND_TRUSTED_PROXIES``), and a broker that
refuses connections skipped (``proxy_next_upstream``) and left out for a while (``max_fails``).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from local_services.ports import free_port
from local_services.processes import START_ATTEMPTS, answers_within, first_start, stop_process

DEBIAN_PROGRAM = Path("/usr/sbin/nginx")
"""Where Debian puts nginx: not on the PATH of users other than root."""
UPSTREAM_HEADER = "X-Deskhand-Upstream"
"""With ``tell_upstream``: the response header naming the broker (``127.0.0.1:PORT``) that answered."""
CONNECT_SECONDS = 2
"""How long nginx waits for a broker to accept before trying the next (a refused connection moves on at once)."""
LEFT_OUT_SECONDS = 10
"""How long a broker that failed is left out of the rotation before nginx tries it again."""


class NginxMissing(RuntimeError):
    """nginx is not installed."""


def program() -> str:
    """The nginx binary; raises :class:`NginxMissing` saying what to install."""
    found = shutil.which("nginx") or (str(DEBIAN_PROGRAM) if DEBIAN_PROGRAM.is_file() else None)
    if found is None:
        raise NginxMissing("nginx is not installed: apt-get install nginx (./scripts/test does it)")
    return found


def proxy_config(root: Path, port: int, upstreams: Sequence[int], *, host: str = "127.0.0.1", workers: str = "1",
                 tell_upstream: bool = False) -> str:
    """nginx.conf for a proxy on ``host``:``port`` in front of brokers on 127.0.0.1:``upstreams``, files in ``root``."""
    # Worker processes switch to 'user' only when the master is root; as root, stay root.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};" if os.geteuid() == 0 else ""
    servers = "\n".join(f"        server 127.0.0.1:{upstream} max_fails=1 fail_timeout={LEFT_OUT_SECONDS}s;"
                        for upstream in upstreams)
    temp_paths = "\n".join(f"    {kind}_temp_path {root / 'tmp' / kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# Written by local_services/nginx.py.
{user}
worker_processes {workers};
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;

events {{
    worker_connections 4096;
}}

http {{
{temp_paths}
    log_format upstreamed '$remote_addr "$request" $status upstream=$upstream_addr $request_time s';
    access_log {root / "access.log"} upstreamed;

    # A WebSocket asks to upgrade; any other request keeps the pooled connection to the broker.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}

    upstream deskhand_brokers {{
        zone deskhand_brokers 64k;  # every worker sees the same turn and the same failed broker
{servers}
        keepalive 64;
        keepalive_timeout 10s;  # shorter than the broker's (DESKHAND_HTTP_KEEPALIVE_SECONDS, 15 s)
    }}

    server {{
        listen {host}:{port};
        client_max_body_size 0;  # the broker sets and enforces its own limits

        location / {{
            proxy_pass http://deskhand_brokers;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Signalling sockets and long polls stay open for long, quiet stretches.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            # A dead broker refuses (or never accepts): try the next one.
            proxy_connect_timeout {CONNECT_SECONDS}s;
            proxy_next_upstream error timeout;
            # Uploads and downloads stream through; the broker paces them.
            proxy_request_buffering off;
            proxy_buffering off;
{f"            add_header {UPSTREAM_HEADER} $upstream_addr always;" if tell_upstream else ""}
        }}
    }}
}}
"""


def log_tail(root: Path, last: int = 40) -> str:
    """The last ``last`` lines of the error log and the output of the nginx whose files are in ``root``."""
    lines: list[str] = []
    for name in ("error.log", "output.log"):
        path = root / name
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-last:])


class NginxProxy:
    """One running nginx; create it with :meth:`start`."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.process = process

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, no trailing slash (nginx listens there, or on every address)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.root / "nginx.conf"

    def error_text(self, last: int = 40) -> str:
        """The last ``last`` lines of nginx's error log (and of its own output), for failure messages."""
        return log_tail(self.root, last)

    @classmethod
    @contextmanager
    def start(cls, upstreams: Sequence[int], *, host: str = "127.0.0.1", port: int = 0, workers: str = "1",
              tell_upstream: bool = False, timeout: float = 10.0) -> Iterator[NginxProxy]:
        """Run nginx in front of the brokers on ``upstreams`` (their 127.0.0.1 ports) for the ``with`` block.

        nginx listens on ``host``:``port`` (``host`` 127.0.0.1 or 0.0.0.0; ``port`` 0: a free one).
        ``workers`` is ``worker_processes`` ("auto": one per core); ``tell_upstream`` adds
        :data:`UPSTREAM_HEADER` to every response. The configuration is checked (``nginx -t``)
        first; a failed check or start raises ``RuntimeError`` with nginx's words.
        """
        binary = program()
        with tempfile.TemporaryDirectory(prefix="deskhand-nginx-") as tmp:
            root = Path(tmp)
            (root / "tmp").mkdir()
            def launch() -> NginxProxy:
                listen = port or free_port()
                (root / "nginx.conf").write_text(
                    proxy_config(root, listen, upstreams, host=host, workers=workers, tell_upstream=tell_upstream))
                # -e: errors before the configuration is read go here too, not to /var/log/nginx.
                command = [binary, "-p", str(root), "-e", str(root / "error.log"), "-c", str(root / "nginx.conf")]
                checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
                if checked.returncode != 0:
                    raise RuntimeError(f"nginx -t refused {root / 'nginx.conf'}:\n{checked.stderr}{log_tail(root)}")
                with (root / "output.log").open("a") as output:
                    process = subprocess.Popen([*command, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                               stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
                return cls(root, listen, process)

            proxy = first_start(launch, lambda p: p._wait_ready(timeout), lambda p: p.stop(),
                                attempts=START_ATTEMPTS if port == 0 else 1)
            if proxy is None:
                raise RuntimeError(f"nginx did not start:\n{log_tail(root)}")
            try:
                yield proxy
            finally:
                proxy.stop()

    def _wait_ready(self, timeout: float) -> bool:
        def accepts() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        return answers_within(self.process, accepts, timeout)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (nginx's fast shutdown: connections cut), then SIGKILL to the master and its workers
        (workers outlive a killed master)."""
        stop_process(self.process, grace, group=True)
