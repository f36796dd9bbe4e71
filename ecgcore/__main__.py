"""Entry point for `python -m ecgcore`."""

import sys

from ecgcore.cli import main

sys.exit(main())
