"""What both WebRTC peers share: ICE set-up from the broker's configuration and the
client end of the signalling WebSocket.

Used by ``host_client`` and ``tech_console``; imports ``protocol`` and aiortc,
never ``broker``. Anything that reaches into aiortc or aioice internals lives
in :mod:`rtc.aiortc_hooks` and nowhere else.
"""
