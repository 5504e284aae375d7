"""The audit trail and its evidence: events, the hash chain and signed heads, recordings, reports, export bundles."""
