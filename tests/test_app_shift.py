"""The app's shift view: which view a checkpoint opens on, and that an uploaded file's domain paths
are never read to fit anything."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.serving.checkpoints import Entry
from app.serving.context import AppContext
from app.serving.shift import default_view_for, localiser_for, readable
from app.tabs.attention_report import attention_report, shift_checkpoint, shift_examples
from tada_core import TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, save_checkpoint
from tada_core.explain.geometry import input_geometry
from tests.test_app import DIGITS


def _checkpoint(path, source, target):
    config = TADAConfig(variant="tada", backbone="lenet", num_classes=10)
    save_checkpoint(
        path, build_model(config), CheckpointInfo(config=config, class_names=DIGITS, source=source, target=target)
    )
    return path


def test_an_uploaded_checkpoint_naming_server_folders_is_not_fitted(tmp_path, monkeypatch):
    import tada_core.explain.shift as S

    ctx = AppContext.create(data_dir=tmp_path / "runs", data_root=tmp_path / "data", shipped_dir=tmp_path / "none")
    # not even opened to price a fit or to pick the default view
    monkeypatch.setattr(S, "load_domain", lambda *a, **k: pytest.fail("an uploaded file's domain was opened"))
    folder = tmp_path / "secret"
    (folder / "a").mkdir(parents=True)
    path = _checkpoint(tmp_path / "up.safetensors", str(folder), str(folder))
    upload = Entry("up", path, "upload")
    assert not readable(upload) and readable(Entry("up", path, "added"))
    localiser, note = localiser_for(ctx, upload, fit=True)
    assert localiser is None and "uploaded checkpoint" in note and str(folder) not in note
    assert default_view_for(ctx, upload) == "attention"
    assert localiser_for(ctx, upload, fit=False)[1].startswith("its shift localiser is not fitted yet")


def test_shift_examples_open_the_shipped_shift_model_with_the_artefact_outlined(tmp_path):
    ctx = AppContext.create(data_dir=tmp_path / "runs", data_root=tmp_path / "data")
    name = shift_checkpoint(ctx.registry.names())
    assert name == "tada_shift_text"
    assert default_view_for(ctx, ctx.registry.resolve(name)) == "shift"  # stored in the shipped file
    examples = shift_examples()
    source, target = examples["source"][:1], examples["target"][:1]
    report, gallery, values = attention_report(ctx, name, "(none)", source, target, "jet", 0.5, "smooth", "shift")
    outlined, _, _ = attention_report(
        ctx, name, "(none)", source, target, "jet", 0.5, "smooth", "shift", "shared", None, truth=True
    )
    assert "No shift map" not in report and len(gallery) == 2
    shift = [np.array(r["views"]["shift"]) for r in values["results"]]
    assert shift[0].shape == (56, 56) and shift[1].max() > shift[0].max()  # the target's artefact lights up
    assert outlined != report  # the target's overlay carries the outline; the source has no mask
    with Image.open(target[0]) as image:
        box = list(input_geometry(*image.size, 224).box)
    first = values["results"][1]
    assert first["view_boxes"]["shift"] == {"box": box, "shape": [56, 56]} and first["grid_box"] == box
    assert first["localiser"] is None and "fitted on" not in report  # shipped before the counts were recorded


def test_a_slow_fit_runs_in_the_background_and_the_request_does_not_wait(tmp_path, monkeypatch):
    from tada_core.explain.shift import LocaliserStore, ShiftStatus

    ctx = AppContext.create(data_dir=tmp_path / "runs", data_root=tmp_path / "data", shipped_dir=tmp_path / "none")
    path = _checkpoint(tmp_path / "old.safetensors", "mnist", "mnistm")
    started = []
    fittable = ShiftStatus(False, True, "fittable", seconds=240.0)
    monkeypatch.setattr(LocaliserStore, "status", lambda self, p: fittable)
    monkeypatch.setattr(LocaliserStore, "fit_in_background", lambda self, p: started.append(p))
    monkeypatch.setattr(LocaliserStore, "get", lambda self, p: pytest.fail("the request fitted inline"))
    entry = Entry("old", path, "added")
    localiser, note = localiser_for(ctx, entry, fit=True)
    assert localiser is None and "background (about 240 s" in note and started == [path]
    assert default_view_for(ctx, entry) in ("gap", "attention") and started == [path]  # picking it fits nothing


def test_a_ready_localiser_is_kept_per_file_and_read_again_when_the_file_changes(tmp_path, monkeypatch):
    """After the first request no file is read for the localiser; a rewritten checkpoint (new mtime
    and size) is read again, and its own localiser is the one used."""
    import os

    import tada_core.explain.shift as S
    from tada_core.checkpoint import add_to_checkpoint
    from tada_core.model.localiser import Localiser

    ctx = AppContext.create(data_dir=tmp_path / "runs", data_root=tmp_path / "data", shipped_dir=tmp_path / "none")
    path = _checkpoint(tmp_path / "stored.safetensors", "mnist", "mnistm")
    add_to_checkpoint(
        path, Localiser(32, seeds=1).to_tensors(), {"localiser": {"tap": {"module": "features.3", "upsample": 1}}}
    )
    entry = Entry("stored", path, "added")
    first, note = localiser_for(ctx, entry, fit=False)
    assert note is None and first.origin == "stored" and first.localiser.mean.shape[1] == 32

    for name in ("read_info", "read_tensors", "has_tensors", "content_hash"):
        monkeypatch.setattr(S, name, lambda *a, **k: pytest.fail("the file was read again"))
    assert localiser_for(ctx, entry, fit=False)[0] is first
    monkeypatch.undo()

    replacement = Localiser(32, seeds=2)
    add_to_checkpoint(path, replacement.to_tensors(), {"localiser": {"tap": {"module": "features.3", "upsample": 1}}})
    os.utime(path, ns=(1, 1))  # a new mtime, whatever the file system's clock resolution
    second, _ = localiser_for(ctx, entry, fit=False)
    assert second is not first and len(second.localiser.scorers) == 2
