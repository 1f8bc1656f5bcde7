"""The Features tab's summary under the t-SNE: per checkpoint, the headline alignment measure with
its interval and what it means, the measures beside it, and the global A-distance in both
BatchNorm views, each labelled."""

from __future__ import annotations

import numpy as np

from tada_core.explain.alignment import caption


def _value(measure: dict | None, percent: bool = False) -> str:
    if measure is None:
        return "—"
    low, high = measure["interval"]
    if percent:
        return f"{measure['value']:.1%} ({low:.1%}–{high:.1%})"
    return f"{measure['value']:.3f} ({low:.3f}–{high:.3f})"


def _find(summary: dict, name: str) -> dict | None:
    return next((m for m in summary["measures"] if m["measure"] == name), None)


def _accuracy(summary: dict) -> str:
    measured = _value(_find(summary, "target accuracy"), percent=True)
    estimate = summary.get("estimated_target_accuracy")
    if estimate is None:
        return measured
    low, high = estimate["interval"]
    return f"{measured}; estimated {estimate['value']:.1%} ({low:.1%}–{high:.1%}) on {estimate['on']}"


def summary_markdown(summaries: list[dict]) -> str:
    """Markdown: one row per checkpoint, then what each column means."""
    headline = summaries[0]["alignment"]
    views = summaries[0]["a_distance_views"]
    lines = [
        f"| checkpoint | variant | **{headline['measure']}** (95 %) | source-neighbour accuracy | "
        f"agreement with the model | A-distance, {' / '.join(views)} BatchNorm statistics | "
        "gap per region (mean, max) | target accuracy | points |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        a_views = " / ".join(f"{v['value']:.3f}" for v in s["a_distance_views"].values())
        lines.append(
            f"| {s['checkpoint']} | {s['variant']} | **{_value(s['alignment'])}** | "
            f"{_value(_find(s, 'source-neighbour accuracy'), percent=True)} | "
            f"{_value(_find(s, 'source-neighbour agreement with the model'), percent=True)} | {a_views} | "
            f"{s['gap']['a_distance_mean']:.3f}, {np.max(s['gap']['a_distance']):.3f} | {_accuracy(s)} | "
            f"{s['n_source']} + {s['n_target']} |"
        )
    lines += [
        f"\n{caption(headline)}",
        "\n**Source-neighbour accuracy**: the share of target images that the vote of their 10 nearest source "
        "images (in the model's features) puts in their class; **agreement**: the share where that vote is the "
        "model's prediction (no labels needed). Intervals: 95 % Wilson.",
        "\nThe global proxy A-distance d_A = 2(1 − 2ε) of the whole domains, mean over 5 splits: 0 when a classifier cannot tell "
        "the domains apart, 2 when it always can. With each domain's own BatchNorm statistics (what training with "
        "separate forwards saw) the domains overlap for every such model, adapted or not, so it does not say "
        "whether the *classes* line up; with the running statistics it is what one uploaded image gets. The gap map "
        "asks it per region: one linear probe per region fitted on half of the sample's frozen region features fᵏ, "
        "its error ε measured on the other half.",
    ]
    per_domain = [s["checkpoint"] for s in summaries if s["bn_statistics"] == "domain"]
    if per_domain:
        lines.append(
            f"\nMeasures, t-SNE and gap map with each domain's own BatchNorm statistics for {', '.join(per_domain)}: "
            "trained with source and target in separate forwards, the model normalised each domain with its own "
            "statistics, and the features are computed the same way here."
        )
    return "\n".join(lines)
