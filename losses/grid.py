"""The module grid of a rendered code as tensor views, the torch mirror of `qr.pixels`: every loss reads modules
through these, from the code's own geometry (integer pixels per module, known origin), so there is no resize
drift."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..qr.code import Geometry, QRCode
from ..qr.pixels import LUMA, require_geometry, require_same_aspect


def luminance(image: torch.Tensor) -> torch.Tensor:
    """B×3×H×W (or B×H×W×3 with `channels_last=True` handled by the caller) → B×H×W, Rec.601 weights."""
    # summed blue, green, red: in this order white is exactly 1 in float32 and float64 (an einsum leaves 1 − 1e-16)
    return image[:, 2] * LUMA[2] + image[:, 1] * LUMA[1] + image[:, 0] * LUMA[0]


def geometry_of(qr: QRCode, geometry: Geometry | None = None) -> Geometry:
    return geometry if geometry is not None else require_geometry(qr)


def fit_tensor(image: torch.Tensor, size: tuple[int, int], what: str = "the decoded image") -> torch.Tensor:
    """Resample B×C×H×W to `size` (W, H) differentiably. The image must carry the code (`require_same_aspect`;
    `what` names it in the error): a stretched picture would move every module off the code's grid."""
    w, h = size
    ih, iw = image.shape[-2:]
    if (iw, ih) == (w, h):
        return image
    require_same_aspect(ih, iw, (w, h), what)
    return F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=iw > w)


def symbol_blocks(plane: torch.Tensor, qr: QRCode, geometry: Geometry | None = None,
                  fill: float = 1.0) -> torch.Tensor:
    """B×H×W plane → B×n×n×p×p: the p×p pixels of every module (modules outside the image read `fill`).

    The image must have the geometry's size; resample it to `geometry.image_size` first otherwise.
    """
    geo = geometry_of(qr, geometry)
    b, h, w = plane.shape
    if (w, h) != tuple(geo.image_size):
        raise ValueError(f"image is {w}×{h} but the code's geometry is {geo.image_size[0]}×{geo.image_size[1]}; "
                         f"resample the image to the code's size first")
    n, p = qr.size, geo.module_px
    x0, y0 = geo.origin
    side = n * p
    if x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
        padded = plane.new_full((b, max(h, y0 + side) - min(0, y0), max(w, x0 + side) - min(0, x0)), fill)
        oy, ox = -min(0, y0), -min(0, x0)
        padded[:, oy:oy + h, ox:ox + w] = plane
        plane, x0, y0 = padded, x0 + ox, y0 + oy
    area = plane[:, y0:y0 + side, x0:x0 + side]
    return area.reshape(b, n, p, n, p).permute(0, 1, 3, 2, 4)


def gaussian_weights(module_px: int, sigma: float, normalise: str = "sum", floor: float = 0.0,
                     device=None, dtype=torch.float32) -> torch.Tensor:
    """p×p Gaussian centred on the module centre. normalise "sum" (weights add to 1) or "peak" (max 1, as
    DiffQRCoder's and ArtCoder's code); weights below `floor` (after normalising) are zeroed."""
    c = (module_px - 1) / 2
    r = torch.arange(module_px, device=device, dtype=dtype) - c
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * max(sigma, 1e-6) ** 2))
    g = g / (g.max() if normalise == "peak" else g.sum())
    if floor > 0:
        g = torch.where(g < floor, torch.zeros_like(g), g)
    return g


def centre_mask(module_px: int, fraction: float = 1 / 3, device=None) -> torch.Tensor:
    """p×p bool: the centred square of side max(1, round(fraction·p)) — the sub-module a scanner samples."""
    u = min(module_px, max(1, round(module_px * fraction)))
    lo = (module_px - u) // 2
    m = torch.zeros(module_px, module_px, dtype=torch.bool, device=device)
    m[lo:lo + u, lo:lo + u] = True
    return m


def module_target(qr: QRCode, device=None, dtype=torch.float32) -> torch.Tensor:
    """n×n float, 1 where the module should be light (white), 0 where dark."""
    return torch.as_tensor(1 - qr.matrix, device=device, dtype=dtype)


def module_mean(per_module: torch.Tensor, counted: torch.Tensor | None) -> torch.Tensor:
    """B×n×n per-module terms → B: their sum over the `counted` modules' number (at least 1), or over all n²
    modules when `counted` is None (the losses' two reductions)."""
    total = per_module.sum((-2, -1))
    if counted is None:
        return total / float(per_module.shape[-2] * per_module.shape[-1])
    return total / counted.sum((-2, -1)).clamp(min=1).to(per_module.dtype)
