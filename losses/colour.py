"""Colour for luminance-only code losses.

SRL and Face2QR's code losses see luminance only, so an optimiser is free to buy contrast with colour casts,
over-saturation and clipping (the drift an independent DiffQRCoder reproduction reported). ARTUP's colour stage
(keep the hue, move along luminance) is the closest published idea; here it is done in chroma planes:

* `chroma`: the chroma planes — Cb/Cr of full-range BT.601 YCbCr (``space="ycbcr"``, default; luminance uses the
  same Rec.601 weights as every loss here) or the opponent pair ((R − G)/√2, (R + G − 2B)/√6).
* `luminance_only`: rebuild RGB from an optimised luminance and the reference's chroma. Since the Rec.601 weights
  sum to 1, adding the same ΔY to R, G and B changes Y by ΔY and leaves R − Y and B − Y (hence Cb, Cr) unchanged:
  out = ref + (Y − Y_ref). With ``gamut="desaturate"`` (default) a pixel whose result would leave [0, 1] keeps
  its luminance and hue and loses only as much chroma as needed (out = Y + t·(ref − Y_ref), t ≤ 1 per pixel);
  ``gamut="none"`` keeps the chroma exactly everywhere and may leave [0, 1].
"""

from __future__ import annotations

import math

import torch

from .grid import LUMA, luminance

SPACES = ("ycbcr", "opponent")


def _check(image: torch.Tensor, name: str = "image") -> None:
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"{name} must be a B×3×H×W tensor, got {shape}")


def _luma(image: torch.Tensor) -> torch.Tensor:
    return luminance(image)[:, None]


def chroma(image: torch.Tensor, space: str = "ycbcr") -> torch.Tensor:
    """B×3×H×W RGB → B×2×H×W chroma planes (Cb, Cr for "ycbcr"; two opponent channels for "opponent")."""
    _check(image)
    r, g, b = image[:, 0], image[:, 1], image[:, 2]
    if space == "ycbcr":
        y = _luma(image)[:, 0]
        kb, kr = LUMA[2], LUMA[0]
        return torch.stack(((b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))), 1)
    if space == "opponent":
        return torch.stack(((r - g) / math.sqrt(2), (r + g - 2 * b) / math.sqrt(6)), 1)
    raise ValueError(f"space {space!r} is not one of {SPACES}")


def luminance_only(image: torch.Tensor, reference: torch.Tensor, gamut: str = "desaturate") -> torch.Tensor:
    """RGB with the luminance of `image` (B×3×H×W RGB, or B×1×H×W luminance) and the chroma of `reference`
    (B×3×H×W or 1×3×H×W). Differentiable in `image` (and in `reference`)."""
    _check(reference, "reference")
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"image must be B×3×H×W RGB or B×1×H×W luminance, got {tuple(image.shape)}")
    ref = reference.to(image)
    y = image if image.shape[1] == 1 else _luma(image)
    offset = ref - _luma(ref)                                           # chroma part, luma-weighted sum 0
    if gamut == "none":
        return y + offset
    if gamut != "desaturate":
        raise ValueError(f"gamut {gamut!r} is not 'desaturate' or 'none'")
    y = y.clamp(0, 1)
    den = torch.where(offset != 0, offset.abs(), torch.ones_like(offset))   # safe divisor (no inf in backward)
    room = torch.where(offset > 0, (1 - y) / den, torch.where(offset < 0, y / den, torch.ones_like(offset)))
    t = room.amin(1, keepdim=True).clamp(max=1.0)
    return (y + t * offset).clamp(0, 1)
