"""Domain model and rules: frozen dataclasses and pure functions, no I/O."""
