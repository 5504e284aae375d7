"""The throwaway PostgreSQL cluster of the tests: :mod:`local_services.postgres` (``scripts/cluster`` starts it too)."""

from local_services.ports import free_port
from local_services.postgres import PostgresCluster, PostgresMissing, server_binaries

__all__ = ["PostgresCluster", "PostgresMissing", "free_port", "server_binaries"]
