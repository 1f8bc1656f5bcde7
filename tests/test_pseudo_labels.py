"""Target pseudo-labels from mutual nearest neighbours, and the loss term that uses them."""

from __future__ import annotations

import pytest
import torch

from tada_core.config import TADAConfig
from tada_core.errors import ConfigError
from tada_core.model import build_model
from tada_core.model.losses import pseudo_label_loss
from tada_core.training.photo_defaults import with_photo_defaults
from tada_core.training.pseudo_labels import IGNORE, mutual_nearest_labels, nearest, summary


def test_mutual_nearest_labels_by_hand():
    # each domain is centred first, so a shift that every row of a domain shares plays no part
    source = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) + 5.0  # E N W S, labels 7 8 9 6
    target = torch.tensor([[1.0, 0.2], [1.0, -0.3], [-1.0, 0.5], [-1.0, -0.4]]) - 3.0  # mean 0 after the shift
    # cosines: t0→E 0.981, t1→E 0.958, t2→W 0.894, t3→W 0.928: E's nearest target is t0, W's is t3,
    # so t0 and t3 are mutual pairs (labels 7 and 9), t1 and t2 get none
    labels = mutual_nearest_labels(source, torch.tensor([7, 8, 9, 6]), target)
    assert labels.tolist() == [7, IGNORE, IGNORE, 9]


def test_nearest_in_chunks_equals_the_full_matrix():
    torch.manual_seed(0)
    queries, keys = torch.randn(50, 8), torch.randn(30, 8)
    assert torch.equal(nearest(queries, keys, chunk=7), (queries @ keys.T).argmax(1))


def test_summary_counts_coverage_and_precision_where_the_truth_is_known():
    labels = torch.tensor([1, IGNORE, 2, 0])
    out = summary(labels, torch.tensor([1, 0, 1, -1]))
    assert out == {"images": 4, "labelled": 3, "coverage": 0.75, "precision": 0.5}
    assert "precision" not in summary(labels, torch.full((4,), -1))


def test_pseudo_label_loss_is_the_cross_entropy_of_the_labelled_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    loss = pseudo_label_loss(logits, torch.tensor([0, IGNORE, 1]))
    by_hand = (-torch.log_softmax(logits[0], 0)[0] - torch.log_softmax(logits[2], 0)[1]) / 2
    assert torch.isclose(loss, by_hand)
    assert pseudo_label_loss(logits, torch.full((3,), IGNORE)).item() == 0.0


def test_only_adaptive_variants_add_the_weighted_term():
    config = dict(backbone="lenet", num_classes=2, pseudo_weight=2.0)
    out_cls = None
    for variant in ("source_only", "dann", "tada"):
        with pytest.raises(ConfigError, match="pseudo_weight"):  # no frozen cache: no features to match in
            TADAConfig(variant=variant, **config)
    cfg = TADAConfig(variant="dann", backbone="lenet", num_classes=2)
    object.__setattr__(cfg, "pseudo_weight", 2.0)  # bypass validation: the loss arithmetic only
    model = build_model(cfg)
    torch.manual_seed(0)
    out_cls = model(torch.randn(4, 3, 28, 28), split=2)
    y_t = torch.tensor([1, IGNORE])
    terms = model.losses(out_cls, torch.tensor([0, 1]), 0.5, y_target=y_t)
    expected = terms["classification"] + terms["global_adversarial"] + 2.0 * terms["pseudo_label"]
    assert torch.isclose(terms["total"], expected)
    assert torch.isclose(terms["pseudo_label"], pseudo_label_loss(out_cls.logits[2:], y_t))
    object.__setattr__(cfg, "variant", "source_only")
    assert "pseudo_label" not in build_model(cfg).losses(out_cls, torch.tensor([0, 1]), 0.5, y_target=y_t)


def test_photo_defaults_turn_it_on_only_with_the_frozen_cache():
    base = {"backbone": "efficientnet_lite0", "pretrained": True}
    assert with_photo_defaults(base)["pseudo_weight"] == 1.0
    assert "pseudo_weight" not in with_photo_defaults({**base, "train": {"frozen_backbone": False}})
    assert with_photo_defaults({**base, "pseudo_weight": 0})["pseudo_weight"] == 0
    with pytest.raises(ConfigError, match="frozen cache"):
        TADAConfig(backbone="efficientnet_lite0", pretrained=True, pseudo_weight=1.0)


def test_the_app_form_turns_it_on_with_the_frozen_cache_only(tmp_path):
    from types import SimpleNamespace

    from app.serving.train_form import start_job

    started = []
    jobs = SimpleNamespace(
        check_can_start=lambda owner: None,
        check_budget=lambda iters: None,
        start=lambda config, data, owner, names: started.append(config),
        status=lambda owner: {},
    )
    ctx = SimpleNamespace(
        jobs=jobs,
        storage=SimpleNamespace(check_room=lambda *args: None, runs=lambda owner: tmp_path),
        domains=SimpleNamespace(resolve=lambda choice, owner: choice),
        device="cpu",
    )
    args = (ctx, "visitor", "photos", "photos-sketch", "tada", "efficientnet_lite0", 30, 8, 0.01, 1.0, 0.1)
    start_job(*args, pretrained=True)
    start_job(*args, pretrained=True, fine_tune=True)
    assert [(c.train.frozen_backbone, c.pseudo_weight) for c in started] == [(True, 1.0), (False, 0.0)]
