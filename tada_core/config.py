"""One configuration tree for model, optimisation and training runs.

CLI flags, YAML files and the app's controls all build a :class:`TADAConfig`; it is saved inside
every checkpoint, so a checkpoint alone is enough to rebuild its model.

Example:
    >>> cfg = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    >>> TADAConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tada_core.errors import ConfigError

VARIANTS = ("source_only", "dann", "tada_local", "tada_global", "tada")
LOCAL_INPUTS = ("features", "attended")
HEADS = ("pool", "flatten")


@dataclass
class OptimConfig:
    """SGD and the annealing schedule of METHOD.md: lr_p = lr · (1 + alpha·p)^(−beta)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    lr_alpha: float = 10.0
    lr_beta: float = 0.75
    backbone_lr_mult: float = 0.1  # applied to a pretrained backbone only
    discriminator_lr_mult: float = 1.0  # region and global discriminators


@dataclass
class TrainConfig:
    """A training run: the two domains, the budget and where results go."""

    source: str = "mnist"
    target: str = "mnistm"
    iters: int = 2000
    batch_size: int = 32  # per domain: B source + B target images each step
    seed: int = 0
    eval_every: int = 500
    eval_max: int | None = None  # evaluate on at most this many images per domain (None: all)
    device: str = "cpu"
    workers: int = 0
    out: str = "runs/latest"
    amp: bool = False
    compile: bool = False
    sync_bn: bool = False
    joint_forward: bool = False  # True: one forward over source + target (BatchNorm statistics shared)
    frozen_backbone: bool = False  # cache the backbone's maps once, train the rest on them (feature_cache.py)
    tune_blocks: int = 0  # with frozen_backbone: the last N backbone stages train on cached maps of those below
    target_unlabelled: bool = False  # read the target without its labels even when it has them
    source_holdout: float = 0.1  # fraction of the source kept out of training: the label-free validation set
    select: str = "estimate"  # how best.safetensors is chosen, without target labels (training/selection.py)
    save_minutes: float = 10.0  # also write last.safetensors this often between evaluations (a crash loses minutes)
    localiser: bool = True  # fit the shift localiser after the last step and store it in the checkpoints
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if isinstance(self.source_holdout, bool) or not 0.0 <= float(self.source_holdout) <= 0.5:
            raise ConfigError(f"train.source_holdout must be a fraction from 0 to 0.5, got {self.source_holdout!r}")
        if (
            isinstance(self.tune_blocks, bool)
            or not isinstance(self.tune_blocks, int)
            or not 0 <= self.tune_blocks <= 3
        ):
            raise ConfigError(
                f"train.tune_blocks must be a whole number of stages from 0 to 3, got {self.tune_blocks!r}"
            )


@dataclass
class TADAConfig:
    """The model and its losses; ``variant`` switches the ablation rows of METHOD.md.

    Args:
        variant: one of ``source_only``, ``dann``, ``tada_local``, ``tada_global``, ``tada``.
        backbone: a name from :func:`tada_core.model.backbones.list_backbones`.
        num_classes: number of classes C.
        pretrained: load ImageNet weights for a torchvision backbone (never downloaded in tests).
        image_size: input side length; ``None`` takes the backbone's default (28 lenet, 224 resnet).
        head: how the attended map h (B, C, H, W) enters the bottleneck G_b: ``pool`` (global
            average, C inputs, the paper's ResNet-50) or ``flatten`` (C·H·W inputs, keeps the spatial
            layout like the digits LeNets of DANN and TLlib). ``None`` takes the backbone's default
            (``flatten`` for lenet, ``pool`` for ResNets); see docs/RESULTS.md for the measurement.
        bottleneck_dim: width of G_b.
        local_hidden: hidden width of each of the K region discriminators.
        global_hidden: hidden width of the global discriminator G_d.
        dropout: dropout inside the discriminators.
        discriminator_bn: BatchNorm after each hidden layer of the global discriminator.
        detach_attention: stop gradients through w and m (the paper is silent; see README).
        local_input: what the region discriminators' loss L_l sees: ``features`` (f, the paper)
            or ``attended`` (h = (1 + w)·f). Attention itself always comes from D^k(f).
        gamma: weight γ of the attentive entropy L_h.
        entropy_ramp: raise γ from 0 with the GRL schedule, γ_p = γ·(2 / (1 + exp(−α·p)) − 1), so
            that the entropy term does not harden the wrong early target predictions.
        pseudo_weight: weight of the class-aware target term of the adaptive variants, the
            cross-entropy of G_y on the target images that have a mutual-nearest-neighbour
            pseudo-label (:mod:`tada_core.training.pseudo_labels`); 0 turns it off (the paper's
            objective). Needs a pretrained, frozen (cached) backbone; the photo defaults set 1.
        trade_off: λ, the maximum GRL coefficient (annealed by the progress schedule).
        grl_alpha: steepness of λ_p = 2 / (1 + exp(−alpha·p)) − 1.
    """

    variant: str = "tada"
    backbone: str = "lenet"
    num_classes: int = 10
    pretrained: bool = False
    image_size: int | None = None
    head: str | None = None
    bottleneck_dim: int = 256
    local_hidden: int = 64
    global_hidden: int = 1024
    dropout: float = 0.0
    discriminator_bn: bool = True
    detach_attention: bool = True
    local_input: str = "features"
    gamma: float = 0.1
    entropy_ramp: bool = False
    pseudo_weight: float = 0.0
    trade_off: float = 1.0
    grl_alpha: float = 10.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.local_input not in LOCAL_INPUTS:
            raise ConfigError(f"local_input must be one of {', '.join(LOCAL_INPUTS)}, not {self.local_input!r}")
        if self.head is not None and self.head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, not {self.head!r}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes}")
        if isinstance(self.train, dict):
            self.train = _build(TrainConfig, self.train, "train")
        if isinstance(self.train.optim, dict):
            self.train.optim = _build(OptimConfig, self.train.optim, "train.optim")
        if self.train.tune_blocks and (self.backbone != "efficientnet_lite0" or not self.train.frozen_backbone):
            raise ConfigError(
                "train.tune_blocks (--tune-blocks) trains the last stages of a frozen, cached efficientnet_lite0; "
                f"it needs --backbone efficientnet_lite0 --pretrained without --fine-tune (got {self.backbone}, "
                f"frozen_backbone={self.train.frozen_backbone})"
            )

        if self.pseudo_weight < 0:
            raise ConfigError(f"pseudo_weight must be 0 (off) or positive, got {self.pseudo_weight}")
        if self.pseudo_weight and not self.train.frozen_backbone:
            raise ConfigError(
                "pseudo_weight (the target pseudo-label term) takes its labels from the cached backbone "
                "features; it needs the frozen cache: --pretrained without --fine-tune, or pseudo_weight: 0"
            )

    # which terms of eq. 9 a variant uses (the table in METHOD.md)
    @property
    def uses_global_adversary(self) -> bool:
        return self.variant != "source_only"

    @property
    def uses_local(self) -> bool:
        return self.variant in ("tada_local", "tada")

    @property
    def uses_attentive_entropy(self) -> bool:
        return self.variant in ("tada_global", "tada")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TADAConfig:
        return _build(cls, data, "config")

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TADAConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass a YAML file written by 'tada train'")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of option names to values")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TADAConfig:
        return dataclasses.replace(self, **changes)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a nested dict, refusing unknown keys with their location."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in {where}; valid: {', '.join(names)}")
    kwargs = dict(data)
    for key in ("train", "optim"):
        if key in kwargs and key in names and isinstance(kwargs[key], dict):
            sub = TrainConfig if key == "train" else OptimConfig
            kwargs[key] = _build(sub, kwargs[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"invalid {where}: {err}") from None
