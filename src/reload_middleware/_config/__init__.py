"""Options and environment, validated with clear errors.

Every option is declared once, as a field of ``Config``: its type (how the environment spells it,
both ways), default, check, ``RELOAD_MIDDLEWARE_*`` variable, command-line flags and help. The rest
is derived from that declaration: ``OPTIONS``, the resolution below, the command line's options
(``_cli/serve.py``), the middlewares' ``Args:`` (``docstring_args``) and the README's table
(``options_table``). ``Options``, the keyword arguments' static type, is the one copy: mypy needs
it spelled out, and a test holds it equal to the declaration.

An option resolves the same way for both middlewares: an explicit keyword argument wins, then the
environment variable, then the default. An error names what the user actually set: the keyword
(``drain_timeout=-1``) or the variable (``RELOAD_MIDDLEWARE_DRAIN_TIMEOUT='-1'``).
"""

from __future__ import annotations

import sys

from .declaration import ENV_PREFIX, FLAG, TEMPLATE_GLOBS, UNSET, Cli, Option, Unset, parse_flag
from .options import OPTIONS, Config, Options, declaration, is_enabled

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = [
    "ENV_PREFIX",
    "FLAG",
    "OPTIONS",
    "TEMPLATE_GLOBS",
    "UNSET",
    "Cli",
    "Config",
    "Option",
    "Options",
    "Unpack",
    "Unset",
    "declaration",
    "is_enabled",
    "parse_flag",
]
