"""Frozen entry point of ``queue-admin``: the same ``main`` as the installed GUI script."""

import sys

from queue_admin_gui.ui.launch import main

if __name__ == "__main__":
    sys.exit(main())
