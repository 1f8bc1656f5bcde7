"""What a visitor may read: messages with the server's paths taken out.

Errors from ``tada_core`` name files by their full path, which is what a command-line user needs
and what a hosted demo must not show (it tells a stranger how the server is laid out). Every
absolute path in a message meant for a visitor becomes ``…/<its last part>``.

    >>> redact_paths("the target '/srv/tada/visitors/ab12/data/shapes' has 8 images")
    "the target '…/shapes' has 8 images"
"""

from __future__ import annotations

import re

_PART = r"[^\s'\"`,;:()<>\[\]{}|/\\]+"
_ABSOLUTE = re.compile(rf"(?<![\w.:/\\~])(?:~|[A-Za-z]:)?[/\\](?:{_PART}[/\\])+({_PART})?")


def redact_paths(text: str) -> str:
    """``text`` with every absolute path (POSIX, ``~/…`` or ``C:\\…``) shortened to ``…/<last part>``."""
    return _ABSOLUTE.sub(lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], text)
