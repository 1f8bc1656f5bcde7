"""Cross-check our ``dann`` against pytorch-adapt's DANN (PyPI ``pytorch-adapt``) on one digits pair.

Both runs use the same network (our LeNet + head + bottleneck as G, our classifier as C, our global
discriminator as D, built from the same seed), the same data streams, batch, budget, SGD recipe,
learning-rate and λ_p schedules, and the same objective L_y + ½·BCE_source + ½·BCE_target (our
L_g is the BCE averaged over source ∪ target). What differs is the implementation: pytorch-adapt's
``DANNHook`` runs source and target through G in two separate forward passes (BatchNorm statistics
per domain), its own gradient reversal layer and loss bookkeeping; ours does the same in one call
(``TADAModel.forward(x, split=n_source)``, the default ``train.joint_forward=false``). Before that
default, ours concatenated both batches and trailed pytorch-adapt by 22 points (docs/RESULTS.md).

pytorch-adapt is not a dependency of TADA Studio; install it beside the project, e.g.

    pip install --no-deps --target /tmp/pa pytorch-adapt torchmetrics==0.9.3 \\
        pytorch-metric-learning==1.6.3 "setuptools<70"
    PYTHONPATH=/tmp/pa OMP_NUM_THREADS=1 python scripts/crosscheck_pytorch_adapt.py \\
        --source mnist --target mnistm --seeds 0 1 2 --json docs/bench/crosscheck_pytorch_adapt.jsonl

Budget and batch default to ``tada train``'s (2,000 steps of 32 + 32).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from torch import nn

from tada_core.config import TADAConfig, TrainConfig
from tada_core.model import build_model
from tada_core.model.grl import grl_coefficient
from tada_core.training.evaluate import evaluate
from tada_core.training.loop import train
from tada_core.training.run_data import load_run_data
from tada_core.training.sampling import BatchStream
from tada_core.training.step import build_optimizer, lr_factor


def pytorch_adapt_dann(config: TADAConfig, eval_every: int) -> list[list[float]]:
    """Train ``config`` (variant dann) with pytorch-adapt's DANNHook; returns [step, target %, source %] rows."""
    from pytorch_adapt.hooks import DANNHook
    from pytorch_adapt.hooks.dann import GradientReversalHook
    from pytorch_adapt.hooks.domain import FeaturesForDomainLossHook
    from pytorch_adapt.weighters import SumWeighter

    tc = config.train
    data = load_run_data(config)
    config = config.replace(num_classes=len(data.class_names))
    torch.manual_seed(tc.seed)
    model = build_model(config)
    if model.head != "flatten":
        raise SystemExit("this cross-check builds G for the flatten head (lenet's default)")
    generator = nn.Sequential(model.backbone, nn.Flatten(1), model.bottleneck)
    models = {"G": generator, "C": model.classifier, "D": model.domain_discriminator}
    optimizer = build_optimizer(model, config)  # the same SGD groups as ours, stepped by the hook
    f_hook = FeaturesForDomainLossHook(use_logits=False)
    grl = GradientReversalHook(weight=0.0, apply_to=f_hook.out_keys)
    weights = {"src_c_loss": 1.0, "src_domain_loss": 0.5, "target_domain_loss": 0.5}
    hook = DANNHook(opts=[optimizer], f_hook=f_hook, gradient_reversal=grl, weighter=SumWeighter(weights=weights))
    streams = [
        BatchStream(d.dataset, tc.batch_size, tc.seed + k, 0, 0, 0, 1, False)
        for k, d in enumerate((data.source, data.target))
    ]
    curve = []
    for step in range(tc.iters):
        progress = step / tc.iters
        for group in optimizer.param_groups:
            group["lr"] = tc.optim.lr * lr_factor(progress, tc.optim.lr_alpha, tc.optim.lr_beta) * group["lr_mult"]
        grl.fn.update_weight(grl_coefficient(progress, config.grl_alpha, config.trade_off))
        (x_s, y_s), (x_t, _) = next(streams[0]), next(streams[1])
        for module in models.values():
            module.train()
        batch = {
            "src_imgs": x_s,
            "src_labels": y_s,
            "target_imgs": x_t,
            "src_domain": torch.zeros(len(x_s)),
            "target_domain": torch.ones(len(x_t)),
        }
        hook({**models, **batch})
        if (step + 1) % eval_every == 0 or step + 1 == tc.iters:
            model.eval()
            target = evaluate(model, data.target_eval.dataset, data.class_names)["accuracy"]
            source = evaluate(model, data.source_eval.dataset, data.class_names)["accuracy"]
            curve.append([step + 1, target, source])
    return curve


def ours(config: TADAConfig) -> list[list[float]]:
    with tempfile.TemporaryDirectory(prefix="tada-crosscheck-") as out:
        config.train.out = out
        result = train(config)
        del result
        with open(f"{out}/metrics.jsonl") as handle:
            rows = [json.loads(line) for line in handle]
    return [[r["step"], r["target_accuracy"], r["source_accuracy"]] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="mnist")
    parser.add_argument("--target", default="mnistm")
    parser.add_argument("--iters", type=int, default=TrainConfig().iters)
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--impl", choices=("both", "ours", "pytorch_adapt"), default="both")
    parser.add_argument("--json", help="append one JSON line per run to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        for impl in ("ours", "pytorch_adapt") if args.impl == "both" else (args.impl,):
            config = TADAConfig(variant="dann")
            tc = config.train
            tc.source, tc.target, tc.iters, tc.batch_size, tc.seed = (
                args.source,
                args.target,
                args.iters,
                args.batch_size,
                seed,
            )
            tc.eval_every = args.eval_every
            started = time.time()
            curve = ours(config) if impl == "ours" else pytorch_adapt_dann(config, args.eval_every)
            row = {
                "impl": impl,
                "source": args.source,
                "target": args.target,
                "seed": seed,
                "iters": args.iters,
                "batch_size": args.batch_size,
                "target_accuracy": curve[-1][1],
                "curve": curve,
                "seconds": round(time.time() - started, 1),
            }
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
