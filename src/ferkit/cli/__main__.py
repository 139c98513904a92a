"""``python -m ferkit.cli``: the same as the ``ferkit`` command."""

from ferkit.cli import main

if __name__ == "__main__":  # not when a spawned worker process (the --aus landmarker pool) imports this module
    main()
