"""Domain-gap probes: per-region proxy A-distance against hand computations, caching, clear errors."""

import numpy as np
import pytest
import torch

from tada_core import TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, save_checkpoint
from tada_core.explain.gap import GapError, checkpoint_gap, fit_region_probes, proxy_a_distance

DIGITS = [str(i) for i in range(10)]


def test_proxy_a_distance_is_two_times_one_minus_two_errors_clipped():
    np.testing.assert_allclose(proxy_a_distance([0.0, 0.1, 0.25, 0.5, 0.7]), [2.0, 1.6, 1.0, 0.0, 0.0])


def _pair(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target features (n, 2, 1, 3): three regions with a known gap each.

    Region 0: channel 0 is −3 in the source and +3 in the target → always separable, d_A = 2.
    Region 1: the target is the very same features as the source → inseparable, d_A = 0.
    Region 2: half of the target is shifted by +6, the other half copies the source → a probe
    can only catch the shifted half: balanced error (0 + 1/2) / 2 = 1/4, d_A = 2(1 − 1/2) = 1.
    """
    g = torch.Generator().manual_seed(seed)
    source = torch.randn(n, 2, 1, 3, generator=g) * 0.5
    target = torch.randn(n, 2, 1, 3, generator=g) * 0.5
    source[:, 0, 0, 0] -= 3.0
    target[:, 0, 0, 0] += 3.0
    target[:, :, :, 1] = source[:, :, :, 1]
    target[:, :, :, 2] = source[:, :, :, 2]
    target[: n // 2, 0, 0, 2] += 6.0
    return source, target


def test_region_probes_recover_the_known_gap_of_each_region():
    fit_s, fit_t = _pair(200, seed=0)
    eval_s, eval_t = _pair(200, seed=1)
    probes = fit_region_probes(fit_s, fit_t, eval_s, eval_t)
    assert probes.a_distance.shape == (1, 3) and probes.error.shape == (1, 3)
    np.testing.assert_allclose(probes.error[0], [0.0, 0.5, 0.25], atol=0.02)
    np.testing.assert_allclose(probes.a_distance[0], [2.0, 0.0, 1.0], atol=0.08)
    p_target, p_source = probes.p_target(eval_t), probes.p_target(eval_s)
    assert p_target.shape == (200, 1, 3) and p_target.dtype == np.float32
    assert (p_target[:, 0, 0] > 0.5).all() and (p_source[:, 0, 0] < 0.5).all()
    assert (p_target[:100, 0, 2] > 0.5).all()  # the shifted half is seen as target, in its own region
    np.testing.assert_allclose(p_target[:, 0, 1], p_source[:, 0, 1])  # identical features, identical answer


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = TADAConfig(backbone="lenet", num_classes=10, variant="source_only")
    path = tmp_path_factory.mktemp("gap") / "so.safetensors"
    return save_checkpoint(path, build_model(config), CheckpointInfo(config, DIGITS, "optdigits", "mnist"))


def test_checkpoint_gap_is_fitted_once_and_cached(tiny_checkpoint):
    first = checkpoint_gap(tiny_checkpoint, max_points=40)
    assert first.a_distance.shape == (7, 7) and first.n_fit == 20 and first.n_eval == 20
    assert 0.0 <= first.a_distance.min() and first.a_distance.max() <= 2.0
    assert checkpoint_gap(tiny_checkpoint, max_points=40) is first  # any variant: only the backbone is used


def test_checkpoint_without_loadable_domains_says_which_and_what_to_do(tmp_path):
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    path = save_checkpoint(
        tmp_path / "t.safetensors", build_model(config), CheckpointInfo(config, DIGITS, "/no/such/folder", "mnist")
    )
    with pytest.raises(GapError, match="needs its domains '/no/such/folder'.*attention or transferability view"):
        checkpoint_gap(path)
    bare = save_checkpoint(tmp_path / "bare.safetensors", build_model(config), CheckpointInfo(config, DIGITS))
    with pytest.raises(GapError, match="does not record its source and target"):
        checkpoint_gap(bare)
