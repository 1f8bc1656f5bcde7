"""Safe checkpoints: one ``.safetensors`` file holding weights plus a metadata JSON string.

The metadata (under the key ``"tada"``) holds the config, class names, domains, variant, metrics
and the format version. Loading uses ``safetensors`` only — nothing is ever unpickled, so a
checkpoint from a stranger cannot run code. Writing is atomic: the file is written next to its
destination under a temporary name, flushed to disk, then renamed over it, so an interrupted
run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tada_core.config import TADAConfig
from tada_core.errors import CheckpointError, ConfigError, TadaError
from tada_core.model import TADAModel, build_model

FORMAT_VERSION = 2  # 2: config.head and config.discriminator_bn (version 1: pooled, no BatchNorm)
METADATA_KEY = "tada"
MAX_CHECKPOINT_BYTES = 2 * 2**30
MAX_IMAGE_SIZE = 1024  # largest input side a checkpoint may ask for (inference resizes every image to it)


@dataclass
class CheckpointInfo:
    """The metadata stored beside the weights."""

    config: TADAConfig
    class_names: list[str]
    source: str = ""
    target: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def variant(self) -> str:
        return self.config.variant

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "variant": self.variant,
                "config": self.config.to_dict(),
                "class_names": self.class_names,
                "source": self.source,
                "target": self.target,
                "metrics": self.metrics,
                "extra": self.extra,
            }
        )


def atomic_write(path: str | Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the finished file onto ``path`` (same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(
    path: str | Path,
    model: TADAModel,
    info: CheckpointInfo,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s weights and ``info`` atomically to ``path`` (a ``.safetensors`` file).

    ``extra_tensors`` (e.g. optimizer state for ``--resume``) are stored under their own names,
    which must not start with ``model.``.
    """
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    for key, value in (extra_tensors or {}).items():
        tensors[key] = value.detach().cpu().contiguous()
    metadata = {METADATA_KEY: info.to_json()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return Path(path)


def add_to_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], extra: dict[str, Any] | None = None) -> Path:
    """Rewrite ``path`` (atomically) with ``tensors`` added or replaced and ``extra`` merged into its
    metadata's ``extra``; every other tensor and field is kept as it was."""
    info, stored = read_checkpoint(path)
    info.extra = {**info.extra, **(extra or {})}
    merged = {**stored, **{k: v.detach().cpu().contiguous() for k, v in tensors.items()}}
    metadata = {METADATA_KEY: info.to_json()}
    atomic_write(path, lambda tmp: save_file(merged, tmp, metadata=metadata))
    return Path(path)


def read_info(path: str | Path) -> CheckpointInfo:
    """Only the metadata of a checkpoint (no tensor is read)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path.name} is not a valid .safetensors checkpoint ({err})") from None
    return _parse_metadata(metadata, path.name)


def read_tensors(path: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """Only the tensors of ``path`` whose names start with ``prefix`` (the rest is not read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{Path(path).name} is not a valid .safetensors checkpoint ({err})") from None


def has_tensors(path: str | Path, prefix: str) -> bool:
    """Whether ``path`` stores a tensor whose name starts with ``prefix`` (only the header is read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return any(key.startswith(prefix) for key in handle.keys())  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{Path(path).name} is not a valid .safetensors checkpoint ({err})") from None


def read_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """Read metadata and all tensors from ``path`` without building a model."""
    path = Path(path)
    if path.suffix in (".pt", ".pth", ".ckpt", ".pkl", ".bin"):
        raise CheckpointError(
            f"{path.name} looks like a pickle-based PyTorch file; TADA only loads .safetensors "
            "checkpoints (pickles can run code when loaded). Re-save it with 'tada train' or safetensors."
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a .safetensors file written by 'tada train'")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"checkpoint {path} is larger than {MAX_CHECKPOINT_BYTES // 2**30} GiB; refusing to load")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path.name} is not a valid .safetensors checkpoint ({err})") from None
    return _parse_metadata(metadata, path.name), tensors


def _parse_metadata(metadata: dict[str, str], name: str) -> CheckpointInfo:
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{name} has no TADA metadata; it was not written by TADA Studio ('tada train')")
    try:
        data = json.loads(metadata[METADATA_KEY])
        version = int(data["format_version"])
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{name} has format version {version}, newer than this TADA Studio ({FORMAT_VERSION}); upgrade tada-studio"
            )
        config_data = dict(data["config"])
        if version < 2:  # options added since, whose defaults differ from what those models had
            config_data.setdefault("head", "pool")
        # added within format 2: files written before it have no key and no BatchNorm in G_d
        config_data.setdefault("discriminator_bn", False)
        # and one forward over source + target (shared BatchNorm statistics) before train.joint_forward existed,
        # all of the source trained on before train.source_holdout existed
        config_data["train"] = {"joint_forward": True, "source_holdout": 0.0, **dict(config_data.get("train") or {})}
        config = TADAConfig.from_dict(config_data)
        if config.image_size is not None and not 0 < int(config.image_size) <= MAX_IMAGE_SIZE:
            raise CheckpointError(
                f"{name} asks for {config.image_size}×{config.image_size} input images; "
                f"TADA Studio accepts 1 to {MAX_IMAGE_SIZE}, so the file is damaged or not from 'tada train'"
            )
        class_names = [str(c) for c in data["class_names"]]
        if len(class_names) != config.num_classes:
            raise CheckpointError(f"{name}: {len(class_names)} class names but num_classes={config.num_classes}")
        return CheckpointInfo(
            config=config,
            class_names=class_names,
            source=str(data.get("source", "")),
            target=str(data.get("target", "")),
            metrics=dict(data.get("metrics") or {}),
            extra=dict(data.get("extra") or {}),
            format_version=version,
        )
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError, ConfigError) as err:
        raise CheckpointError(f"{name} has unreadable TADA metadata ({type(err).__name__}: {err})") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[TADAModel, CheckpointInfo]:
    """Rebuild the model stored in ``path`` (in eval mode) and return it with its metadata.

    Raises:
        CheckpointError: missing file, pickle file, corrupt file or metadata, or weights that do
            not fit the model the metadata describes (wrong shapes, missing or extra keys).
    """
    info, tensors = read_checkpoint(path)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    config = info.config.replace(pretrained=False)  # the weights come from the file
    try:
        # Shapes first, on the meta device (no memory): metadata asking for huge layers is refused
        # before anything is allocated; a model whose shapes match is no larger than the file.
        with torch.device("meta"):
            expected = build_model(config).state_dict()
    except (TadaError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{Path(path).name}: its config cannot build a model ({err})") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:5])}" if missing else "",
                f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
                f"wrong shape {', '.join(f'{k} {tuple(state[k].shape)}≠{tuple(expected[k].shape)}' for k in wrong[:5])}"
                if wrong
                else "",
            )
            if part
        )
        raise CheckpointError(f"{Path(path).name} does not match its own config ({details}); the file is damaged")
    model = build_model(config)
    model.load_state_dict(state)
    model.config = info.config
    return model.to(device).eval(), info
