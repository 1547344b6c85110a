"""The ``samizdat`` command (``samizdat.cli.main:main``): server and client in one tool."""

__all__: list[str] = []
