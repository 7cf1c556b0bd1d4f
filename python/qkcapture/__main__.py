"""`python -m qkcapture …`: the command line (see `qkcapture.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
