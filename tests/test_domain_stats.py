"""BatchNorm statistics per domain (AdaBN) for the analysis views, against hand computations."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tada_core import TADAConfig
from tada_core.explain.domain_stats import resolve, trained_per_domain, with_domain_statistics


def _images(x):
    return TensorDataset(x, torch.zeros(len(x), dtype=torch.long))


def test_statistics_are_the_datasets_mean_and_unbiased_variance_and_the_model_is_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.ReLU())
    x = torch.randn(40, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = with_domain_statistics(model, _images(x), batch_size=64)  # one batch: exact
    with torch.no_grad():
        h = model[0](x)  # what the BatchNorm layer sees, by hand
    per_channel = h.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(adapted[1].running_mean, per_channel.mean(dim=1))
    torch.testing.assert_close(adapted[1].running_var, per_channel.var(dim=1, unbiased=True))
    assert not adapted.training and adapted[1].momentum == model[1].momentum == 0.1
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the original keeps its running statistics
    with torch.no_grad():
        out = adapted(x)  # normalised with the domain's own statistics: mean 0, variance 1 per channel
    pre = ((h - per_channel.mean(1).view(1, 3, 1, 1)) / (per_channel.var(1).view(1, 3, 1, 1) + 1e-5).sqrt()).clamp(
        min=0
    )
    torch.testing.assert_close(out, pre, atol=1e-5, rtol=1e-4)


def test_batches_are_drawn_in_random_order_so_a_sorted_dataset_keeps_its_variance():
    # a dataset sorted by class: 256 zeros then 256 ones. In order, every batch of 256 has variance 0;
    # the domain's variance is 0.25.
    x = torch.cat([torch.zeros(256, 1, 1, 1), torch.ones(256, 1, 1, 1)])
    adapted = with_domain_statistics(nn.Sequential(nn.BatchNorm2d(1)), _images(x), batch_size=256)
    assert float(adapted[0].running_mean) == pytest.approx(0.5, abs=0.05)
    assert float(adapted[0].running_var) == pytest.approx(0.25, abs=0.02)


def test_a_last_batch_of_one_image_is_left_out_and_one_image_is_refused():
    from tada_core.errors import DataError

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    x = torch.randn(9, 2)  # batches of 4: 4 + 4 + 1; BatchNorm1d cannot train on the single one
    adapted = with_domain_statistics(model, _images(x), batch_size=4)
    assert int(adapted[1].num_batches_tracked) == 2
    with pytest.raises(DataError, match="at least 2 images"):
        with_domain_statistics(model, _images(x[:1]))


def test_a_model_without_batchnorm_is_returned_unchanged():
    model = nn.Sequential(nn.Linear(2, 2))
    adapted = with_domain_statistics(model, _images(torch.randn(5, 2)))
    assert adapted is not model
    torch.testing.assert_close(adapted[0].weight, model[0].weight)


def test_auto_follows_how_the_checkpoint_was_trained():
    config = TADAConfig(backbone="lenet", num_classes=10)
    assert trained_per_domain(config) and resolve("auto", config) == "domain"  # the default recipe
    config.train.joint_forward = True
    assert resolve("auto", config) == "running" and resolve("domain", config) == "domain"
    config.train.joint_forward, config.train.frozen_backbone = False, True
    assert resolve("auto", config) == "domain"  # the head behind a frozen backbone saw each domain alone
    with pytest.raises(ValueError, match="auto, running, domain"):
        resolve("batch", config)


def test_collect_features_with_domain_statistics_removes_a_per_channel_shift_before_the_first_batchnorm():
    # LeNet's first BatchNorm follows a convolution: adding a constant per output channel of that
    # convolution (through its bias) moves the running-statistics features but not the per-domain ones.
    from tada_core import build_model
    from tada_core.data import Domain
    from tada_core.explain.features import collect_features

    torch.manual_seed(0)
    model = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="dann")).eval()
    shifted = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="dann")).eval()
    shifted.load_state_dict(model.state_dict())
    first_conv = next(m for m in shifted.backbone.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first_conv.bias += 3.0
    x = torch.randn(64, 3, 28, 28)
    domain = Domain("d", [str(i) for i in range(10)], TensorDataset(x, torch.arange(64) % 10))
    a = collect_features(model, domain, domain_statistics=True).features
    b = collect_features(shifted, domain, domain_statistics=True).features
    np.testing.assert_allclose(a, b, atol=1e-3)
    running = collect_features(shifted, domain).features
    assert np.abs(running - a).max() > 0.1


def test_a_frozen_backbone_keeps_its_statistics_and_the_head_behind_it_gets_the_domains():
    # frozen-backbone training encoded every image with the backbone's running statistics and
    # normalised only the bottleneck per domain: the same on a model over images and over cached maps
    from tada_core import build_model
    from tada_core.training.feature_cache import FrozenBackboneHead

    torch.manual_seed(0)
    config = TADAConfig(backbone="lenet", num_classes=10, variant="dann")
    config.train.frozen_backbone = True
    model = build_model(config).eval()
    x = torch.randn(32, 3, 28, 28) + 2.0
    adapted = with_domain_statistics(model, _images(x))
    backbone_bn = [m for m in adapted.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    original_bn = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert backbone_bn and all(
        torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
        for a, b in zip(backbone_bn, original_bn, strict=True)
    )
    with torch.no_grad():
        maps = model.backbone(x)
        pooled = model.bottleneck[0](maps.flatten(1))  # what the bottleneck's BatchNorm sees, by hand
    bottleneck_bn = next(m for m in adapted.bottleneck.modules() if isinstance(m, nn.BatchNorm1d))
    torch.testing.assert_close(bottleneck_bn.running_mean, pooled.mean(0), atol=1e-4, rtol=1e-4)
    on_maps = with_domain_statistics(FrozenBackboneHead(model), _images(maps))
    torch.testing.assert_close(
        next(m for m in on_maps.module.bottleneck.modules() if isinstance(m, nn.BatchNorm1d)).running_mean,
        bottleneck_bn.running_mean,
    )
