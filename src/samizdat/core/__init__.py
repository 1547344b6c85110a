"""Domain model and rules: frozen dataclasses and pure functions, no I/O.

Import from the modules (``samizdat.core.rules``, ``samizdat.core.model``, ...).
"""

__all__: list[str] = []
