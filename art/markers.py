"""Face2QR marker harmonisation (Face2QR, NeurIPS 2024, §3.2.1, eq. 6): strengthen the finder and alignment
patterns of an art code so decoders can locate it, while the picture shows through as far as the formula allows.

For every pixel p of a marker module k, with τ the binarisation threshold (128 of 256, here 0.5) and λ ∈ [0, 1]
(Face2QR's default 0.8):

    light module (E_k = 1):  Î(p) = I(p) − min(I(p) − τ(1 + λ), 0)  = max(I(p), τ(1 + λ))
    dark module  (E_k = 0):  Î(p) = I(p) − max(I(p) − τ(1 − λ), 0)  = min(I(p), τ(1 − λ))

So the formula is a one-sided clamp: a light module's pixels are raised to at least τ(1+λ) and a dark module's
lowered to at most τ(1−λ); pixels already past those bounds keep their value (and colour). λ = 0 only pushes
pixels to the right side of τ (the weakest correct marker, not the identity); λ = 1 gives pure black and white
(τ(1+λ) = 1, τ(1−λ) = 0); larger λ, more contrast. λ outside [0, 1] is rejected.

Which modules: Face2QR's ∆m is "the marker codes" — finder and alignment patterns. The separators (the light
ring around each finder) are part of what a detector's 1:1:3:1:1 scan sees, so they are included by default
(`include_separators`; the paper does not say either way). Timing patterns are optional (`include_timing`). The
paper does not touch the quiet zone; `quiet_zone=True` also clamps it as light.

Colour: the paper writes the formula on pixel values I_s(p) of the (RGB) image. mode="rgb" applies it to each
channel (the literal reading: a marker pixel keeps its colour only where every channel already satisfies the
bound). mode="luminance" applies it to the Rec.601 luminance and then moves the colour to that luminance along
its own hue (ARTUP's hue-preserving interpolation, `art.colour.match_luminance`), so markers keep the picture's
hues — a departure, offered because it keeps more colour at the same scanner-visible contrast.
"""

from __future__ import annotations

import numpy as np

from ..qr.code import QRCode
from ..qr.errors import QRInputError
from ..qr.pixels import LUMA, module_pixels, require_geometry, to_float_rgb
from ..scan.analysis import function_kinds
from .colour import match_luminance

TAU = 0.5
MODES = ("rgb", "luminance")


def marker_modules(qr: QRCode, include_alignment: bool = True, include_timing: bool = False,
                   include_separators: bool = True) -> np.ndarray:
    """(n, n) bool: the modules harmonisation touches (finders always)."""
    kinds = function_kinds(qr)
    out = kinds["finder"].copy()
    if include_separators:
        out |= kinds["separator"]
    if include_alignment:
        out |= kinds["alignment"]
    if include_timing:
        out |= kinds["timing"]
    return out


def marker_pixels(shape: tuple[int, int], qr: QRCode, modules: np.ndarray,
                  quiet_zone: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H×W bool selected, H×W bool light) for the given module selection (plus the quiet zone, as light)."""
    geometry = require_geometry(qr)
    selected = module_pixels(shape, geometry, modules)
    light = ~module_pixels(shape, geometry, qr.matrix.astype(bool))      # outside the symbol too
    if quiet_zone:
        selected |= ~module_pixels(shape, geometry, np.ones(modules.shape, bool))
    return selected, light


def clamp_values(values: np.ndarray, light: np.ndarray, lam: float, tau: float = TAU) -> np.ndarray:
    """Face2QR eq. 6 on an array of values (last axis may be channels; `light` broadcasts)."""
    lo, hi = tau * (1.0 + lam), tau * (1.0 - lam)
    return np.where(light, np.maximum(values, lo), np.minimum(values, hi))


def check_lambda(lam) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0 or not np.isfinite(lam):
        raise QRInputError(f"λ must be in [0, 1] (Face2QR uses 0.8; 1 draws pure black/white markers), got {lam}")
    return lam


def harmonize_markers(image, qr: QRCode, lam: float = 0.8, include_alignment: bool = True,
                      include_timing: bool = False, *, include_separators: bool = True, quiet_zone: bool = False,
                      mode: str = "rgb", tau: float = TAU) -> np.ndarray:
    """Face2QR marker harmonisation of an H×W×3 image (float [0, 1] or uint8) aligned with `qr.geometry`
    (or a uniformly rescaled copy). Returns float32 H×W×3; pixels outside the chosen modules are unchanged."""
    if not isinstance(qr, QRCode):
        raise QRInputError(f"expected a QRCode, got {type(qr).__name__}")
    if mode not in MODES:
        raise QRInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    lam = check_lambda(lam)
    img = to_float_rgb(image)
    modules = marker_modules(qr, include_alignment, include_timing, include_separators)
    sel, light = marker_pixels(img.shape[:2], qr, modules, quiet_zone)
    out = img.copy()
    if not sel.any():
        return out
    if mode == "rgb":
        out[sel] = clamp_values(img[sel], light[sel][:, None], lam, tau)
        return out
    y = img[sel].astype(np.float64) @ LUMA
    target = clamp_values(y, light[sel], lam, tau)
    changed = target != y
    if changed.any():
        px = out[sel]
        px[changed] = match_luminance(px[changed][None], target[changed][None])[0]
        out[sel] = px
    return out
