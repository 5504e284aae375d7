"""What both peers of a session, the host and the technician, share.

ICE set-up from the broker's configuration (:mod:`peer.ice`), the one client of
the broker's HTTP API (:mod:`peer.broker_client`), the client end of the
signalling WebSocket (:mod:`peer.signalling`), and the file-transfer client
(:mod:`peer.transfers`, :mod:`peer.chunk_ledger`). Used by ``host_client`` and
``tech_console``; imports ``protocol``, aiortc and aiohttp, never ``broker``.
Anything that reaches into aiortc or aioice internals lives in
:mod:`peer.aiortc_hooks` and nowhere else.
"""
