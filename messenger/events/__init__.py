"""Matrix event format: canonical JSON, hashes, event ids, redaction (pure, no I/O)."""
