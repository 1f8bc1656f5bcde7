"""Render `tada bench accuracy --json` output as a Markdown table (for docs/RESULTS.md and the README).

Usage: python scripts/results_table.py docs/bench/accuracy_digits.json [more.json …]
"""

from __future__ import annotations

import json
import sys


def table(result: dict) -> str:
    pairs = list(next(iter(result["table"].values())).keys())
    lines = ["| variant | " + " | ".join(pairs) + " | average |", "|---" * (len(pairs) + 2) + "|"]
    for variant, row in result["table"].items():
        cells = " | ".join(f"{row[p]['mean']:.1f} ± {row[p]['std']:.1f}" for p in pairs)
        lines.append(f"| `{variant}` | {cells} | **{result['average'][variant]:.1f}** |")
    settings = ", ".join(f"{k}={v}" for k, v in result["settings"].items())
    lines.append("")
    lines.append(f"{result['seeds']} seeds, {settings}; {result['minutes']} min; checks: {result['checks']}")
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as handle:
            print(table(json.load(handle)))
        print()
