"""python -m bnfast: the same as the bnfast console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
