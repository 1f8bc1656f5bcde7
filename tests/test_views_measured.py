"""Every view's caption quotes the localisation benchmark that is in the repository, not a number typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from tada_core.bench.localisation import measured_captions
from tada_core.explain.views import MEASURED, VIEWS

BENCH = Path(__file__).resolve().parents[1] / "docs" / "bench"


def test_captions_match_the_benchmark_json():
    records = [
        r
        for path in sorted(BENCH.glob("localisation_photos_frozen_*.json"))
        for r in json.loads(path.read_text())["pairs"]
    ]
    assert {r["kind"] for r in records} >= {"digits"} and len(records) >= 4
    assert MEASURED == measured_captions(records)
    assert set(MEASURED) == set(VIEWS)
    assert VIEWS["shift"].meaning.endswith(f"({MEASURED['shift']})")


def test_captions_are_computed_over_the_frozen_shift_pairs_only():
    def record(pair, kind, control, mode, auc):
        return {
            "pair": pair,
            "kind": kind,
            "control": control,
            "modes": {mode: {"views": {"shift": {"g7": {"auc": auc}}}}},
        }

    records = [
        record("digits", "digits", False, "scratch", 0.999),
        record("a", "text", False, "frozen", 0.9),
        record("b", "dust", False, "frozen", 0.6),
        record("a-control", "text", True, "frozen", 0.3),  # controls left out
        record("a", "text", False, "finetune", 0.1),  # fine-tuned runs left out
    ]
    assert measured_captions(records) == {
        "shift": "benchmark cell AUC 0.60–0.90 on 2 planted-artefact photo pairs, 1.00 on digits"
    }
