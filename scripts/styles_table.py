"""Merge the JSON of ``tada bench styles`` runs split over processes and print the Markdown table.

Usage: python scripts/styles_table.py OUT.json PART.json [PART.json ...]

The parts hold disjoint (pair, variant, seed) runs (e.g. three pairs each, one process a core);
OUT.json gets every run with the table, the 6-pair averages, the gains over source-only and the
label-free grades recomputed over all of them (:mod:`tada_core.bench.styles`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tada_core.bench.accuracy import label_free_summary
from tada_core.bench.styles import ORACLE, summarise, table_lines


def main() -> None:
    out, *parts = (Path(p) for p in sys.argv[1:])
    loaded = [json.loads(p.read_text()) for p in parts]
    runs = [run for part in loaded for run in part["runs"]]
    variants = list(dict.fromkeys(v for part in loaded for v in part["variants"]))
    merged = {
        "parts": [str(p) for p in parts],
        "variants": variants,
        "settings": loaded[0].get("settings"),
        "minutes": [part.get("minutes") for part in loaded],
        **summarise(runs, [*variants, ORACLE]),
        **label_free_summary([r for r in runs if r["variant"] != ORACLE]),
        "runs": runs,
    }
    out.write_text(json.dumps(merged, indent=1))
    print("\n".join(table_lines(merged)))
    for variant, gain in merged["gain"].items():
        print(
            f"gain of {variant} over source_only: {gain['average']:+.2f} per seed {gain['per_seed']}, "
            f"per pair {gain['per_pair']}"
        )


if __name__ == "__main__":
    main()
