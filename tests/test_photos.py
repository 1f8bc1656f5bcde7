"""Photos: the offline EfficientNet-Lite0, the photo domain pair and frozen cached training.

The Lite0 features of a tiny photo pair (8 crops per class and domain) are computed once per
session; every training test reuses them. Nothing is downloaded: the weights ship in a package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tada_core.checkpoint import load_checkpoint
from tada_core.config import TADAConfig
from tada_core.data import IMAGENET_NORM, Domain, build_transform, load_domain
from tada_core.data.datasets import ArrayImages
from tada_core.data.photos import PHOTO_CLASSES, photo_arrays, render_grain, render_sketch
from tada_core.errors import ConfigError
from tada_core.model import build_model
from tada_core.model.lite0 import Lite0WeightsError, load_lite0_imagenet, map_lite0_keys
from tada_core.training.evaluate import evaluate
from tada_core.training.feature_cache import CachedMaps, FrozenBackboneHead, cache_run_data
from tada_core.training.loop import train
from tada_core.training.photo_defaults import with_photo_defaults
from tada_core.training.run_data import RunData

PER_CLASS = 8


def _tiny_domain(name: str) -> Domain:
    images, labels = photo_arrays(name, per_class=PER_CLASS, seed=0)
    return Domain(name, list(PHOTO_CLASSES), ArrayImages(images, labels, build_transform(224, IMAGENET_NORM, False)))


def _config(variant: str, out, iters: int = 40) -> TADAConfig:
    data = with_photo_defaults({"variant": variant, "backbone": "efficientnet_lite0", "pretrained": True})
    config = TADAConfig.from_dict(data)
    tc = config.train
    tc.source, tc.target, tc.out, tc.iters, tc.batch_size, tc.eval_every = (
        "photos",
        "photos-sketch",
        str(out),
        iters,
        16,
        iters,
    )
    return config


@pytest.fixture(scope="session")
def tiny_pair() -> RunData:
    source, target = _tiny_domain("photos"), _tiny_domain("photos-sketch")
    return RunData(source=source, target=target, source_eval=source, target_eval=target)


@pytest.fixture(scope="session")
def cached_pair(tiny_pair: RunData) -> RunData:
    torch.manual_seed(0)
    model = build_model(TADAConfig(backbone="efficientnet_lite0", pretrained=True, num_classes=4))
    return cache_run_data(model, tiny_pair)


def test_lite0_weights_classify_skimage_photos_into_their_imagenet_classes():
    from skimage import data

    model = load_lite0_imagenet()
    transform = build_transform(224, IMAGENET_NORM, False)
    batch = torch.stack([transform(Image.fromarray(image)) for image in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        top3 = model(batch).topk(3, dim=1).indices.tolist()
    assert set(top3[0]) <= set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top3[1][0] == 967  # espresso


def test_lite0_key_mapping_refuses_unknown_keys():
    with pytest.raises(Lite0WeightsError, match="unexpected key"):
        map_lite0_keys({"_blocks.0._mystery.weight": torch.zeros(1)}, ["blocks.0.0"])


def test_lite0_backbone_gives_49_regions_of_1280_channels():
    model = build_model(TADAConfig(backbone="efficientnet_lite0", num_classes=4))
    out = model.eval()(torch.zeros(1, 3, 224, 224))
    assert out.local_attention.shape == (1, 7, 7)
    assert model.head == "pool" and model.bottleneck[0].in_features == 1280


def test_photo_pair_is_deterministic_and_balanced():
    images, labels = photo_arrays("photos-sketch", per_class=PER_CLASS, seed=0)
    again, _ = photo_arrays.__wrapped__("photos-sketch", per_class=PER_CLASS, seed=0)
    assert images.shape == (4 * PER_CLASS, 256, 256, 3) and images.dtype == np.uint8
    assert np.array_equal(images, again)
    assert np.bincount(labels).tolist() == [PER_CLASS] * 4
    rendered = render_sketch(np.full((32, 32, 3), 128, np.uint8), np.random.default_rng(0))
    assert rendered.shape == (32, 32, 3) and rendered.dtype == np.uint8
    grainy = render_grain(np.full((32, 32, 3), 200, np.uint8), np.random.default_rng(0))
    assert grainy.shape == (32, 32, 3) and (grainy[..., 0] == grainy[..., 2]).all()  # grayscale
    assert abs(float(grainy.mean()) - 180) < 5 and float(grainy.std()) > 20  # 10 % darker, grainy


def test_photo_domains_are_builtins_with_four_classes():
    domain = load_domain("photos", image_size=64, norm=IMAGENET_NORM, train=False)
    assert domain.class_names == list(PHOTO_CLASSES) and len(domain) == 160
    assert domain.dataset[0][0].shape == (3, 64, 64)


def test_photo_defaults_fill_only_what_is_unset():
    from tada_core.cli import build_parser
    from tada_core.cli.train import config_from_args

    parse = build_parser().parse_args
    base = ["train", "--source", "a", "--target", "b", "--backbone", "efficientnet_lite0", "--pretrained"]
    config = config_from_args(parse(base))
    assert config.train.frozen_backbone and config.train.iters == 300 and config.train.batch_size == 32
    assert config_from_args(parse([*base, "--iters", "50"])).train.iters == 50
    assert not config_from_args(parse([*base, "--fine-tune"])).train.frozen_backbone
    assert not config_from_args(parse(["train", "--backbone", "efficientnet_lite0"])).train.frozen_backbone
    assert isinstance(parse(base), argparse.Namespace)


def test_cached_maps_flip_only_for_training(cached_pair: RunData):
    maps = cached_pair.source_eval.dataset.maps
    assert isinstance(cached_pair.source.dataset, CachedMaps) and maps.shape == (4 * PER_CLASS, 1280, 7, 7)
    torch.manual_seed(0)
    flipped = torch.stack([cached_pair.source.dataset[0][0] for _ in range(20)])
    assert {bool(torch.equal(m, maps[0].float())) for m in flipped} == {True, False}
    assert torch.equal(cached_pair.source_eval.dataset[0][0], maps[0].float())


def test_frozen_tada_beats_source_only_and_its_checkpoint_runs_on_raw_images(cached_pair, tiny_pair, tmp_path):
    results = {v: train(_config(v, tmp_path / v), data=cached_pair) for v in ("source_only", "tada")}
    accuracy = {v: r.final["target_accuracy"] for v, r in results.items()}
    assert accuracy["tada"] > accuracy["source_only"]
    model, info = load_checkpoint(results["tada"].last)
    assert info.config.train.frozen_backbone and info.class_names == list(PHOTO_CLASSES)
    raw = evaluate(model, tiny_pair.target_eval.dataset, info.class_names)["accuracy"]
    assert abs(raw - accuracy["tada"]) <= 100 / len(tiny_pair.target_eval) + 1e-6  # fp16 cache: at most one image
    cached = evaluate(FrozenBackboneHead(model), cached_pair.target_eval.dataset, info.class_names)["accuracy"]
    assert cached == accuracy["tada"]


def test_frozen_backbone_keeps_the_pretrained_weights(cached_pair, tmp_path):
    result = train(_config("tada", tmp_path / "run", iters=5), data=cached_pair)
    trained, _ = load_checkpoint(result.last)
    torch.manual_seed(0)
    fresh = build_model(TADAConfig(backbone="efficientnet_lite0", pretrained=True, num_classes=4))
    for key, value in fresh.backbone.state_dict().items():
        assert torch.equal(trained.backbone.state_dict()[key], value), key


def test_unfamiliar_uploads_get_a_notice(cached_pair, tiny_pair, tmp_path):
    from tada_core.explain.familiarity import familiarity_notes, reference_for

    digits, digits_info = load_checkpoint("checkpoints/tada_mnist_mnistm.safetensors")
    digit, cat = Image.open("app/examples/target_mnistm_3.png"), Image.fromarray(photo_arrays("photos", 8, 0)[0][0])
    assert reference_for(digits, digits_info, "checkpoints/tada_mnist_mnistm.safetensors") is None  # 28 px: size rule
    small, big = familiarity_notes(digits, digits_info, None, [digit, cat])
    assert small is None and "shrunk" in big

    result = train(_config("tada", tmp_path / "run", iters=5), data=cached_pair)
    model, info = load_checkpoint(result.last)
    ref = reference_for(model, info, result.last)  # from the features stored by frozen training
    assert ref is not None
    photo_note, digit_note = familiarity_notes(
        model, info, ref, [Image.open("app/examples/photos/source_cat.jpg"), digit]
    )
    assert photo_note is None and "far from" in digit_note


def test_shipped_photo_checkpoint_classifies_the_photo_examples():
    from tada_core.explain.inference import predict_attention

    model, info = load_checkpoint("checkpoints/tada_photos_sketch.safetensors")
    assert (info.config.backbone, info.source, info.target) == ("efficientnet_lite0", "photos", "photos-sketch")
    paths = sorted(Path("app/examples/photos").glob("*.jpg"))
    results = predict_attention(model, info, [Image.open(p) for p in paths])
    correct = [r.predicted == p.stem.split("_", 1)[1] for r, p in zip(results, paths, strict=True)]
    assert len(paths) == 8 and sum(correct) >= 7
    assert all(r.grid.shape == (7, 7) for r in results)


def test_lite0_splits_into_a_cached_lower_part_and_trained_upper_stages():
    model = build_model(TADAConfig(backbone="efficientnet_lite0", num_classes=4)).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for tune, channels in ((1, 192), (2, 112)):
        lower, upper = model.backbone.split(tune)
        with torch.no_grad():
            assert lower(x).shape[1] == channels and torch.equal(upper(lower(x)), model.backbone(x))
    assert len(model.state_dict()) == len(
        build_model(TADAConfig(backbone="efficientnet_lite0", num_classes=4)).state_dict()
    )
    for bad in ({"backbone": "lenet", "train": {"tune_blocks": 1}}, {"train": {"tune_blocks": 4}}):
        with pytest.raises(ConfigError, match="tune_blocks"):
            TADAConfig.from_dict({"backbone": "efficientnet_lite0", "train": {"frozen_backbone": True}} | bad)


def test_tune_blocks_trains_only_the_last_stage_on_cached_lower_maps(tiny_pair, tmp_path):
    config = _config("tada", tmp_path / "run", iters=5)
    config.train.tune_blocks = 1
    result = train(config, data=tiny_pair)
    trained, info = load_checkpoint(result.last)
    torch.manual_seed(0)
    fresh = build_model(TADAConfig(backbone="efficientnet_lite0", pretrained=True, num_classes=4))
    changed = {
        k for k, v in fresh.backbone.state_dict().items() if not torch.equal(trained.backbone.state_dict()[k], v)
    }
    assert changed and all(k.startswith(("net.blocks.6.", "net.conv_head.", "net.bn2.")) for k in changed)
    assert info.config.train.tune_blocks == 1
    # what was learned on cached blocks.5 maps runs the same on raw images
    raw = evaluate(trained, tiny_pair.target_eval.dataset, info.class_names)["accuracy"]
    assert abs(raw - result.final["target_accuracy"]) <= 100 / len(tiny_pair.target_eval) + 1e-6
    from tada_core.checkpoint import read_checkpoint

    _, tensors = read_checkpoint(result.last)
    assert tensors["familiarity.features"].shape[1] == 1280  # the upper stages' output, as uploads are read


def test_pseudo_labels_take_the_place_of_the_target_labels_in_training(cached_pair, tmp_path):
    from tada_core.checkpoint import read_checkpoint
    from tada_core.training.feature_cache import with_pseudo_labels
    from tada_core.training.pseudo_labels import IGNORE

    config = _config("tada", tmp_path / "run", iters=5)
    assert config.pseudo_weight == 1.0  # a photo default
    data = with_pseudo_labels(build_model(config.replace(num_classes=4)), cached_pair)
    labels, truth = data.target.dataset.labels, cached_pair.target_eval.labels
    assert data.pseudo["images"] == len(truth) == len(labels)
    assert data.pseudo["labelled"] == int((labels != IGNORE).sum()) > 0
    assert (labels == IGNORE).any() and set(labels.tolist()) <= {IGNORE, 0, 1, 2, 3}
    assert torch.equal(cached_pair.target.dataset.labels, truth)  # the given data is left as it was
    assert torch.equal(data.target.dataset.maps, cached_pair.target.dataset.maps)
    info, _ = read_checkpoint(train(config, data=cached_pair).last)
    assert info.extra["pseudo_labels"] == data.pseudo
