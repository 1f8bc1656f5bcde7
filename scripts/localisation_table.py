"""Markdown tables from ``tada bench localisation --save`` JSON files (for docs/RESULTS.md).

    python scripts/localisation_table.py docs/bench/localisation_*.json

One row per pair and mode: AUC / AUC without clean neighbours / pointing of each view on the 7×7
cells, the shift view also on its finer grids, and the baselines of the same run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VIEWS = ("shift", "gap", "attention")
BASELINES = ("gradcam", "gradcampp", "occlusion", "centre", "sobel")


def _cell(metrics: dict | None, pointing: bool = True) -> str:
    if not metrics or "auc" not in metrics:
        return "–"
    text = f"{metrics['auc']:.2f}"
    return text + (f" / {metrics['pointing']:.2f}" if pointing and "pointing" in metrics else "")


def rows(records: list[dict]) -> list[str]:
    header = (
        "| pair | mode | shift 7×7 | shift 14×14 | shift fine | gap | attention w | " + " | ".join(BASELINES) + " |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for record in records:
        base = record.get("baselines", {})
        for mode, run in record["modes"].items():
            views = run["views"]
            shift = views.get("shift", {})
            fine = [k for k in shift if k not in ("g7", "g14")]
            cells = [
                _cell(shift.get("g7")),
                _cell(shift.get("g14")),
                (f"{fine[0][1:]}²: " + _cell(shift[fine[0]])) if fine else "–",
                _cell(views.get("gap", {}).get("g7")),
                _cell(views.get("attention", {}).get("g7")),
                *(_cell(base.get(b, {}).get("g7")) for b in BASELINES),
            ]
            lines.append(f"| {record['pair']} | {mode} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    records = [r for f in parser.parse_args().files for r in json.loads(f.read_text())["pairs"]]
    print("\n".join(rows(records)))


if __name__ == "__main__":
    main()
