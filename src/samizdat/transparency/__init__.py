"""A public, append-only log of lawful requests that anyone can verify (RFC 9162 style)."""
