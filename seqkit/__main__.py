"""``python -m seqkit``: the command line (``seqkit.cli``)."""

from .cli import main

if __name__ == "__main__":
    main()
