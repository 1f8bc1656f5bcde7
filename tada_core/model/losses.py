"""The loss terms of eq. 9, as small named functions.

    C = L_y + γ·L_h − λ·(L_g + L_l)

The min-max of eq. 10 is realised with gradient reversal layers in front of every discriminator,
so the quantity that is back-propagated is ``L_y + γ·L_h + L_g + L_l``: the discriminators
descend on their BCE while the feature extractor receives −λ_p times that gradient.
Domain labels: source = 1, target = 0. Rows ``[:n_source]`` of every batch are source.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def domain_labels(n_source: int, n_total: int, device: torch.device | None = None) -> torch.Tensor:
    """Float labels (n_total,): 1 for the first ``n_source`` rows (source), 0 after (target)."""
    labels = torch.zeros(n_total, device=device)
    labels[:n_source] = 1.0
    return labels


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_y: mean cross-entropy of the source rows. logits (n_s, C), labels (n_s,)."""
    return F.cross_entropy(logits, labels)


def attentive_entropy(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L_h = mean_i m_i · Σ_j −p_ij log p_ij (natural log) over all rows. logits (B, C), m (B,)."""
    log_p = F.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)  # (B,)
    return (weights * entropy).mean()


def pseudo_label_loss(target_logits: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """L_p: mean cross-entropy over the target rows with a pseudo-label (``pseudo`` ≥ 0; the rest,
    −100, are left out); 0 when no row of the batch has one. logits (B, C), pseudo (B,)."""
    given = pseudo >= 0
    if not given.any():
        return target_logits.sum() * 0.0  # keeps the graph (DistributedDataParallel) and the log
    return F.cross_entropy(target_logits[given], pseudo[given])


def global_adversarial_loss(domain_logits: torch.Tensor, n_source: int) -> torch.Tensor:
    """L_g: mean BCE of the global discriminator over source ∪ target. domain_logits (B,)."""
    target = domain_labels(n_source, domain_logits.shape[0], domain_logits.device)
    return F.binary_cross_entropy_with_logits(domain_logits, target)


def local_adversarial_loss(region_logits: torch.Tensor, n_source: int) -> torch.Tensor:
    """L_l: BCE averaged over the K regions and over source ∪ target. region_logits (B, K)."""
    target = domain_labels(n_source, region_logits.shape[0], region_logits.device)
    return F.binary_cross_entropy_with_logits(region_logits, target[:, None].expand_as(region_logits))
