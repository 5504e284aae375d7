"""The wire between Deskhand's parts: REST payloads, signalling messages, support codes.

Pure data and pure functions. This package imports nothing from ``broker``,
``host_client``, ``tech_console`` or ``peer``; every other package may import it.
"""

PROTOCOL_VERSION = 1
"""Bumped whenever a message changes in a way an older peer cannot read."""
