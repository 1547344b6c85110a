"""``python -m samizdat`` is the ``samizdat`` command."""

from samizdat.cli.main import main

main()
