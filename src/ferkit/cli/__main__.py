"""``python -m ferkit.cli``: the same as the ``ferkit`` command."""

from ferkit.cli import main

main()
