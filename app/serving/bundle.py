"""A trained checkpoint as one download: the ``.safetensors`` file and its model card, zipped.

    >>> checkpoint_bundle(Path("…/runs/20261204-120000-tada/best.safetensors"))
    PosixPath('…/runs/20261204-120000-tada/download/20261204-120000-tada.zip')

The zip is made once per checkpoint version (remade when the checkpoint is newer) inside the run
folder, written to a temporary name and renamed, so a download never sees a half-written file.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from tada_core.checkpoint import read_checkpoint
from tada_core.explain.card import model_card, read_history


def checkpoint_bundle(checkpoint: Path) -> Path:
    """The zip of ``checkpoint`` (named after its run folder) and its model card."""
    run = checkpoint.parent
    folder = run / "download"
    bundle = folder / f"{run.name}.zip"
    if bundle.is_file() and bundle.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns:
        return bundle
    info, _ = read_checkpoint(checkpoint)
    card = model_card(info, read_history(run / "metrics.jsonl"), name=f"{run.name}.safetensors")
    folder.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".zip")
    os.close(handle)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.write(checkpoint, f"{run.name}.safetensors")
            archive.writestr(f"{run.name}.md", card)
        os.replace(partial, bundle)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return bundle
