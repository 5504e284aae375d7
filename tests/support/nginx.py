"""Real brokers behind a real nginx (:mod:`local_services.nginx`), as tests talk to them: through the proxy.

Usage (brokers started with ``DESKHAND_TRUSTED_PROXIES=127.0.0.1``, :data:`BEHIND_PROXY`, so that
they believe nginx's ``X-Forwarded-For``)::

    with ProxiedBrokers.start([first, second]) as front:
        front.api              # "http://127.0.0.1:PORT/api/v1", nginx's
        front.http.get(...)    # an httpx.Client on front.api, as BrokerProcess.http
        front.ws_url(sid)      # nginx's signalling URL of a session
        front.login()          # through nginx; front.sql(...) on the brokers' shared database
        front.landed_on(ws.response.headers)   # which broker answered (nginx's upstream header)

Requests take turns between the brokers (round robin); a broker that refuses connections is
skipped (``proxy_next_upstream``) and left out for :data:`~local_services.nginx.LEFT_OUT_SECONDS`.
Missing nginx: :class:`~local_services.nginx.NginxMissing`, which the ``nginx_program`` fixture
of ``tests/conftest.py`` turns into a skip (a failure under ``CI=true``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx

from local_services.nginx import UPSTREAM_HEADER, NginxProxy
from peer.signalling import websocket_url
from tests.support.broker import BrokerCalls, BrokerProcess

BEHIND_PROXY = {"DESKHAND_TRUSTED_PROXIES": "127.0.0.1"}
"""Settings of a broker behind the test nginx: it believes the forwarded headers from 127.0.0.1."""


class ProxiedBrokers(BrokerCalls):
    """Brokers behind one nginx; create it with :meth:`start`. Sign-in and SQL as on a :class:`BrokerProcess`."""

    def __init__(self, proxy: NginxProxy, brokers: Sequence[BrokerProcess]) -> None:
        self.proxy = proxy
        self.brokers = list(brokers)
        self.admin_password = brokers[0].admin_password
        self.database_url = brokers[0].database_url
        self._http: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        """nginx's ``http://127.0.0.1:PORT``."""
        return self.proxy.base_url

    @property
    def api(self) -> str:
        """The REST API's base through nginx."""
        return self.base_url + "/api/v1"

    @property
    def http(self) -> httpx.Client:
        """A keep-alive client on :attr:`api` (TCP_NODELAY, as :attr:`BrokerProcess.http` says why)."""
        if self._http is None:
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            self._http = httpx.Client(base_url=self.api, timeout=15, transport=transport)
        return self._http

    def ws_url(self, session_id: str) -> str:
        """The signalling WebSocket URL of ``session_id`` through nginx."""
        return websocket_url(self.base_url, f"/api/v1/sessions/{session_id}/signal")

    def landed_on(self, headers: Mapping[str, str]) -> BrokerProcess:
        """The broker that answered a response with these headers (the last nginx tried)."""
        address = headers[UPSTREAM_HEADER].split(",")[-1].strip()
        for broker in self.brokers:
            if broker.base_url == f"http://{address}":
                return broker
        raise AssertionError(f"nginx answered from {address!r}, none of {[b.base_url for b in self.brokers]}")

    @classmethod
    @contextmanager
    def start(cls, brokers: Sequence[BrokerProcess]) -> Iterator[ProxiedBrokers]:
        """nginx in front of ``brokers`` (one worker: the turns go strictly one broker after the other)."""
        ports = [int(broker.base_url.rsplit(":", 1)[1]) for broker in brokers]
        with NginxProxy.start(ports, tell_upstream=True) as proxy:
            front = cls(proxy, brokers)
            try:
                yield front
            finally:
                if front._http is not None:
                    front._http.close()
