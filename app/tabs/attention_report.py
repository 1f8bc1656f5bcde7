"""The Attention tab's report: the chosen checkpoint(s) on the uploaded images → HTML cards with one
view's overlay per image, the overlay files and the values (:func:`attention_report`, the API
``/attention`` and the page call it), and the example sets the tab offers.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from app.render import COLORMAPS, card_html, colorbar_html, message_html, model_block_html
from app.serving.checkpoints import Entry, load_model
from app.serving.context import AppContext
from app.serving.familiarity import upload_notes
from app.serving.ground_truth import SHIFT_EXAMPLES_DIR, mask_for, outline
from app.serving.shift import localiser_for, readable
from app.serving.uploads import file_paths
from app.ui import NONE
from tada_core.data import load_image
from tada_core.errors import DataError
from tada_core.explain.gap import GapError, RegionProbes, checkpoint_gap
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import view_grid
from tada_core.explain.views import SCALE_NAMES, VIEWS, check_view, flat_note, range_text, value_ranges
from tada_core.explain.viz import overlay_view

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
PHOTO_EXAMPLES_DIR = EXAMPLES_DIR / "photos"
EMOJI_EXAMPLES_DIR = EXAMPLES_DIR / "emoji"  # Twemoji → Noto; licences in its ATTRIBUTION.md
MAX_IMAGES = 16  # per role
MAX_UPLOAD_BYTES = 50 * 2**20
TOP_K = 5
DEFAULT_VIEW = "shift"


def _by_role(folder: Path, suffix: str) -> dict[str, list[str]]:
    """The files ``<role>_*<suffix>`` of ``folder`` by role, sorted: ``{"source": [...], "target": [...]}``."""
    return {role: [str(p) for p in sorted(folder.glob(f"{role}_*{suffix}"))] for role in ("source", "target")}


def photo_examples(folder: Path = PHOTO_EXAMPLES_DIR) -> dict[str, list[str]]:
    """The photo-pair example JPEGs by role (``source_<class>.jpg``, ``target_<class>.jpg``)."""
    return _by_role(folder, ".jpg")


def photo_checkpoint(names: list[str]) -> str | None:
    """The first checkpoint trained on the photo pair (its name mentions photos), if any."""
    return next((n for n in names if "photos" in n and not n.startswith("source_only")), None)


def emoji_examples(folder: Path = EMOJI_EXAMPLES_DIR) -> dict[str, list[str]]:
    """The emoji example PNGs by role: the same emojis drawn by Twemoji (``source_<class>.png``) and
    Noto (``target_<class>.png``)."""
    return _by_role(folder, ".png")


def emoji_checkpoint(names: list[str]) -> str | None:
    """The first checkpoint trained on an emoji pair (its name mentions emoji), if any."""
    return next((n for n in names if "emoji" in n and not n.startswith("source_only")), None)


def shift_examples(folder: Path = SHIFT_EXAMPLES_DIR) -> dict[str, list[str]]:
    """The localised-shift example PNGs by role (a planted artefact in every target image)."""
    return _by_role(folder, ".png")


def shift_checkpoint(names: list[str]) -> str | None:
    """The first checkpoint trained on a localised-shift pair (its name mentions shift), if any."""
    return next((n for n in names if "shift" in n), None)


def read_uploads(paths: list[str], role: str) -> list[tuple[str, Image.Image]]:
    """Decode uploaded images; a clear DataError names the file that is not an image."""
    if len(paths) > MAX_IMAGES:
        raise DataError(f"{len(paths)} {role} images uploaded; the app shows at most {MAX_IMAGES} per domain")
    images = []
    for path in paths:
        name = Path(path).name
        try:
            if Path(path).stat().st_size > MAX_UPLOAD_BYTES:
                raise DataError(f"it is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; upload a smaller PNG or JPEG")
            images.append((name, load_image(Path(path).read_bytes())))
        except DataError as err:
            raise DataError(f"{role} image '{name}': {err}") from None
        except OSError as err:
            raise DataError(f"{role} image '{name}' cannot be read ({err.strerror})") from None
    return images


def _probes(ctx: AppContext, entry: Entry) -> tuple[RegionProbes | None, str | None]:
    """The checkpoint's domain-gap probes (fitted once, then cached), or None and why not."""
    if not readable(entry):
        return None, "an uploaded checkpoint's domains are read only when they are built-in, and these are not"
    try:
        return checkpoint_gap(entry.path, data_root=str(ctx.domains.data_root)), None
    except GapError as err:
        return None, str(err)


def _legend(cmap: str, view: str, scale: str, ranges: list[tuple[float, float] | None]) -> str:
    spec = VIEWS[view]
    label = f"{spec.label} — {spec.meaning} · {SCALE_NAMES[scale]}"
    present = [r for r in ranges if r is not None]
    if scale == "image" or not present:
        bar = colorbar_html(cmap, "min", "max", label)
    else:
        bar = colorbar_html(cmap, *range_text(present[0]), label)
    flat = [note for note in map(flat_note, present) if note] if scale != "fixed" else []
    if not flat:
        return bar
    which = "every map" if len(flat) == len(present) else f"{len(flat)} of {len(present)} maps"
    return bar + message_html(f"{which.capitalize()}: {flat[0]}.", "warning")


def _truth_masks(paths: list[str]) -> list:
    """The ground-truth mask of each upload that is a shift example (None for the others)."""
    masks = []
    for path in paths:
        try:
            masks.append(mask_for(Path(path).read_bytes()))
        except OSError:
            masks.append(None)
    return masks


def attention_report(
    ctx: AppContext,
    checkpoint: str,
    compare_with: str | None,
    source_files,
    target_files,
    cmap: str,
    alpha: float,
    mode: str,
    view: str = DEFAULT_VIEW,
    scale: str = "shared",
    owner: str | None = None,
    truth: bool = False,
) -> tuple[str, list, dict]:
    """Run the chosen checkpoint(s) on the images; return the HTML report, overlays and values.

    All maps of the request share one colour range under the ``shared`` scale (fitted to their
    values), so source and target images and both checkpoints stay comparable. With ``truth``, the
    artefact of each shift example among the images is outlined on its overlays.
    """
    if cmap not in COLORMAPS:
        raise DataError(f"unknown colormap '{cmap}'; choose one of {', '.join(COLORMAPS)}")
    if mode not in ("smooth", "blocky"):
        raise DataError(f"mode must be 'smooth' or 'blocky', not '{mode}'")
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    spec = check_view(view, scale)
    paths = {"source": file_paths(source_files), "target": file_paths(target_files)}
    items = [("source", *x) for x in read_uploads(paths["source"], "source")]
    items += [("target", *x) for x in read_uploads(paths["target"], "target")]
    masks = _truth_masks(paths["source"] + paths["target"]) if truth else [None] * len(items)
    if not items:
        raise DataError("no images: upload source and/or target images, or press 'Example images'")
    names = [checkpoint] + ([compare_with] if compare_with and compare_with not in (NONE, checkpoint) else [])
    options = {"view": view, "scale": scale, "cmap": cmap, "alpha": alpha, "mode": mode}
    images = [im for _, _, im in items]
    per_checkpoint, notes = [], []
    for name in names:
        entry = ctx.registry.resolve(name, owner)
        model, info = load_model(entry.path)
        probes, gap_note = _probes(ctx, entry) if view == "gap" else (None, "shown when the gap view is chosen")
        localiser, shift_note = localiser_for(ctx, entry, fit=view == "shift")
        results = predict_attention(model, info, images, top_k=TOP_K, probes=probes, localiser=localiser)
        per_checkpoint.append((name, info, results, {"gap": gap_note, "shift": shift_note}))
        notes.append(upload_notes(entry.path, model, info, images))  # None, or why the image is unfamiliar
    grids = [view_grid(result, view) for _, _, results, _ in per_checkpoint for result in results]
    ranges = value_ranges(grids, scale, spec.fixed_range)  # checkpoint-major, like grids
    cards, gallery, values, warnings = [], [], [], []
    for i, (role, file_name, _) in enumerate(items):
        blocks = []
        for c, ((name, info, results, view_notes), unfamiliar) in enumerate(zip(per_checkpoint, notes, strict=True)):
            result, value_range = results[i], ranges[c * len(items) + i]
            if unfamiliar[i]:
                warnings.append(message_html(f"{role} image '{file_name}' on {name}: {unfamiliar[i]}.", "warning"))
            overlay = overlay_view(result, view=view, value_range=value_range, cmap=cmap, alpha=alpha, mode=mode)
            if masks[i] is not None and value_range is not None:
                overlay = outline(overlay, masks[i])
            blocks.append(
                model_block_html(
                    name, info.variant, result, overlay, options, value_range, view_notes["gap"], view_notes["shift"]
                )
            )
            note = f"pred {result.predicted}" if value_range is not None else f"no {view} map"
            gallery.append((ctx.images.png(overlay), f"{role} · {file_name} · {name} · {view} · {note}"))
            values.append(
                {
                    "role": role,
                    "file": file_name,
                    "checkpoint": name,
                    "variant": info.variant,
                    **result.to_dict(),
                    "value_range": list(value_range) if value_range else None,
                    "gap_note": view_notes["gap"],
                    "shift_note": view_notes["shift"],
                    "unfamiliar": unfamiliar[i],
                }
            )
        cards.append(card_html(file_name, role, per_checkpoint[0][2][i].image, blocks))
    legend = _legend(cmap, view, scale, ranges)
    report = f'<div class="tada-report">{"".join(warnings)}{legend}{"".join(cards)}</div>'
    return report, gallery, {"options": options, "checkpoints": names, "results": values}
