"""The paper-scale reproduction configs and script, dry-run on a fake Office-31 folder."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tada_core import TADAConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["office31", "officehome"])
def test_configs_parse_and_follow_the_recipe(name):
    config = TADAConfig.from_yaml(ROOT / "configs" / f"{name}.yaml")
    assert config.backbone == "resnet50" and config.pretrained and config.variant == "tada"
    assert config.train.optim.lr == 0.01 and config.train.optim.backbone_lr_mult == 0.1
    assert config.gamma == 0.1 and config.train.batch_size == 32


@pytest.mark.slow
def test_reproduce_script_dry_run(tmp_path):
    for domain in ("amazon", "webcam"):
        for cls in ("back_pack", "bike", "mug"):
            folder = tmp_path / domain / "images" / cls
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (48, 40), (40 * i, 80, 120 if domain == "amazon" else 30)).save(folder / f"{i}.jpg")
    env = {**os.environ, "DATA_ROOT": str(tmp_path), "PAIRS": "A:W", "TADA_LAUNCH": str(ROOT / ".venv/bin/python")}
    flags = ["--no-pretrained", "--backbone", "resnet18", "--image-size", "64", "--device", "cpu", "--no-amp"]
    flags += ["--iters", "2", "--batch-size", "2", "--eval-every", "2", "--workers", "0", "--json", "--quiet"]
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/reproduce.sh"), "office31", "tada", *flags],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (tmp_path / summary["last"]).is_file()
    assert summary["out"].endswith("runs/office31/tada/A2W")
