"""Analysis (features, t-SNE, A-distance, domain attention) and batched attention inference."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from tada_core import DataError, TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from tada_core.data import Domain
from tada_core.explain.features import a_distance, collect_features, domain_attention_stats, subset_indices, tsne_embed
from tada_core.explain.inference import predict_attention, preprocess

CLASSES = [str(i) for i in range(10)]


class _LabelledTensors(TensorDataset):
    """(image, int label) pairs, like the data layer's datasets."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, int(y)


def _domain(n=50, seed=0, name="tiny"):
    g = torch.Generator().manual_seed(seed)
    return Domain(name, CLASSES, _LabelledTensors(torch.randn(n, 3, 28, 28, generator=g), torch.arange(n) % 10))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = TADAConfig(backbone="lenet", num_classes=10, variant="tada")
    path = tmp_path_factory.mktemp("ckpt") / "random.safetensors"
    save_checkpoint(path, build_model(config), CheckpointInfo(config, CLASSES, "mnist", "mnistm"))
    return load_checkpoint(path)


def _gaussians(shift, n=200, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + shift


def test_a_distance_near_zero_for_one_distribution_and_two_for_separable():
    assert a_distance(*_gaussians(0.0)) < 0.3
    assert a_distance(*_gaussians(5.0)) > 1.8
    middle = a_distance(*_gaussians(0.4))
    assert 0.3 < middle < 1.8  # partly overlapping domains land in between
    with pytest.raises(DataError):
        a_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_a_distance_is_not_fooled_by_unequal_domain_sizes():
    rng = np.random.default_rng(1)
    assert a_distance(rng.normal(size=(400, 8)), rng.normal(size=(40, 8))) < 0.3


def test_tsne_is_deterministic_given_the_seed():
    features = np.random.default_rng(0).normal(size=(120, 64)).astype(np.float32)
    a = tsne_embed(features, seed=0, n_jobs=1)
    assert a.shape == (120, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, tsne_embed(features, seed=0, n_jobs=1))
    assert not np.allclose(a, tsne_embed(features, seed=1, n_jobs=1))
    assert tsne_embed(features[:10], seed=0).shape == (10, 2)  # perplexity lowered for tiny N
    with pytest.raises(DataError):
        tsne_embed(features[:3])


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(size=(60, 32)), rng.normal(size=(60, 32)) + 8.0])
    xy = tsne_embed(features, seed=0, n_jobs=1)
    gap = np.linalg.norm(xy[:60].mean(0) - xy[60:].mean(0))
    assert gap > 3 * max(xy[:60].std(0).max(), xy[60:].std(0).max())


def test_subset_indices_size_seed_and_bounds():
    a = subset_indices(100, 30, seed=0)
    assert len(a) == 30 == len(set(a.tolist())) and a.min() >= 0 and a.max() < 100
    np.testing.assert_array_equal(a, subset_indices(100, 30, seed=0))
    assert not np.array_equal(a, subset_indices(100, 30, seed=1))
    np.testing.assert_array_equal(subset_indices(10, None), np.arange(10))
    np.testing.assert_array_equal(subset_indices(10, 50), np.arange(10))


def test_collect_features_subset_determinism_and_mode_restored(checkpoint):
    model, _ = checkpoint
    model.train()
    domain = _domain()
    feats = collect_features(model, domain, max_points=20, batch_size=8, seed=3)
    assert model.training  # mode restored
    assert feats.features.shape == (20, 256) and feats.features.dtype == np.float32
    assert feats.local_attention.shape == (20, 7, 7) and feats.global_attention.shape == (20,)
    np.testing.assert_array_equal(feats.labels, feats.indices % 10)  # rows follow the chosen indices
    again = collect_features(model, domain, max_points=20, batch_size=32, seed=3)
    np.testing.assert_array_equal(feats.indices, again.indices)
    np.testing.assert_allclose(feats.features, again.features, atol=1e-5)  # eval mode: batch size is irrelevant
    assert len(collect_features(model, domain, batch_size=64)) == 50


def test_domain_attention_stats_is_the_mean_of_the_per_image_maps(checkpoint):
    model, _ = checkpoint
    domain = _domain(n=30)
    stats = domain_attention_stats(model, domain, batch_size=7)
    feats = collect_features(model, domain)
    assert stats.count == 30 and stats.mean_grid.shape == (7, 7)
    np.testing.assert_allclose(stats.mean_grid, feats.local_attention.mean(0), atol=1e-6)
    assert ((stats.m_values >= 1) & (stats.m_values <= 2)).all()
    source_only = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="source_only"))
    none = domain_attention_stats(source_only, domain)
    assert none.mean_grid is None and none.m_values is None


def _png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_attention_on_random_lenet_any_image_mode(checkpoint):
    model, info = checkpoint
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L"),  # grayscale
        Image.fromarray(rng.integers(0, 256, (40, 30, 4), dtype=np.uint8), mode="RGBA"),
        Image.fromarray(rng.integers(0, 256, (1200, 900, 3), dtype=np.uint8)),  # large
        _png_bytes(Image.new("P", (17, 23))),  # encoded bytes, palette mode
    ]
    model.train()  # predict_attention must switch to eval (BatchNorm, dropout) and switch back
    results = predict_attention(model, info, images, top_k=3, batch_size=3)  # two batches
    assert len(results) == 4 and model.training
    model.eval()
    for r in results:
        assert r.image.shape == (28, 28, 3) and r.image.dtype == np.uint8
        assert r.grid.shape == (7, 7) and r.grid.dtype == np.float32
        assert 0.0 <= r.grid.min() and r.grid.max() <= 1.0
        assert r.probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert len(r.top_k) == 3 and r.top_k[0][0] == r.predicted == CLASSES[int(r.probs.argmax())]
        assert [p for _, p in r.top_k] == sorted((p for _, p in r.top_k), reverse=True)
        assert 1.0 <= r.global_attention <= 2.0 and 0.0 <= r.domain_prob <= 1.0
    # the batch result equals one image at a time, and the display array is the input un-normalised
    single = predict_attention(model, info, images[:1])[0]
    np.testing.assert_allclose(single.grid, results[0].grid, atol=1e-5)
    np.testing.assert_array_equal(results[0].image[..., 0], np.asarray(images[0]))
    batch, displays = preprocess(images[:1], info)
    assert batch.shape == (1, 3, 28, 28) and float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0
    np.testing.assert_array_equal(displays[0], results[0].image)


def test_predict_attention_without_local_attention_and_bad_bytes():
    config = TADAConfig(backbone="lenet", num_classes=10, variant="dann")
    model, info = build_model(config), CheckpointInfo(config, CLASSES)
    [r] = predict_attention(model, info, [Image.new("RGB", (28, 28))])
    assert r.grid is None and r.global_attention is not None
    with pytest.raises(DataError):
        predict_attention(model, info, [b"not an image"])
