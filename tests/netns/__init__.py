"""Tests in network namespaces: TURN relaying, separated networks (root only; see tests/support/netns.py)."""
