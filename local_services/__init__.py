"""Throwaway services on 127.0.0.1 (PostgreSQL, Redis, nginx), started as the user who runs them.

The tests (``tests/support``), the benchmarks (``bench``) and ``scripts/cluster`` start these;
each lives in a temporary directory and is gone when its ``with`` block ends.
"""
