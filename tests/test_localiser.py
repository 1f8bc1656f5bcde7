"""The shift localiser: its tap, the MIL loss by hand, a fit that finds a planted spot and ignores a
control, storage in checkpoints (float16 for photo models), and the training loop storing it."""

import math

import numpy as np
import pytest
import torch

from tada_core import TADAConfig
from tada_core.checkpoint import read_checkpoint
from tada_core.model.backbones import build_backbone
from tada_core.model.localiser import Localiser, LocaliserError, tap_features, tap_for
from tada_core.training import Callback, train
from tada_core.training.localiser_fit import (
    FitSettings,
    bag_size,
    channel_stats,
    fit_for_backbone,
    fit_localiser,
    mil_loss,
    top_k_mean,
)
from tests.helpers import bars_run_data

QUICK = FitSettings(seeds=(0,), epochs=30)


@pytest.mark.parametrize(
    ("backbone", "size", "shape"),
    [("lenet", 28, (32, 14, 14)), ("efficientnet_lite0", 224, (40 + 80, 56, 56)), ("resnet18", 224, (128, 56, 56))],
)
def test_the_tap_is_the_first_stride_8_stage_on_the_2x_input_for_photos(backbone, size, shape):
    net = build_backbone(backbone).eval()
    with torch.no_grad():
        maps = tap_features(net, tap_for(backbone), torch.zeros(1, 3, size, size))
    assert tuple(maps.shape[1:]) == shape  # 56 = 2·224 / 8: one position per 4 px of the image
    # Lite0 appends its stride-16 stage (80 channels) resized to the stride-8 positions
    with pytest.raises(LocaliserError, match="no shift localiser"):
        tap_for("vgg16")


def test_top_k_mean_and_the_mil_loss_by_hand():
    z = torch.tensor([[[4.0, -1.0], [2.0, 0.0]]])  # one 2×2 logit map
    assert top_k_mean(z, 3).item() == pytest.approx((4 + 2 + 0) / 3)
    source, target = torch.tensor([[[-2.0, -3.0], [-4.0, -5.0]]]), z
    bce = lambda x, y: -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))  # noqa: E731
    expected = bce(2.0, 1) + bce((-2 - 3 - 4) / 3, 0) + np.mean([bce(v, 0) for v in (-2, -3, -4, -5)])
    assert mil_loss(source, target, 3).item() == pytest.approx(expected, rel=1e-5)


def test_the_trimmed_mil_loss_leaves_out_the_worst_explained_target_bags():
    bce_one = lambda x: math.log(1 + math.exp(-x))  # noqa: E731
    source = torch.full((1, 1, 1), -20.0)  # its two terms are ~0
    target = torch.tensor([3.0, -1.0, 0.5, 2.0]).view(4, 1, 1)  # one position a map: T_1 is the logit
    kept = np.mean([bce_one(v) for v in (3.0, 2.0, 0.5)])  # trim 1/4: the bag at -1 is left out
    assert mil_loss(source, target, 1, trim=0.25).item() == pytest.approx(kept, abs=1e-6)
    everything = np.mean([bce_one(v) for v in (3.0, -1.0, 0.5, 2.0)])
    assert mil_loss(source, target, 1).item() == pytest.approx(everything, abs=1e-6)


def test_the_bag_covers_a_196th_of_the_map_and_the_channel_stats_match_torch():
    assert (bag_size(56, 56), bag_size(14, 14), bag_size(12, 12), bag_size(112, 112)) == (16, 3, 3, 64)
    a, b = torch.randn(70, 3, 5, 4).half(), torch.randn(30, 3, 5, 4).half() * 2 + 1
    mean, std = channel_stats(a, b, chunk=16)
    every = torch.cat([a, b]).double()
    assert torch.allclose(mean, every.mean(dim=(0, 2, 3), keepdim=True).float())
    assert torch.allclose(std, every.std(dim=(0, 2, 3), keepdim=True).float())


def _maps(n, seed, spot=1.0, offset=0.0):
    """(n, 4, 12, 12) noise maps; with probability ``spot`` a bright 2×2 spot in channel 0 (and its mask,
    like an artefact spanning a few positions); ``offset`` shifts channel 1 of every map (a global change)."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(n, 4, 12, 12, generator=g)
    maps[:, 1] += offset
    mask = torch.zeros(n, 12, 12, dtype=torch.bool)
    for i in range(n):
        if torch.rand(1, generator=g).item() < spot:
            r, c = torch.randint(0, 11, (2,), generator=g).tolist()
            maps[i, 0, r : r + 2, c : c + 2] += 3.0
            mask[i, r : r + 2, c : c + 2] = True
    return maps, mask


def _auc(mask, score):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(mask.numpy().ravel(), score.numpy().ravel())


def test_the_fit_finds_a_spot_only_the_target_has():
    source, _ = _maps(128, 0, spot=0.0)
    target, _ = _maps(128, 1)
    held, mask = _maps(32, 2)
    localiser = fit_localiser(source, target, QUICK)
    with torch.no_grad():
        logits = localiser(held)  # (32, 12, 12)
    assert logits.shape == (32, 12, 12)
    assert _auc(mask, logits) > 0.95
    top = logits.flatten(1).argmax(1)
    assert mask.flatten(1)[torch.arange(32), top].float().mean() >= 0.9  # pointing game


def test_a_spot_as_frequent_in_both_domains_is_not_singled_out_by_a_global_change():
    source, _ = _maps(128, 0, spot=0.5)
    target, _ = _maps(128, 1, spot=0.5, offset=1.0)
    held, mask = _maps(64, 2, spot=0.5, offset=1.0)
    localiser = fit_localiser(source, target, QUICK)
    with torch.no_grad():
        logits = localiser(held)
    assert _auc(mask, logits) <= 0.70


def test_the_fit_leaves_the_global_random_state_alone():
    source, target = _maps(16, 0, spot=0.0)[0], _maps(16, 1)[0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_localiser(source, target, FitSettings(seeds=(0,), epochs=1))
    assert torch.equal(torch.rand(3), expected)


def test_a_fit_on_another_thread_cannot_reset_this_threads_random_stream():
    """The fit draws from its own generators: a fit running while this thread draws numbers does
    not seed the process-wide generator under it (it used to, through torch.manual_seed)."""
    import threading

    source, target = _maps(16, 0, spot=0.0)[0], _maps(16, 1)[0]
    torch.manual_seed(7)
    fit = threading.Thread(target=fit_localiser, args=(source, target, FitSettings(seeds=(0, 1), epochs=2)))
    fit.start()
    drawn = [torch.rand(1)]
    while fit.is_alive():  # draw for as long as the fit runs
        drawn.append(torch.rand(1))
    fit.join()
    torch.manual_seed(7)
    assert torch.equal(torch.cat(drawn), torch.rand(len(drawn)))


def test_the_per_seed_generator_draws_what_torch_manual_seed_drew():
    """The initial weights equal PyTorch's own ``reset_parameters`` after ``torch.manual_seed(seed)``,
    so fits (and the stored benchmark numbers) are unchanged by the move off the global RNG."""
    from tada_core.model.localiser import ShiftScorer
    from tada_core.training.localiser_fit import _reset

    mine, reference = ShiftScorer(8), ShiftScorer(8)
    _reset(mine, torch.Generator().manual_seed(3))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        for layer in reference.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.reset_parameters()
    for a, b in zip(mine.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_stored_tensors_round_trip_in_float16_and_damage_is_reported():
    localiser = Localiser(4, seeds=2)
    localiser.mean.fill_(0.5)
    tensors = localiser.to_tensors(torch.float16)
    assert all(k.startswith("localiser.") and v.dtype == torch.float16 for k, v in tensors.items())
    again = Localiser.from_tensors({**tensors, "model.other": torch.zeros(1)})
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(again(x), localiser(x), atol=2e-2, rtol=1e-2)
    del tensors["localiser.scorers.1.out.bias"]
    with pytest.raises(LocaliserError, match="damaged"):
        Localiser.from_tensors(tensors)


def test_the_fit_counts_are_the_capped_samples_and_travel_with_the_weights():
    from torch.utils.data import TensorDataset

    source = TensorDataset(torch.rand(12, 3, 28, 28), torch.zeros(12))
    target = TensorDataset(torch.rand(5, 3, 28, 28), torch.zeros(5))
    settings = FitSettings(seeds=(0,), epochs=1, max_images=8)
    localiser = fit_for_backbone(build_backbone("lenet"), "lenet", source, target, settings=settings)
    assert localiser.fitted_on == (8, 5)  # 12 source images capped at 8, all 5 targets
    tensors = localiser.to_tensors(torch.float16)
    assert tensors["localiser.fitted_on"].dtype == torch.int64  # exact counts, whatever the weights' dtype
    assert Localiser.from_tensors(tensors).fitted_on == (8, 5)
    del tensors["localiser.fitted_on"]  # a localiser stored before the counts were recorded
    assert Localiser.from_tensors(tensors).fitted_on is None


def test_training_stores_the_localiser_in_last_and_best(tmp_path):
    config = TADAConfig(backbone="lenet", num_classes=2, variant="tada")
    config.train.iters, config.train.batch_size, config.train.eval_every = 2, 8, 2
    config.train.out = str(tmp_path / "on")

    seen = []

    class Progress(Callback):
        def on_localiser(self, done, total):
            seen.append((done, total))

    result = train(config, data=bars_run_data(32), callbacks=[Progress()])
    assert seen[-1] == (32 + 32 + 45, 32 + 32 + 45)  # 64 images encoded, 3 seeds × 15 epochs
    for path in (result.last, result.best):
        info, tensors = read_checkpoint(path)
        assert info.extra["localiser"]["tap"] == {"module": "features.3", "upsample": 1}
        assert tensors["localiser.mean"].shape == (1, 32, 1, 1) and tensors["localiser.mean"].dtype == torch.float32
        assert tensors["localiser.fitted_on"].tolist() == [32, 32]  # what the fit saw, in the checkpoint
    config.train.localiser, config.train.out = False, str(tmp_path / "off")
    info, tensors = read_checkpoint(train(config, data=bars_run_data(32)).last)
    assert "localiser" not in info.extra and not any(k.startswith("localiser.") for k in tensors)


def test_a_spot_is_found_at_its_place_after_standardisation():
    """Standardisation is per channel over all positions of both domains (hand computation)."""
    source = torch.zeros(2, 1, 2, 2)
    target = torch.ones(2, 1, 2, 2)
    localiser = fit_localiser(source, target, FitSettings(seeds=(0,), epochs=1))
    assert localiser.mean.item() == pytest.approx(0.5)
    assert localiser.std.item() == pytest.approx(torch.cat([source, target]).std().item())


def test_a_context_tap_appends_the_coarser_map_resized_to_the_fine_positions():
    backbone = build_backbone("lenet").eval()
    x = torch.rand(2, 3, 28, 28)
    plain = tap_features(backbone, tap_for("lenet"), x)  # (2, 32, 14, 14)
    from tada_core.model.localiser import Tap

    tap = Tap("features.3", 1, "features.7")
    with torch.no_grad():
        joined = tap_features(backbone, tap, x)
        coarse = backbone.features[:8](x)  # (2, 64, 7, 7): the context module's own output
    assert joined.shape[:2] == (2, plain.shape[1] + coarse.shape[1]) and joined.shape[-2:] == plain.shape[-2:]
    assert torch.allclose(joined[:, : plain.shape[1]], plain)
    resized = torch.nn.functional.interpolate(coarse, size=plain.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(joined[:, plain.shape[1] :], resized)
    assert Tap.from_dict(tap.to_dict()) == tap and "context" not in tap_for("lenet").to_dict()


def test_a_stored_localiser_is_read_with_the_tap_it_was_fitted_on():
    from tada_core.explain.shift import recorded_tap
    from tada_core.model.localiser import Tap

    default = Tap("net.blocks.2", 2, "net.blocks.3")
    assert recorded_tap({"tap": {"module": "net.blocks.2", "upsample": 2}}, default) == Tap("net.blocks.2", 2)
    assert recorded_tap({"tap": default.to_dict()}, default) == default
    assert recorded_tap(None, default) == Tap("net.blocks.2", 2)  # recorded before taps had a context
    assert recorded_tap({"tap": {"module": 3}}, default) == Tap("net.blocks.2", 2)


def _tiny(seed, n, offset=0.0):
    return (torch.randn(n, 6, 10, 10, generator=torch.Generator().manual_seed(seed)) + offset).half()


@pytest.mark.parametrize(("up_front", "layout"), [(True, "nchw"), (False, "nchw"), (False, "channels_last")])
def test_the_fast_loop_fits_what_the_loop_before_it_fitted(up_front, layout, monkeypatch):
    """The fit standardises once (or per batch above STANDARDISED_BYTES), in channels_last, flipping
    in place: the batches are the old loop's to the bit, the logits equal within float rounding."""
    import tada_core.training.localiser_fit as fit_module
    from tests.localiser_reference import _random_flip, reference_fit

    if not up_front:
        monkeypatch.setattr(fit_module, "STANDARDISED_BYTES", 0)
    source, target, held = _tiny(0, 20), _tiny(1, 13, 0.3), _tiny(2, 5).float()
    if layout == "channels_last":  # as encode_taps stores them
        source, target = (m.contiguous(memory_format=torch.channels_last) for m in (source, target))
    settings = FitSettings(seeds=(0, 1), epochs=4, batch_size=4)
    new, old = (
        fit_localiser(source, target, settings),
        reference_fit(source.contiguous(), target.contiguous(), settings),
    )
    assert torch.equal(new.mean, old.mean) and torch.equal(new.std, old.std)
    with torch.no_grad():
        torch.testing.assert_close(new(held), old(held), atol=1e-4, rtol=0)
    batches = fit_module._Batches(source, new.mean, new.std, once=up_front)
    index = torch.tensor([3, 0, 19, 3, 7])
    mine, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(3):
        assert torch.equal(batches.batch(index, mine), _random_flip(new.standardise(source[index]), theirs))


def test_a_domain_within_the_cap_is_read_whole_and_fitted_as_before():
    """The localisation bench pairs (160 images a domain, under the cap of 500) fit exactly what they did."""
    from tada_core.data.datasets import TensorImages
    from tada_core.training.localiser_fit import encode_taps, sample_indices, stratified_indices
    from tests.localiser_reference import reference_fit

    labels = torch.tensor([2, 0, 0, 1, 2, 2, 0, 1, 1, 0, 2, 1])
    assert (
        stratified_indices(labels, 12) == stratified_indices(labels, 500) == sample_indices(12, 12) == list(range(12))
    )
    generator = torch.Generator().manual_seed(0)
    source = TensorImages(torch.rand(12, 1, 28, 28, generator=generator), labels)
    target = TensorImages(torch.rand(5, 1, 28, 28, generator=generator), torch.full((5,), -1))
    backbone, settings = build_backbone("lenet"), FitSettings(seeds=(0,), epochs=2, max_images=12)
    localiser = fit_for_backbone(backbone, "lenet", source, target, settings=settings)
    tap = tap_for("lenet")
    maps = [encode_taps(backbone, tap, d).contiguous() for d in (source, target)]  # NCHW, as it was
    before = reference_fit(*maps, settings)
    assert localiser.fitted_on == (12, 5)
    held = encode_taps(backbone, tap, target).float()
    with torch.no_grad():
        torch.testing.assert_close(localiser(held), before(held), atol=1e-4, rtol=0)


def test_a_source_over_the_cap_is_sampled_in_proportion_to_its_classes():
    from tada_core.data.datasets import TensorImages, Unlabelled
    from tada_core.training.localiser_fit import known_labels, sample_indices, stratified_indices

    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)[
        torch.randperm(100, generator=torch.Generator().manual_seed(1))
    ]
    picked = stratified_indices(labels, 20)
    assert picked == sorted(set(picked)) and len(picked) == 20
    assert torch.bincount(labels[picked]).tolist() == [12, 6, 2]  # 60 %, 30 %, 10 % of 20
    assert picked == stratified_indices(labels, 20) != stratified_indices(labels, 20, seed=1)  # drawn with the seed
    even = torch.arange(15) % 3  # 5 + 5 + 5 into 10: 3⅓ each, the place left over to the first class
    assert torch.bincount(even[stratified_indices(even, 10)]).tolist() == [4, 3, 3]
    unlabelled = torch.full((100,), -1)
    assert stratified_indices(unlabelled, 20) == sample_indices(100, 20)  # the target: uniform
    images = TensorImages(torch.zeros(100, 1, 2, 2), labels)
    assert torch.equal(known_labels(torch.utils.data.Subset(images, [5, 2])), labels[[5, 2]])
    assert known_labels(torch.utils.data.TensorDataset(torch.zeros(3))) is None  # no image is read
    assert torch.equal(known_labels(Unlabelled(images)), unlabelled)
