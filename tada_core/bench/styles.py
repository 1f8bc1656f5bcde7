"""Designer-styles benchmark: the 6 ordered pairs of emoji styles, the photo defaults, a target oracle.

``tada bench styles`` trains, on each ordered pair of ``emoji-apple``, ``emoji-google`` and
``emoji-twitter`` (``tada data download emoji`` builds them), what ``tada train --source S --target T
--backbone efficientnet_lite0 --pretrained --variant V --seed N`` trains, for every variant × seed,
with the standard unsupervised protocol: all source images labelled (less the fixed 10 % held out
for the label-free choices), all target images unlabelled, the last checkpoint's accuracy on all
target images. The **oracle** row trains ``source_only`` on the target's own labels (source =
target) with the same recipe: the ceiling of what the features and the head can do there.

Each pair is :func:`tada_core.bench.photos.bench_photos` (encode once, then every run on the
cache). The result holds every run, the table (pair × variant: mean ± sd over seeds), the 6-pair
average per variant and seed, the gains over source-only, and the label-free grades of every
adapted run (``selection``: regret of ``best``; ``estimation``: the estimate's error at the last
and the selected checkpoint, :mod:`tada_core.bench.label_free`).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from tada_core.bench.accuracy import label_free_summary
from tada_core.bench.photos import bench_photos
from tada_core.data.emoji import BENCH_STYLES, DOMAIN_PREFIX

PAIRS = tuple(f"{DOMAIN_PREFIX}{a}>{DOMAIN_PREFIX}{b}" for a, b in itertools.permutations(BENCH_STYLES, 2))
ORACLE = "oracle"


def parse_pair(text: str) -> tuple[str, str]:
    source, _, target = text.partition(">")
    return source.strip(), target.strip()


def bench_styles(
    *,
    pairs: Sequence[str] = PAIRS,
    variants: Sequence[str] = ("source_only", "dann", "tada"),
    seeds: int = 3,
    oracle: bool = True,
    settings: dict | None = None,
    callbacks: Callable[[], Sequence] = tuple,
    on_result: Callable[[dict], None] | None = None,
) -> dict:
    """Every pair × variant × seed (and the oracle per pair), one after the other.

    Args:
        pairs: ``"SOURCE>TARGET"`` domain names.
        settings: config values by dotted key over the photo defaults (``{"train.iters": 500}``).
        on_result: called with each run's record as soon as it finishes.
    """
    started = time.time()
    settings = {"train.localiser": False, **(settings or {})}  # the localiser does not change accuracy
    runs: list[dict] = []

    def keep(record: dict) -> None:
        runs.append(record)
        if on_result is not None:
            on_result(record)

    oracles: dict[str, float] = {}
    memo: dict = {}  # each style is encoded once, for all its pairs
    for pair in pairs:
        source, target = parse_pair(pair)
        bench_photos(
            source=source,
            target=target,
            variants=variants,
            seeds=seeds,
            settings=settings,
            callbacks=callbacks,
            on_result=lambda r: keep({**r, "pair": f"{r['source']}>{r['target']}"}),
            memo=memo,
        )
        if oracle and target not in oracles:
            ceiling = bench_photos(
                source=target,
                target=target,
                variants=("source_only",),
                seeds=seeds,
                settings=settings,
                callbacks=callbacks,
                on_result=lambda r, pair=pair: keep({**r, "pair": pair, "variant": ORACLE}),
                memo=memo,
            )
            oracles[target] = ceiling["table"]["source_only"]["mean"]
    return {
        "pairs": list(pairs),
        "variants": list(variants),
        "seeds": seeds,
        "settings": settings,
        "threads": torch.get_num_threads(),
        "minutes": round((time.time() - started) / 60, 1),
        **summarise(runs, list(variants) + ([ORACLE] if oracle else [])),
        **label_free_summary([r for r in runs if r["variant"] != ORACLE]),
        "runs": runs,
    }


def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 2),
        "sd": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "runs": values,
    }


def summarise(runs: list[dict], variants: list[str]) -> dict:
    """``table`` (pair → variant → mean ± sd), ``average`` (variant → per-seed 6-pair mean and their
    mean ± sd) and ``gain`` (each adaptive variant minus source_only: average and worst pair)."""
    pairs = list(dict.fromkeys(r["pair"] for r in runs))
    table: dict[str, dict] = {}
    for pair in pairs:
        table[pair] = {}
        for variant in variants:
            accs = [r["target_accuracy"] for r in runs if r["pair"] == pair and r["variant"] == variant]
            if accs:
                table[pair][variant] = _mean_sd(accs)
    average: dict[str, dict] = {}
    for variant in variants:
        by_seed: dict[int, list[float]] = {}
        for r in runs:
            if r["variant"] == variant:
                by_seed.setdefault(r["seed"], []).append(r["target_accuracy"])
        complete = [statistics.fmean(v) for _, v in sorted(by_seed.items()) if len(v) == len(pairs)]
        if complete:
            average[variant] = _mean_sd([round(v, 2) for v in complete])
    gain: dict[str, dict] = {}
    base = "source_only"
    for variant in variants:
        if variant in (base, ORACLE) or base not in average or variant not in average:
            continue
        per_pair = {
            p: round(table[p][variant]["mean"] - table[p][base]["mean"], 2)
            for p in pairs
            if variant in table[p] and base in table[p]
        }
        per_seed = [round(a - b, 2) for a, b in zip(average[variant]["runs"], average[base]["runs"], strict=False)]
        gain[variant] = {
            "average": round(average[variant]["mean"] - average[base]["mean"], 2),
            "per_seed": per_seed,
            "worst_pair": min(per_pair.values()) if per_pair else None,
            "per_pair": per_pair,
        }
    return {"table": table, "average": average, "gain": gain}


def table_lines(result: dict) -> list[str]:
    """The result as a Markdown table: pairs as rows, variants as columns, the average last."""
    variants = [v for v in (*result["variants"], ORACLE) if any(v in row for row in result["table"].values())]
    lines = ["| pair | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for pair, row in result["table"].items():
        cells = [f"{row[v]['mean']:.1f} ± {row[v]['sd']:.1f}" if v in row else "–" for v in variants]
        lines.append(f"| {pair.replace(DOMAIN_PREFIX, '').replace('>', ' → ')} | " + " | ".join(cells) + " |")
    avg = result["average"]
    cells = [f"**{avg[v]['mean']:.1f} ± {avg[v]['sd']:.1f}**" if v in avg else "–" for v in variants]
    lines.append("| **average** | " + " | ".join(cells) + " |")
    return lines
