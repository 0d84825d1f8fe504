"""``python -m reload_middleware``: see ``_cli``."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
