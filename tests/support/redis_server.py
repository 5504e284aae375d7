"""The throwaway Redis of the tests: :mod:`local_services.redis_server` (``scripts/cluster`` starts it too)."""

from local_services.redis_server import RedisMissing, RedisServer

__all__ = ["RedisMissing", "RedisServer"]
