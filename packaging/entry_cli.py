"""Frozen entry point of ``queue-admin-cli``: the same ``main`` as the installed console script."""

import sys

from queue_admin_gui.cli import main

if __name__ == "__main__":
    sys.exit(main())
