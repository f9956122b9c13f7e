"""``python -m archiver``: the same as the ``archiver`` console script."""

import sys

from archiver.cli import main

sys.exit(main())
