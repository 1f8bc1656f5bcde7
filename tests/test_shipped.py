"""The shipped checkpoints load and reach the target accuracy their model cards state."""

import re
from pathlib import Path

import pytest
import torch

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.evaluate import evaluate

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = ["tada_mnist_mnistm", "dann_mnist_mnistm", "source_only_mnist_mnistm"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_matches_its_card(name):
    path = CHECKPOINTS / f"{name}.safetensors"
    card = (CHECKPOINTS / f"{name}.md").read_text()
    stated = float(re.search(r"target accuracy \([^)]*\) \| \*\*([0-9.]+)%\*\*", card).group(1))
    model, info = load_checkpoint(path)
    assert info.variant == name.split("_mnist")[0] and (info.source, info.target) == ("mnist", "mnistm")
    domain = load_domain(info.target, image_size=image_size_for(info.config), norm=norm_for(info.config), train=False)
    measured = evaluate(model, domain.dataset, info.class_names)["accuracy"]
    assert abs(measured - stated) <= 1.0


@pytest.mark.parametrize("path", sorted(CHECKPOINTS.glob("*.safetensors")), ids=lambda p: p.stem)
def test_every_shipped_checkpoint_loads_and_runs(path):
    """Every file in checkpoints/ loads with the current code and gives a prediction per image."""
    model, info = load_checkpoint(path)
    size = image_size_for(info.config)
    out = model.eval()(torch.zeros(2, 3, size, size))
    assert out.logits.shape == (2, len(info.class_names))
    assert torch.isfinite(out.logits).all()
    assert (CHECKPOINTS / f"{path.stem}.md").is_file(), "every shipped checkpoint has a model card"
