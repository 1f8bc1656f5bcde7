"""Checkpoints uploaded on the Model tab: kept under their content hash, shown under the visitor's name."""

from __future__ import annotations

import pytest

from app.serving.context import AppContext
from app.serving.jobs import JobManager
from app.serving.uploads import file_digest, keep_by_hash
from app.tabs.model import add_uploaded_checkpoint
from tada_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from tada_core.config import TADAConfig
from tada_core.errors import CheckpointError
from tada_core.model import build_model
from tests.test_app import DIGITS, make_checkpoints


def visitor_file(folder, variant: str, name: str = "model.safetensors"):
    """A checkpoint a visitor uploads as ``name`` (Gradio keeps each upload in its own folder)."""
    folder.mkdir(parents=True)
    config = TADAConfig(variant=variant, backbone="lenet", num_classes=10)
    return save_checkpoint(folder / name, build_model(config), CheckpointInfo(config, DIGITS))


def test_two_visitors_uploading_model_safetensors_keep_both(tmp_path):
    ctx = AppContext.create(
        data_dir=tmp_path / "runs", shipped_dir=make_checkpoints(tmp_path / "ship"), jobs=JobManager()
    )
    first = add_uploaded_checkpoint(ctx, "visitor1", visitor_file(tmp_path / "a", "tada"))
    second = add_uploaded_checkpoint(ctx, "visitor1", visitor_file(tmp_path / "b", "source_only"))
    assert (first.name, second.name) == ("model", "model-2")
    assert first.path != second.path and first.path.name == second.path.name == "model.safetensors"
    assert load_checkpoint(first.path)[1].variant == "tada"
    assert load_checkpoint(ctx.registry.resolve("model-2", "visitor1").path)[1].variant == "source_only"
    copy = tmp_path / "c" / "copy.safetensors"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "a" / "model.safetensors").read_bytes())
    again = add_uploaded_checkpoint(ctx, "visitor1", copy)  # the same bytes are stored once, under their first name
    assert (again.name, again.path) == ("model", first.path)
    assert len(list(first.path.parent.parent.glob("*/*.safetensors"))) == 2
    other = add_uploaded_checkpoint(ctx, "visitor2", visitor_file(tmp_path / "d", "dann"))
    assert other.name == "model" and "model-2" not in ctx.registry.names("visitor2")  # each sees their own
    with pytest.raises(CheckpointError, match="unknown checkpoint"):
        ctx.registry.resolve("model", None)


def test_uploads_and_runs_come_back_after_a_restart(tmp_path):
    def create():
        return AppContext.create(data_dir=tmp_path / "data", shipped_dir=make_checkpoints(tmp_path / "ship"))

    first = create()
    add_uploaded_checkpoint(first, "v1", visitor_file(tmp_path / "a", "tada"))
    add_uploaded_checkpoint(first, "v1", visitor_file(tmp_path / "b", "dann"))
    run = first.storage.runs("v1") / "20260101-000000-tada"
    run.mkdir(parents=True)
    (run / "last.safetensors").write_bytes((tmp_path / "a" / "model.safetensors").read_bytes())
    before = first.registry.names("v1")
    again = create()  # a new process would see the same folder
    assert again.registry.names("v1") == before
    assert {"model", "model-2", "runs/20260101-000000-tada"} <= set(before)
    assert again.storage.secret() == first.storage.secret()  # browsers keep their visitor tokens


def test_a_refused_upload_stores_nothing(tmp_path):
    ctx = AppContext.create(
        data_dir=tmp_path / "runs", shipped_dir=make_checkpoints(tmp_path / "ship"), jobs=JobManager()
    )
    bad = tmp_path / "x" / "model.safetensors"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        add_uploaded_checkpoint(ctx, "visitor1", bad)
    with pytest.raises(CheckpointError, match="not a .safetensors file"):
        add_uploaded_checkpoint(ctx, "visitor1", bad.rename(bad.with_suffix(".pt")))
    assert not (tmp_path / "runs" / "visitors").exists()


def test_keep_by_hash_copies_once_into_a_folder_named_by_content(tmp_path):
    source = tmp_path / "in put.bin"
    source.write_bytes(b"abc")
    kept = keep_by_hash(source, tmp_path / "kept")
    assert kept == tmp_path / "kept" / file_digest(source) / "in_put.bin"
    assert kept.read_bytes() == b"abc"
    inode = kept.stat().st_ino
    assert keep_by_hash(source, tmp_path / "kept") == kept and kept.stat().st_ino == inode
    assert [p.name for p in (tmp_path / "kept").iterdir()] == [kept.parent.name]
