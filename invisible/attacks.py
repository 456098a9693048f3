"""The real distortions a hidden picture meets, as the benchmark and tests apply them: exact PIL JPEG, OpenCV blur
and resizing, brightness. Not differentiable (training uses `noise.py`); here the point is to score with the very
codecs a picture meets, so a model cannot pass by fitting its own approximation of them.

Every attack maps an H×W×3 uint8 RGB picture to one of the same size and dtype. numpy, PIL and cv2 only."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable

import cv2
import numpy as np
from PIL import Image

from ..qr.errors import QRInputError


def jpeg(picture: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode with PIL at `quality` (its default 4:2:0 chroma subsampling)."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def blur(picture: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `sigma` pixels (cv2 sizes the kernel from sigma)."""
    return cv2.GaussianBlur(np.ascontiguousarray(picture), (0, 0), sigma)


def resize(picture: np.ndarray, factor: float) -> np.ndarray:
    """Downscale by `factor` (area averaging) and resize back to the original size (bilinear): the detail lost at
    the small size stays lost, but the block grid of the picture still lines up for a decoder."""
    h, w = picture.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = cv2.resize(np.ascontiguousarray(picture), size, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def brightness(picture: np.ndarray, factor: float) -> np.ndarray:
    """Multiply every channel by `factor`, round and clip (an exposure change)."""
    return np.clip(np.rint(picture.astype(np.float32) * factor), 0, 255).astype(np.uint8)


ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda p: p.copy(),
    **{f"jpeg{q}": (lambda p, q=q: jpeg(p, q)) for q in (90, 75, 50)},
    **{f"blur{s:g}": (lambda p, s=s: blur(p, s)) for s in (0.5, 1.0, 1.5)},
    **{f"resize{f:g}": (lambda p, f=f: resize(p, f)) for f in (0.75, 0.5)},
    **{f"bright{f:g}": (lambda p, f=f: brightness(p, f)) for f in (0.8, 1.2)},
}


def attack_names(names: Iterable[str] | str) -> tuple[str, ...]:
    """The names of `ATTACKS` to survive ("clean" is always checked), from a sequence or a
    comma-separated string; an unknown name is an error that lists the known ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    out = tuple(dict.fromkeys(n for n in names if n and n != "clean"))
    unknown = [n for n in out if n not in ATTACKS]
    if unknown:
        raise QRInputError(f"unknown attack {unknown[0]!r} to survive: choose from {', '.join(ATTACKS)} "
                           f"(comma-separated)")
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 pictures over all channels; inf when they are equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
