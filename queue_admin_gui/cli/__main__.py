"""``python -m queue_admin_gui.cli``: the same program as ``queue-admin-cli``."""

import sys

from . import main

sys.exit(main())
