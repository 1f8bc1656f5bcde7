"""One optimisation step and the optimiser with the recipe of METHOD.md.

SGD with momentum 0.9, Nesterov, weight decay 5e-4; lr_p = lr_0·(1 + α·p)^(−β) with the
pretrained backbone at 0.1× (its parameter group carries ``lr_mult``). On CUDA the step can run
under automatic mixed precision (bf16, or fp16 with a gradient scaler).
"""

from __future__ import annotations

import torch

from tada_core.config import TADAConfig
from tada_core.model import TADAModel


def unwrap(model: torch.nn.Module) -> TADAModel:
    """The :class:`TADAModel` inside ``torch.compile``, DistributedDataParallel and/or
    :class:`~tada_core.training.feature_cache.FrozenBackboneHead` wrappers."""
    model = getattr(model, "_orig_mod", model)
    while not isinstance(model, TADAModel) and hasattr(model, "module"):
        model = model.module
    return model


def lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """lr_p / lr_0 = (1 + α·p)^(−β)."""
    return (1.0 + alpha * progress) ** (-beta)


def build_optimizer(model: TADAModel, config: TADAConfig) -> torch.optim.SGD:
    opt = config.train.optim
    groups = model.parameter_groups(opt.lr, opt.backbone_lr_mult, opt.discriminator_lr_mult)
    return torch.optim.SGD(
        groups, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay, nesterov=opt.nesterov, foreach=True
    )


def amp_settings(device: str, enabled: bool) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """(autocast dtype, scaler): bf16 where the GPU supports it, else fp16 with a scaler; off on CPU."""
    if not enabled or not device.startswith("cuda"):
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_source: tuple[torch.Tensor, torch.Tensor],
    batch_target: tuple[torch.Tensor, torch.Tensor],
    progress: float,
    lr: float,
    *,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One SGD step on a source and a target batch; returns the loss terms as floats."""
    (x_s, y_s), (x_t, y_t) = batch_source, batch_target
    core = unwrap(model)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    model.train()
    x = torch.cat([x_s, x_t])
    with torch.autocast(device_type=x.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        # one call (also under DistributedDataParallel); without joint_forward BatchNorm sees each domain alone
        out = model(x, split=None if core.config.train.joint_forward else len(x_s))
        # the target's labels reach the loss only as pseudo-labels: cache_run_data puts them in
        # place of the target's own (training/pseudo_labels.py), and only with pseudo_weight > 0
        pseudo = torch.as_tensor(y_t, device=x.device) if core.config.pseudo_weight > 0 else None
        losses = core.losses(out, y_s, progress=progress, y_target=pseudo)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        losses["total"].backward()
        optimizer.step()
    logs = {name: float(value.detach()) for name, value in losses.items()}
    logs["source_accuracy_batch"] = 100.0 * float((out.logits[: len(y_s)].argmax(1) == y_s).float().mean())
    logs["lr"] = lr
    logs["grl"] = core.grl.coeff
    return logs
