"""``tada bench scale``: the photo-default pipeline on domains of 1,000 to 20,000 images each.

Each size grows two real image sets to ``n`` images a domain (random crops of 60–100 % of the
side, resized back, and horizontal flips; written as class folders of PNGs), then runs what a
user runs, each command in its own process:

    tada train --source S --target T --backbone efficientnet_lite0 --pretrained --json   (phases)
    tada attention --checkpoint last --image <16 target images> --view shift --json      (first map)
    tada tsne --checkpoint last --source S --target T --json
    tada estimate --checkpoint last --domain T --unlabelled --json

and records the wall time of every command and of the training run's phases (encode, steps,
calibrate, localiser, …: ``phases`` in ``tada train --json``) and each process's peak resident
memory (``wait4``'s ``ru_maxrss``: the process and the children it waited for). The grown images
are written under ``--work`` and removed after each size unless ``--keep``.

    >>> result = bench_scale([1000, 5000], work=Path("/tmp/scale"))
    >>> result["sizes"][0]["commands"]["train"]["seconds"]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from tada_core.data import IMAGENET_NORM, load_domain
from tada_core.errors import DataError

SIZES = (1000, 5000, 20000)
ATTENTION_IMAGES = 16
GROWN_SIDE = 64  # the emoji styles' own size; photo crops are written at this side too


def base_images(domain: str, data_root: str | None = None) -> tuple[list, list[str], list[int]]:
    """``(images, class_names, labels)`` of a labelled domain: file paths (a folder of class folders)
    or uint8 arrays (H, W, 3) (a built-in domain held in memory, such as the emoji styles)."""
    loaded = load_domain(
        domain, train=False, labels="require", data_root=data_root, image_size=GROWN_SIDE, norm=IMAGENET_NORM
    )
    dataset = loaded.dataset
    while not hasattr(dataset, "paths") and not hasattr(dataset, "images") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    if hasattr(dataset, "paths"):
        images = list(dataset.paths)
    elif hasattr(dataset, "images") and getattr(dataset.images, "ndim", 0) == 4 and dataset.images.shape[-1] == 3:
        images = list(dataset.images)
    else:
        raise DataError(f"'{domain}' is not a set of colour images; give a folder of class folders or an emoji style")
    return images, list(loaded.class_names), [int(y) for y in loaded.labels]


def _open(image) -> Image.Image:
    return Image.open(image).convert("RGB") if isinstance(image, str) else Image.fromarray(image).convert("RGB")


def grow(paths: Sequence, names: Sequence[str], labels: Sequence[int], n: int, out: Path, seed: int) -> Path:
    """Write ``n`` images to ``out/<class>/NNNNNN.png``: image ``i`` is a random crop (60–100 % of the
    side, anywhere), resized to 64 px and flipped with probability ½, of base image ``i mod len``."""
    rng = random.Random(seed)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % len(paths)
        with _open(paths[k]) as image:
            side = min(image.size)
            crop = max(8, round(side * rng.uniform(0.6, 1.0)))
            x, y = rng.randint(0, image.size[0] - crop), rng.randint(0, image.size[1] - crop)
            part = image.crop((x, y, x + crop, y + crop)).resize((GROWN_SIDE, GROWN_SIDE), Image.BILINEAR)
            if rng.random() < 0.5:
                part = part.transpose(Image.FLIP_LEFT_RIGHT)
            part.save(out / names[labels[k]] / f"{i:06d}.png")
    return out


def timed(command: Sequence[str], log: Path) -> dict:
    """Run ``command``; ``{"seconds", "peak_rss_mb", "returncode", "json"}`` (stdout parsed as JSON
    when it is; stdout and stderr go to ``log``.out/.err)."""
    started = time.perf_counter()
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        process = subprocess.Popen(list(command), stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    text = log.with_suffix(".out").read_text()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "returncode": process.returncode,
        "json": parsed,
    }


def _tada(*args: str) -> list[str]:
    return [sys.executable, "-m", "tada_core", *args]


def run_size(
    n: int,
    source: tuple[list[str], list[str], list[int]],
    target: tuple[list[str], list[str], list[int]],
    work: Path,
    *,
    seed: int = 0,
    train_args: Sequence[str] = (),
    keep: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """The pipeline at ``n`` images a domain (see the module docstring); one dict of timings."""
    folder = work / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    src = grow(*source, n, folder / "source", seed)
    tgt = grow(*target, n, folder / "target", seed + 1)
    grow_seconds = time.perf_counter() - started
    run = folder / "run"
    commands: dict[str, dict] = {}
    log(f"scale {n}: grown in {grow_seconds:.0f} s; training")
    commands["train"] = timed(
        _tada(
            "train",
            "--source",
            str(src),
            "--target",
            str(tgt),
            "--backbone",
            "efficientnet_lite0",
            "--pretrained",
            "--out",
            str(run),
            "--json",
            *train_args,
        ),
        folder / "train",
    )
    checkpoint = run / "last.safetensors"
    if commands["train"]["returncode"] == 0:
        shown = sorted(tgt.rglob("*.png"))[:: max(1, n // ATTENTION_IMAGES)][:ATTENTION_IMAGES]
        log(f"scale {n}: first map, t-SNE, estimate")
        commands["attention"] = timed(
            _tada(
                "attention",
                "--checkpoint",
                str(checkpoint),
                "--image",
                *map(str, shown),
                "--view",
                "shift",
                "--out",
                str(folder / "maps"),
                "--json",
            ),
            folder / "attention",
        )
        commands["tsne"] = timed(
            _tada(
                "tsne",
                "--checkpoint",
                str(checkpoint),
                "--source",
                str(src),
                "--target",
                str(tgt),
                "--out",
                str(folder / "tsne.png"),
                "--json",
            ),
            folder / "tsne",
        )
        commands["estimate"] = timed(
            _tada("estimate", "--checkpoint", str(checkpoint), "--domain", str(tgt), "--unlabelled", "--json"),
            folder / "estimate",
        )
    trained = commands["train"].get("json") or {}
    record = {
        "images_per_domain": n,
        "grow_seconds": round(grow_seconds, 1),
        "phases": trained.get("phases"),
        "target_accuracy": trained.get("target_accuracy"),
        "commands": {name: {k: v for k, v in c.items() if k != "json"} for name, c in commands.items()},
        "end_to_end_seconds": round(sum(c["seconds"] for c in commands.values()), 1),
        "peak_rss_mb": max(c["peak_rss_mb"] for c in commands.values()),
        "samples": _samples(commands),
    }
    failed = [name for name, c in commands.items() if c["returncode"] != 0]
    if failed:
        record["failed"] = {name: (folder / f"{name}.err").read_text()[-2000:] for name in failed}
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return record


def _samples(commands: dict[str, dict]) -> dict:
    """The capped sample sizes the commands report (t-SNE points, localiser images, estimate)."""
    out = {}
    tsne = commands.get("tsne", {}).get("json")
    if isinstance(tsne, dict) and tsne.get("checkpoints"):
        out["tsne"] = {k: tsne["checkpoints"][0].get(k) for k in ("n_source", "n_target")}
    estimate = commands.get("estimate", {}).get("json")
    if isinstance(estimate, dict):
        out["estimate"] = {"n_images": estimate.get("n_images")}
    attention = commands.get("attention", {}).get("json")
    if isinstance(attention, dict) and attention.get("localiser"):
        out["localiser"] = attention["localiser"]
    elif isinstance(attention, list) and attention and isinstance(attention[0], dict):
        out["localiser"] = attention[0].get("localiser")
    return out


def bench_scale(
    sizes: Sequence[int] = SIZES,
    *,
    source: str = "emoji-twitter",
    target: str = "emoji-google",
    work: Path | None = None,
    data_root: str | None = None,
    seed: int = 0,
    train_args: Sequence[str] = (),
    keep: bool = False,
    save: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every size in turn; the JSON of ``tada bench scale`` (written to ``save`` after each size)."""
    bases = base_images(source, data_root), base_images(target, data_root)
    if bases[0][1] != bases[1][1]:
        raise DataError(f"'{source}' and '{target}' have different classes")
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="tada-scale-"))
    result: dict = {
        "source": source,
        "target": target,
        "base_images": [len(bases[0][0]), len(bases[1][0])],
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "train_args": list(train_args),
        "sizes": [],
    }
    for n in sizes:
        result["sizes"].append(run_size(n, *bases, work, seed=seed, train_args=train_args, keep=keep, log=log))
        if save is not None:
            save.write_text(json.dumps(result, indent=1))
    result["growth"] = growth_exponents(result["sizes"])
    if save is not None:
        save.write_text(json.dumps(result, indent=1))
    return result


def growth_exponents(sizes: list[dict]) -> dict:
    """Per phase and command, the log-log slope between the smallest and the largest size (1 =
    linear in the number of images, 0 = constant)."""
    import math

    if len(sizes) < 2:
        return {}
    first, last = sizes[0], sizes[-1]
    ratio = math.log(last["images_per_domain"] / first["images_per_domain"])
    out = {}
    for name in first["commands"]:
        a, b = first["commands"][name]["seconds"], last["commands"].get(name, {}).get("seconds")
        if a and b:
            out[name] = round(math.log(b / a) / ratio, 2)
    for name, a in (first.get("phases") or {}).items():
        b = (last.get("phases") or {}).get(name)
        if a and b:
            out[f"train.{name}"] = round(math.log(b / a) / ratio, 2)
    return out


def plot(result: dict, path: Path) -> None:
    """Log-log: seconds of each command and training phase against images a domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s["images_per_domain"] for s in result["sizes"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    series: dict[str, list[float | None]] = {}
    for k, s in enumerate(result["sizes"]):
        values = {f"train.{p}": v for p, v in (s.get("phases") or {}).items()}
        values |= {name: c["seconds"] for name, c in s["commands"].items()}
        for name, value in values.items():
            series.setdefault(name, [None] * len(sizes))[k] = value
    for name, values in series.items():
        points = [(x, y) for x, y in zip(sizes, values, strict=True) if y]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name, linestyle="--" if "." in name else "-")
    train = series.get("train", [None])[0]
    if train:  # a guide: what linear growth from the first size would look like
        ax.plot(sizes, [train * x / sizes[0] for x in sizes], color="grey", lw=0.8, label="linear (train)")
    ax.set(
        xscale="log", yscale="log", xlabel="images a domain", ylabel="seconds", title="tada bench scale (2 CPU cores)"
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
