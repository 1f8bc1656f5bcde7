"""Local artefacts stamped on photos, each with its ground-truth mask, and the global changes of controls.

Every stamp takes a uint8 (H, W, 3) RGB image, the window ``(x0, y0, side)`` it may draw in and a
NumPy generator, and returns the stamped copy and a bool (H, W) mask of the pixels it changed.
Positions, sizes and contents are random per image; sizes are in pixels of a 224-px window:

    watermark  a semi-transparent light ring, star, 1–3 letters or boxed bar; 24–56 px, alpha 0.35–0.6
    text       a camera date / label stamp (OpenCV Hershey font, orange, yellow or white), 5–9
               characters such as ``12 07 '19`` or ``IMG0042``, glyphs 11–20 px high (box ~66×14 px)
    dust       a dark blurred blob (lens dust): radii 6–18 px, Gaussian σ 2.5–5 px, 35–70 % darker
    defect     a sensor defect: a 1–2 px saturated line 30–80 px long and a cluster of 12–30 hot
               pixels near one end (the kind kept out of every tuning decision)

:func:`global_change` is what separates the two domains of a *control* pair, applied before
stamping so that the artefact has the same distribution in both domains.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

KINDS = ("watermark", "text", "dust", "defect")
Stamp = Callable[[np.ndarray, tuple[int, int, int], np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _place(window: tuple[int, int, int], rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of a ``width`` × ``height`` box inside the window, uniformly at random."""
    x0, y0, side = window
    return x0 + int(rng.integers(0, max(1, side - width + 1))), y0 + int(rng.integers(0, max(1, side - height + 1)))


def _blend(image: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    out = image.astype(np.float32) * (1 - a) + np.asarray(colour, np.float32) * a
    return np.clip(out, 0, 255).astype(np.uint8)


def watermark(
    image: np.ndarray, window: tuple[int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A semi-transparent light ring, star, 1–3 letters or boxed bar."""
    import cv2

    bw = int(rng.integers(24, 56))
    bh = int(rng.integers(14, 40)) if rng.random() < 0.5 else bw
    x, y = _place(window, rng, bw, bh)
    layer = np.zeros(image.shape[:2], np.uint8)
    shape, cx, cy = int(rng.integers(0, 4)), x + bw // 2, y + bh // 2
    if shape == 0:  # ring
        cv2.ellipse(layer, (cx, cy), (bw // 2 - 1, bh // 2 - 1), 0, 0, 360, 255, int(rng.integers(2, 5)))
    elif shape == 1:  # five-pointed star
        outer, inner = min(bw, bh) / 2 - 1, min(bw, bh) / 5
        angles = np.pi * np.arange(10) / 5 - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, outer, inner)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(layer, [points], 255)
    elif shape == 2:  # letters
        letters = "".join(rng.choice(list("ABCDEFGHKMRSTWXZ"), size=int(rng.integers(1, 4))))
        (tw, th), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_DUPLEX, 1.0, 2)
        scale = min(bw / tw, bh / th)
        (tw, th), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
        cv2.putText(layer, letters, (x, y + th), cv2.FONT_HERSHEY_DUPLEX, scale, 255, 2, cv2.LINE_AA)
    else:  # a boxed bar, like a logo
        cv2.rectangle(layer, (x, y), (x + bw - 1, y + bh - 1), 255, 2)
        cv2.rectangle(layer, (x + 4, cy - 2), (x + bw - 5, cy + 2), 255, -1)
    alpha = layer.astype(np.float32) / 255 * rng.uniform(0.35, 0.6)
    colour = (255, 255, 255) if rng.random() < 0.7 else tuple(int(v) for v in rng.integers(180, 256, 3))
    return _blend(image, alpha, colour), alpha > 0.05


DATE_COLOURS = ((255, 140, 20), (255, 200, 40), (255, 90, 30), (250, 250, 250))


def text(image: np.ndarray, window: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A camera date or label stamp: 5–9 characters, glyphs 11–20 px high."""
    import cv2

    day, month, year = int(rng.integers(1, 32)), int(rng.integers(1, 13)), int(rng.integers(0, 100))
    label = [
        f"{day:02d} {month:02d} '{year:02d}",
        f"{day:02d}.{month:02d}.{year:02d}",
        f"'{year:02d} {month} {day}",
        f"{month:02d}/{year:02d}",
        f"IMG{int(rng.integers(0, 10000)):04d}",
    ][int(rng.integers(0, 5))]
    font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)[int(rng.integers(0, 3))]
    thickness = int(rng.integers(1, 3))
    _, th = cv2.getTextSize(label, font, 1.0, thickness)[0]
    scale = float(rng.uniform(11, 20)) / th
    (tw, th), base = cv2.getTextSize(label, font, scale, thickness)
    thickness = max(thickness, round(scale * 0.8))
    x, y = _place(window, rng, min(tw + 2, window[2]), th + base + 2)
    layer = np.zeros(image.shape[:2], np.uint8)
    cv2.putText(layer, label, (x + 1, y + th + 1), font, scale, 255, thickness, cv2.LINE_AA)
    alpha = layer.astype(np.float32) / 255 * rng.uniform(0.85, 1.0)
    colour = DATE_COLOURS[int(rng.integers(0, len(DATE_COLOURS)))]
    return _blend(image, alpha, colour), alpha > 0.05


def dust(image: np.ndarray, window: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark blurred elliptical blob; the mask is where it darkens by more than 15 % of its peak."""
    import cv2

    rx, ry = int(rng.integers(6, 18)), int(rng.integers(6, 18))
    x, y = _place(window, rng, 2 * rx + 12, 2 * ry + 12)
    layer = np.zeros(image.shape[:2], np.float32)
    cv2.ellipse(layer, (x + rx + 6, y + ry + 6), (rx, ry), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(2.5, 5.0))
    layer = layer / max(float(layer.max()), 1e-6)
    darker = rng.uniform(0.35, 0.7)
    out = image.astype(np.float32) * (1 - darker * layer[..., None])
    return np.clip(out, 0, 255).astype(np.uint8), layer > 0.15


def defect(image: np.ndarray, window: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 1–2 px saturated line 30–80 px long and a hot-pixel cluster near its end."""
    import cv2

    x0, y0, side = window
    out, height, width = image.copy(), image.shape[0], image.shape[1]
    length = int(rng.integers(30, 80))
    angle = float(rng.choice([0.0, 90.0, rng.uniform(0, 180)]))
    sx, sy = _place(window, rng, 1, 1)
    ex = int(np.clip(sx + np.cos(np.deg2rad(angle)) * length, x0, x0 + side - 1))
    ey = int(np.clip(sy + np.sin(np.deg2rad(angle)) * length, y0, y0 + side - 1))
    layer = np.zeros((height, width), np.uint8)
    cv2.line(layer, (sx, sy), (ex, ey), 255, int(rng.integers(1, 3)))
    inside = np.zeros_like(layer)
    inside[y0 : y0 + side, x0 : x0 + side] = 1
    layer *= inside  # a 2-px line on the window's edge stays inside it
    colour = ((255, 255, 255), (0, 0, 0), (0, 255, 0), (255, 0, 255))[int(rng.integers(0, 4))]
    out[layer > 0] = colour
    mask = layer > 0
    hx = int(np.clip(ex + rng.integers(-8, 9), x0 + 5, x0 + side - 6))
    hy = int(np.clip(ey + rng.integers(-8, 9), y0 + 5, y0 + side - 6))
    count = int(rng.integers(12, 30))
    px = np.clip(hx + rng.integers(-5, 6, count), x0, x0 + side - 1)
    py = np.clip(hy + rng.integers(-5, 6, count), y0, y0 + side - 1)
    out[py, px] = rng.choice([0, 255], size=(count, 3))
    mask[py, px] = True
    return out, mask


STAMPS: dict[str, Stamp] = {"watermark": watermark, "text": text, "dust": dust, "defect": defect}


def global_change(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The control pair's target rendering for artefact ``kind`` (changes every pixel, no local mark):

    watermark, dust: Gaussian blur σ 1.6 and saturation × 0.35; text: a warm cast (R × 1.15,
    B × 0.8) and contrast × 0.85 around 128; defect: blur σ 1, brightness × 0.85, noise σ 10.
    """
    import cv2

    f = image.astype(np.float32)
    if kind in ("watermark", "dust"):
        f = cv2.GaussianBlur(f, (0, 0), 1.6)
        grey = f.mean(-1, keepdims=True)
        f = grey + 0.35 * (f - grey)
    elif kind == "text":
        f = 128 + 0.85 * (f * np.array([1.15, 1.0, 0.8], np.float32) - 128)
    else:
        f = cv2.GaussianBlur(f, (0, 0), 1.0) * 0.85 + rng.normal(0, 10, f.shape).astype(np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)
