"""BatchNorm statistics per domain, as the model saw each domain in training.

With the default recipe (``train.joint_forward=false``) source and target go through the network
in separate forwards, so every BatchNorm layer normalises each domain with its own batch
statistics while training: the adversarial game aligns features *after* that per-domain
normalisation. Its running statistics, used in eval mode, are one moving average over both
domains. Features computed with them are not the features the discriminators saw: on the shipped
mnist → mnistm models the bottleneck's proxy A-distance is 1.83 (TADA) with the running statistics
and 0.00 with each domain's own (docs/RESULTS.md). The analysis views (t-SNE, A-distance, the domain
gap per region) therefore re-estimate the statistics on each domain's sample (AdaBN, Li et al.
2016), on a copy of the model, when the checkpoint was trained that way
(:func:`~tada_core.training.batchnorm.with_domain_statistics`, re-exported here).
"""

from __future__ import annotations

from tada_core.config import TADAConfig
from tada_core.training.batchnorm import with_domain_statistics

STATISTICS = ("auto", "running", "domain")
__all__ = ["STATISTICS", "resolve", "trained_per_domain", "with_domain_statistics"]


def trained_per_domain(config: TADAConfig) -> bool:
    """True when training normalised each domain with its own BatchNorm statistics.

    That is the case with separate forwards (``train.joint_forward=false``). With a frozen backbone
    only the layers behind it (the bottleneck's BatchNorm) saw each domain alone; the backbone's
    keep their pretrained statistics (:func:`with_domain_statistics` leaves them alone), so the
    bottleneck features z of each domain are, again, those the global discriminator saw.
    """
    return not config.train.joint_forward


def resolve(statistics: str, config: TADAConfig) -> str:
    """``"running"`` or ``"domain"`` for a requested ``"auto" | "running" | "domain"``."""
    if statistics not in STATISTICS:
        raise ValueError(f"BatchNorm statistics must be one of {', '.join(STATISTICS)}, got {statistics!r}")
    if statistics == "auto":
        return "domain" if trained_per_domain(config) else "running"
    return statistics
