"""``python -m kmm_interactive`` runs the ``kmm`` command."""

import sys

from kmm_interactive.cli import main

sys.exit(main())
