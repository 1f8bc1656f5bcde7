"""The TADA network and its ablation variants, switched by ``TADAConfig.variant``.

    x ─G_f─► f (B,C,H,W) ─► region discriminators G_d^k(GRL(f^k)) ─► w = 1 − H₂(d̂^k)
                         h = (1 + w)·f ─► pool or flatten ─► G_b ─► z ─► G_y ─► logits
                                                        └─► G_d(GRL(z)) ─► m = 1 + H₂(d̂)

Example:
    >>> model = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="tada"))
    >>> out = model(torch.cat([x_s, x_t]), split=len(x_s))  # BatchNorm statistics per domain
    >>> losses = model.losses(out, y_s, progress=0.3)
    >>> losses["total"].backward()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from tada_core.config import TADAConfig
from tada_core.model import losses as L
from tada_core.model.attention import DomainDiscriminator, RegionDiscriminators, global_attention, local_attention
from tada_core.model.backbones import backbone_spec, build_backbone
from tada_core.model.grl import GradientReversal, grl_coefficient


class TADAOutput(NamedTuple):
    """What :class:`TADAModel` returns, in training and evaluation alike.

    Attributes:
        logits: (B, C) class scores.
        features: (B, D) bottleneck features z (what t-SNE plots).
        local_attention: (B, H, W) w^k ∈ [0, 1]; None for variants without local attention.
        local_domain_logits: (B, H·W) region discriminator logits on f; None when absent.
        global_attention: (B,) m ∈ [1, 2]; None for ``source_only`` (no discriminator).
        domain_logits: (B,) global discriminator logit (source = 1); None for ``source_only``.
        attended_domain_logits: (B, H·W) region logits on h, only with ``local_input="attended"``.
    """

    logits: torch.Tensor
    features: torch.Tensor
    local_attention: torch.Tensor | None
    local_domain_logits: torch.Tensor | None
    global_attention: torch.Tensor | None
    domain_logits: torch.Tensor | None
    attended_domain_logits: torch.Tensor | None = None


class TADAModel(nn.Module):
    """Backbone, local attention, bottleneck, classifier and discriminators of one variant.

    Args:
        config: the :class:`TADAConfig`; ``config.variant`` decides which parts exist.
    """

    def __init__(self, config: TADAConfig) -> None:
        super().__init__()
        self.config = config
        spec = backbone_spec(config.backbone)
        self.image_size = config.image_size or spec.default_image_size
        self.grid = spec.grid_size(self.image_size)
        self.head = config.head or spec.default_head
        self.backbone = build_backbone(config.backbone, config.pretrained)
        self.grl = GradientReversal(0.0)
        self.region_discriminators = (
            RegionDiscriminators(self.grid * self.grid, spec.out_channels, config.local_hidden, config.dropout)
            if config.uses_local
            else None
        )
        self.bottleneck = nn.Sequential(
            nn.Linear(spec.out_channels * (self.grid**2 if self.head == "flatten" else 1), config.bottleneck_dim),
            nn.BatchNorm1d(config.bottleneck_dim),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(config.bottleneck_dim, config.num_classes)
        self.domain_discriminator = (
            DomainDiscriminator(config.bottleneck_dim, config.global_hidden, config.dropout, config.discriminator_bn)
            if config.uses_global_adversary
            else None
        )

    def forward(self, x: torch.Tensor, split: int | None = None) -> TADAOutput:
        """Run the network on ``x`` (B, 3, S, S).

        Args:
            split: when given, rows ``[:split]`` and ``[split:]`` (source and target) go through the
                network in two passes, so BatchNorm normalises each domain with its own batch
                statistics in training; the outputs are concatenated in the same row order.
        """
        return self._per_domain(lambda part: self._forward_map(self.backbone(part)), x, split)

    def cache_parts(self) -> tuple[nn.Module, nn.Module | None]:
        """``(encoder, upper)`` of frozen-backbone training: the encoder makes the cached maps, the
        upper part (None: nothing) turns them into f and trains (``train.tune_blocks`` last stages).
        Views over the backbone's own layers, made on demand (never registered twice)."""
        tune = self.config.train.tune_blocks
        if not tune:
            return self.backbone, None
        return self.backbone.split(tune)

    def forward_cached(self, maps: torch.Tensor, split: int | None = None) -> TADAOutput:
        """Everything after the cache encoder of :meth:`cache_parts`, from its maps (B, C', H, W);
        ``split`` as in :meth:`forward` (the trained upper stages' BatchNorm per domain too)."""
        _, upper = self.cache_parts()
        if upper is None:
            return self.forward_map(maps, split)
        return self._per_domain(lambda part: self._forward_map(upper(part)), maps, split)

    def forward_map(self, f: torch.Tensor, split: int | None = None) -> TADAOutput:
        """Everything after the backbone, from its map f (B, C, H, W) (a cached one in frozen mode);
        ``split`` as in :meth:`forward`."""
        return self._per_domain(self._forward_map, f, split)

    @staticmethod
    def _per_domain(run: Callable[[torch.Tensor], TADAOutput], x: torch.Tensor, split: int | None) -> TADAOutput:
        """``run(x)``, or ``run`` on rows ``[:split]`` and ``[split:]`` separately, concatenated."""
        if split is not None and 0 < split < x.shape[0]:
            parts = (run(x[:split]), run(x[split:]))
            return TADAOutput(*(None if a is None else torch.cat([a, b]) for a, b in zip(*parts, strict=True)))
        return run(x)

    def _forward_map(self, f: torch.Tensor) -> TADAOutput:
        cfg = self.config
        b, _, height, width = f.shape
        w = region_logits = attended_logits = None
        if (self.region_discriminators is not None or self.head == "flatten") and (height, width) != (
            self.grid,
            self.grid,
        ):
            raise ValueError(
                f"input gives a {height}×{width} feature map but the model was built for "
                f"{self.grid}×{self.grid}; resize images to {self.image_size}×{self.image_size}"
            )
        if self.region_discriminators is not None:
            region_logits = self.region_discriminators(self.grl(f.flatten(2).transpose(1, 2)))  # (B, K)
            w = local_attention(region_logits)  # (B, K)
            w_used = w.detach() if cfg.detach_attention else w
            h = f * (1.0 + w_used.view(b, 1, height, width))  # residual attention, eq. 4
            if cfg.local_input == "attended":
                attended_logits = self.region_discriminators(self.grl(h.flatten(2).transpose(1, 2)))
            w = w.view(b, height, width)
        else:
            h = f
        pooled = h.flatten(1) if self.head == "flatten" else h.mean(dim=(2, 3))  # (B, C·H·W) or (B, C)
        z = self.bottleneck(pooled)  # (B, D)
        logits = self.classifier(z)  # (B, C)
        domain_logits = m = None
        if self.domain_discriminator is not None:
            domain_logits = self.domain_discriminator(self.grl(z))  # (B,)
            m = global_attention(domain_logits)
        return TADAOutput(logits, z, w, region_logits, m, domain_logits, attended_logits)

    def losses(
        self, out: TADAOutput, y_source: torch.Tensor, progress: float, y_target: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The loss terms of this variant plus ``total`` (what to call ``backward()`` on).

        Sets the GRL coefficient to λ_p = trade_off · (2 / (1 + exp(−α·p)) − 1) for this step;
        it is read when the gradient flows back. The first ``len(y_source)`` rows of ``out`` are
        source, the rest target.

        Returns:
            ``classification`` (L_y) always; ``global_adversarial`` (L_g) unless source_only;
            ``local_adversarial`` (L_l) for tada_local and tada; ``entropy`` (attentive L_h)
            for tada_global and tada; ``pseudo_label`` (L_p, the cross-entropy on the target
            rows whose ``y_target`` is a pseudo-label, not ``IGNORE``) for every adaptive variant
            when ``config.pseudo_weight`` > 0 and ``y_target`` is given; ``total`` = L_y + γ·L_h +
            L_g + L_l + pseudo_weight·L_p (γ ramped up with the GRL schedule when
            ``config.entropy_ramp``).
        """
        cfg = self.config
        n_source = len(y_source)
        self.grl.coeff = grl_coefficient(progress, cfg.grl_alpha, cfg.trade_off)
        terms = {"classification": L.classification_loss(out.logits[:n_source], y_source)}
        if cfg.uses_global_adversary:
            terms["global_adversarial"] = L.global_adversarial_loss(out.domain_logits, n_source)
        if cfg.uses_local:
            region_logits = out.attended_domain_logits if cfg.local_input == "attended" else out.local_domain_logits
            terms["local_adversarial"] = L.local_adversarial_loss(region_logits, n_source)
        if cfg.uses_attentive_entropy:
            m = out.global_attention.detach() if cfg.detach_attention else out.global_attention
            terms["entropy"] = L.attentive_entropy(out.logits, m)
        if cfg.pseudo_weight > 0 and cfg.variant != "source_only" and y_target is not None:
            terms["pseudo_label"] = L.pseudo_label_loss(out.logits[n_source:], y_target)
        # γ_p: γ, or γ·(2 / (1 + exp(−α·p)) − 1) with entropy_ramp (the GRL schedule, from 0 to ≈ γ)
        gamma = cfg.gamma * grl_coefficient(progress, cfg.grl_alpha) if cfg.entropy_ramp else cfg.gamma
        total = terms["classification"]
        for name, value in terms.items():
            if name != "classification":
                weight = {"entropy": gamma, "pseudo_label": cfg.pseudo_weight}.get(name, 1.0)
                total = total + weight * value
        terms["total"] = total
        return terms

    def parameter_groups(
        self, lr: float, backbone_lr_mult: float = 0.1, discriminator_lr_mult: float = 1.0
    ) -> list[dict]:
        """SGD parameter groups: the backbone (at ``lr·backbone_lr_mult`` when pretrained), the
        discriminators (at ``lr·discriminator_lr_mult``) and the bottleneck and classifier (at ``lr``)."""
        backbone = list(self.backbone.parameters())
        discriminators = [
            p
            for module in (self.region_discriminators, self.domain_discriminator)
            if module
            for p in module.parameters()
        ]
        taken = {id(p) for p in backbone + discriminators}
        head = [p for p in self.parameters() if id(p) not in taken]
        mults = (backbone_lr_mult if self.config.pretrained else 1.0, discriminator_lr_mult, 1.0)
        return [
            {"params": params, "lr": lr * mult, "lr_mult": mult}
            for params, mult in zip((backbone, discriminators, head), mults, strict=True)
            if params
        ]


def build_model(config: TADAConfig) -> TADAModel:
    """Build the :class:`TADAModel` described by ``config``."""
    return TADAModel(config)
