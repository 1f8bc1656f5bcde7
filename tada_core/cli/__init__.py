"""The ``tada`` command line: ``tada <command> …`` or ``python -m tada_core <command> …``.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module adds a
parser whose ``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code.
A :class:`~tada_core.errors.TadaError` is printed as one line on stderr (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from tada_core.errors import DataWarning, TadaError

COMMANDS = ("train", "eval", "estimate", "attention", "tsne", "bench", "data", "app")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line plus a hint, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tada", description="TADA Studio: transferable attention for domain adaptation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"tada_core.cli.{name}")
        module.register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Data warnings (e.g. unreadable images skipped) as one line; others as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"tada: warning: {message}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=file or sys.stderr, end="")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return int(args.func(args) or 0)
    except TadaError as err:
        print(f"tada {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tada {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
