"""The shipped Twemoji → Noto checkpoint and the Attention tab's emoji examples that open it.

Reads only files of the repository (``checkpoints/``, ``app/examples/emoji/``): no emoji data set,
no network.
"""

from pathlib import Path

from PIL import Image

from app.main import build_app
from app.tabs.attention_report import EMOJI_EXAMPLES_DIR, emoji_checkpoint, emoji_examples
from app.ui import NONE
from tada_core.checkpoint import has_tensors, load_checkpoint
from tada_core.explain.estimate import stored_estimate
from tada_core.explain.inference import predict_attention
from tada_core.explain.shift import shift_status
from tada_core.model.localiser import PREFIX

ROOT = Path(__file__).resolve().parents[1]
NAME = "tada_emoji_twitter_google"
CHECKPOINT = ROOT / "checkpoints" / f"{NAME}.safetensors"
CLASSES = [
    "animal-bird",
    "animal-mammal",
    "clothing",
    "drink",
    "event",
    "food-fruit",
    "food-prepared",
    "game",
    "household",
    "office",
    "place-building",
    "sky-weather",
    "sport",
    "time",
    "tool",
    "transport-ground",
]


def test_emoji_examples_are_four_twemoji_and_the_same_four_in_noto():
    examples = emoji_examples()
    source, target = (sorted(Path(p).name.split("_", 1)[1] for p in examples[role]) for role in ("source", "target"))
    assert len(examples["source"]) == len(examples["target"]) == 4 and source == target
    assert {name.removesuffix(".png") for name in source} <= set(CLASSES) and len(set(source)) == 4
    for path in examples["source"] + examples["target"]:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (64, 64)
    assert (EMOJI_EXAMPLES_DIR / "ATTRIBUTION.md").is_file()
    assert not any("apple" in p.name.lower() for p in EMOJI_EXAMPLES_DIR.iterdir())


def test_emoji_examples_button_loads_the_examples_and_picks_the_shipped_emoji_checkpoint(tmp_path):
    """The page's button itself (its handler in the built Blocks): the 8 files, the checkpoint, its
    default view (its stored localiser) and its stored estimate."""
    demo = build_app(data_dir=tmp_path / "runs", data_root=tmp_path / "data")
    ctx = demo.tada_context
    assert ctx.default_checkpoint() == "tada_mnist_mnistm" and NAME in ctx.registry.names()  # still opens on digits
    button = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "attention-emoji-examples")
    (handler,) = [f for f in demo.fns.values() if any(target == button._id for target, _ in f.targets)]
    source, target, checkpoint, compare, view, estimate = handler.fn()
    assert (source, target) == (emoji_examples()["source"], emoji_examples()["target"])
    assert len(source) + len(target) == 8
    assert checkpoint["value"] == NAME and compare == NONE and view["value"] == "shift"
    assert "Estimated target accuracy 72.9%" in estimate
    assert emoji_checkpoint(["source_only_emoji_twitter_google", "tada_photos_sketch"]) is None


def test_shipped_emoji_checkpoint_classifies_its_examples_and_stores_its_estimate_and_localiser(tmp_path):
    model, info = load_checkpoint(CHECKPOINT)
    assert (info.source, info.target, info.variant) == ("emoji-twitter", "emoji-google", "tada")
    paths = [Path(p) for role in ("source", "target") for p in emoji_examples()[role]]
    results = predict_attention(model, info, [Image.open(p) for p in paths])
    correct = [r.predicted == p.stem.split("_", 1)[1] for r, p in zip(results, paths, strict=True)]
    assert sum(correct) >= 6  # the Noto couch reads as clothing, the Noto mammal as a bird (48% and 86% on the target)
    assert info.class_names == CLASSES and info.config.backbone == "efficientnet_lite0"
    estimate = stored_estimate(info)
    assert estimate is not None and 0 < estimate.estimated_accuracy < 100
    assert has_tensors(CHECKPOINT, PREFIX)
    assert shift_status(CHECKPOINT, str(tmp_path / "no-data")).origin == "stored"  # no emoji data needed
    assert CHECKPOINT.stat().st_size <= 25 * 2**20
    assert "CC-BY 4.0" in CHECKPOINT.with_suffix(".md").read_text()
