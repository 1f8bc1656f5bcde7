"""The frozen cache on disk: rows read one at a time, written atomically, reused when the key matches."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tada_core.training import feature_cache
from tada_core.training.feature_cache import CachedMaps, backbone_maps
from tada_core.training.map_store import MapStore, MapStoreWriter, open_store


def _write(path, maps, labels, key):
    with MapStoreWriter(path, maps.shape[1:], key) as out:
        out.append(maps[:3], labels[:3])
        out.append(maps[3:], labels[3:])
    return out


def test_a_store_reads_back_every_kind_of_index(tmp_path):
    maps, labels = torch.randn(7, 2, 3, 3).half(), torch.arange(7)
    store = _write(tmp_path / "m.f16", maps, labels, {"a": 1}).store()
    assert isinstance(store, MapStore) and store.shape == maps.shape and len(store) == 7
    assert torch.equal(store[2], maps[2]) and torch.equal(store[-1], maps[-1])
    assert torch.equal(store[1:5], maps[1:5]) and torch.equal(store[::3], maps[::3])
    assert torch.equal(store[[4, 0, 4]], maps[[4, 0, 4]]) and torch.equal(store[torch.tensor([6, 1])], maps[[6, 1]])
    assert torch.equal(torch.cat(list(store.chunks(3))), maps) and torch.equal(store.labels, labels)
    with pytest.raises(IndexError):
        store[7]
    again = open_store(tmp_path / "m.f16", {"a": 1})
    assert again is not None and torch.equal(again[0:7], maps)
    assert open_store(tmp_path / "m.f16", {"a": 2}) is None and open_store(tmp_path / "x.f16", {}) is None


def test_an_interrupted_write_leaves_no_store(tmp_path):
    with pytest.raises(RuntimeError), MapStoreWriter(tmp_path / "m.f16", (2,), {}) as out:
        out.append(torch.zeros(3, 2), [0, 0, 0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == [] and open_store(tmp_path / "m.f16", {}) is None


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * 2


def test_backbone_maps_go_to_disk_above_the_limit_and_are_reused(tmp_path, monkeypatch):
    images, labels = torch.randn(10, 3, 2, 2), torch.arange(10) % 3
    dataset = TensorDataset(images, labels)
    in_memory, _ = backbone_maps(_Counting(), dataset, batch_size=4)
    monkeypatch.setattr(feature_cache, "IN_MEMORY_BYTES", 0)
    counted, net = [], _Counting()
    stored, stored_labels = backbone_maps(
        net, dataset, batch_size=4, store=tmp_path / "s.f16", key={"k": 1}, on_batch=counted.append
    )
    assert isinstance(stored, MapStore) and net.calls == 3 and sum(counted) == 10
    assert torch.equal(stored[0:10], in_memory) and torch.equal(stored_labels, labels)
    again, again_labels = backbone_maps(net, dataset, store=tmp_path / "s.f16", key={"k": 1}, on_batch=counted.append)
    assert net.calls == 3 and sum(counted) == 20  # nothing encoded again; progress still says all done
    assert torch.equal(again[0:10], in_memory) and torch.equal(again_labels, labels)
    torch.manual_seed(0)
    from_disk = CachedMaps(stored, stored_labels).__getitems__([3, 7])
    from_memory = CachedMaps(in_memory, labels).__getitems__([3, 7])
    for (a, y), (b, z) in zip(from_disk, from_memory, strict=True):
        assert torch.equal(a, b) and y == z
