"""The options as people read them, from their declaration: the middlewares' ``Args:`` and the
README's table (a test holds the README equal to it)."""

from __future__ import annotations

import re
import sys
import textwrap

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from .declaration import ENV_PREFIX, Option
from .options import OPTIONS


def _shown_default(declared: Option) -> str:
    shown = declared.shown_default or declared.kind.show(declared.default)
    if declared.cli_default is not None and declared.cli_default != declared.default:  # None: not given
        shown += f" ({declared.kind.show(declared.cli_default)} under the CLI)"
    return shown


def _variable(declared: Option) -> str:
    return f"`{declared.variable}`" + (f" ({declared.kind.note})" if declared.kind.note else "")


def docstring_args(indent: int = 8, width: int = 100) -> str:
    """The ``Args:`` entries of the keyword options (Google style), as lines joined without a final
    newline: ``indent`` spaces before each name, four more before its continuation lines, ``width``
    columns at most."""
    lines = []
    for declared in OPTIONS:
        if declared.keyword:
            text = f"{declared.name}: {declared.help}. Default: {_shown_default(declared)}; from {_variable(declared)}."
            wrapped = textwrap.wrap(
                _CODE_SPAN.sub(_literal, text),
                width,
                initial_indent=" " * indent,
                subsequent_indent=" " * (indent + 4),
                break_long_words=False,  # a long variable name stays whole
                break_on_hyphens=False,
            )
            lines += [line.replace(_UNBREAKABLE, " ") for line in wrapped]
    return "\n".join(lines)


_CODE_SPAN = re.compile(r"`([^`]+)`")
# textwrap breaks at white space only, and this is none to it: a code span stays on one line.
_UNBREAKABLE = "\xa0"


def _literal(span: re.Match[str]) -> str:
    """A Markdown code span as reStructuredText spells it, unbreakable."""
    return f"``{span.group(1).replace(' ', _UNBREAKABLE)}``"


# The table's rows for the arguments that are not options (not in the declaration).
_TABLE_HEAD = ("| option | environment | default | meaning |", "|---|---|---|---|")
_ENABLED_ROW = (
    f"| `enabled` | `{ENV_PREFIX}` | off | `1/true/yes/on` or `0/false/no/off`; anything else is an error. "
    "Off: a pure pass-through (no thread, no admin path, no header); `reloadable` returns the bare app |"
)
_FACTORY_ROW = "| `factory` | | `False` | the import string names a callable returning the app |"
_ENVIRON_ROW = "| `environ` | | `os.environ` | the environment to read (for tests) |"


def _row(*cells: str) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def options_table() -> str:
    """The README's table of options (Markdown, header included, without a final newline)."""
    rows = [*_TABLE_HEAD, _ENABLED_ROW, _FACTORY_ROW]
    for declared in OPTIONS:
        name = f"`{declared.name}`" if declared.keyword else ""
        rows.append(_row(name, _variable(declared), _shown_default(declared), declared.help))
    rows.append(_ENVIRON_ROW)
    return "\n".join(rows)
