"""The shipped checkpoints load and reach the target accuracy their model cards state."""

import re
from pathlib import Path

import pytest

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.evaluate import evaluate
from tada_core.run_data import image_size_for, norm_for

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
