"""Blueprint images of a code at integer pixels per module, with the geometry that produced them."""

from __future__ import annotations

import math

import numpy as np

from .code import Geometry, QRCode
from .errors import QRInputError
from .pixels import module_grid

STYLES = ("plain", "centre-square", "dots")
MAX_IMAGE_PX = 8192
GREY = 128 / 255  # QR Code Monster's neutral background


def make_geometry(size: int, module_px: int, border: int, multiple: int = 1) -> Geometry:
    """Module size and quiet zone, with the quiet zone widened evenly so the side is a multiple of `multiple`."""
    if not isinstance(module_px, (int, np.integer)) or module_px < 1:
        raise QRInputError(f"module size must be a whole number of pixels ≥ 1, got {module_px!r}")
    if not isinstance(border, (int, np.integer)) or border < 0:
        raise QRInputError(f"border (quiet zone, in modules) must be ≥ 0, got {border!r}")
    if multiple < 1:
        raise QRInputError(f"size multiple must be ≥ 1, got {multiple!r}")
    side = (size + 2 * border) * module_px
    padded = -(-side // multiple) * multiple
    if padded > MAX_IMAGE_PX:
        raise QRInputError(f"the image would be {padded} px wide (over {MAX_IMAGE_PX}); "
                           f"lower the module size or the border")
    offset = border * module_px + (padded - side) // 2
    return Geometry(int(module_px), int(border), (offset, offset), (padded, padded))


def placement(shape: tuple[int, int], n: int, quiet_width: float = 1.0,
              code_scale: float = 1.0) -> tuple[int, int, int]:
    """(module_px, x0, y0): the largest whole module size at which n modules plus a quiet_width strip on each side
    fit code_scale × the shorter side of an H×W picture, the symbol centred. Refuses pictures too small for 2 px
    per module."""
    h, w = shape
    side = n + 2 * quiet_width
    p = int(math.floor(code_scale * min(h, w) / side + 1e-9))
    if p < 2:
        raise QRInputError(f"the picture ({w}×{h}) is too small for a code {side:g} modules wide with its quiet zone: "
                           f"give one at least {math.ceil(2 * side / code_scale)} px on its shorter side (2 px per "
                           f"module)")
    return p, (w - n * p) // 2, (h - n * p) // 2


def picture_geometry(size: int, border: int, shape: tuple[int, int]) -> Geometry:
    """A code drawn over a whole H×W picture: the symbol and its quiet zone centred at the largest whole module size
    that fits the shorter side (`placement`), in the picture's own pixels (so `pixels.picture_modules` maps it one
    to one)."""
    p, x0, y0 = placement(shape, size, border)
    return Geometry(p, border, (x0, y0), (shape[1], shape[0]))


def module_image(values: np.ndarray, qr: QRCode, geo: Geometry, outside: float = 1.0) -> np.ndarray:
    """Paint a per-module array (size × size) at the geometry's pixels; `outside` fills the quiet zone."""
    row, col, _, _ = module_grid(geo, qr.size)
    inside = (row >= 0) & (col >= 0)
    out = np.full(row.shape + values.shape[2:], outside, dtype=np.float32)
    out[inside] = values[row[inside], col[inside]]
    return out


def render(qr: QRCode, module_px: int = 10, border: int = 4, style: str = "plain", multiple: int = 1,
           core_ratio: float = 1 / 3, dot_ratio: float = 0.8) -> tuple[np.ndarray, Geometry]:
    """Render to an H×W×3 float32 image in [0, 1] (dark modules 0, light 1) and its geometry.

    The code is not changed: attach the geometry with `qr.with_geometry(geo)`.

    plain: full squares. centre-square: only the centred u×u core of each data module carries the bit, the rest
    is flat grey (function patterns stay whole so finders are crisp). dots: round dots of `dot_ratio` of the
    module on white, function patterns whole.
    """
    if style not in STYLES:
        raise QRInputError(f"style {style!r} is not one of {', '.join(STYLES)}")
    geo = make_geometry(qr.size, module_px, border, multiple)
    light = 1.0 - qr.matrix.astype(np.float32)
    if style == "plain":
        img = module_image(light, qr, geo)
    else:
        row, col, dy, dx = module_grid(geo, qr.size)
        inside = (row >= 0) & (col >= 0)
        rr, cc = np.where(inside, row, 0), np.where(inside, col, 0)
        if style == "centre-square":
            u = min(module_px, max(1, round(module_px * core_ratio)))
            lo = (module_px - u) // 2
            in_core = (dy >= lo) & (dy < lo + u) & (dx >= lo) & (dx < lo + u)
            background = GREY
        else:
            centre = (module_px - 1) / 2
            in_core = (dy - centre) ** 2 + (dx - centre) ** 2 <= (dot_ratio * module_px / 2) ** 2
            background = 1.0
        show = inside & (in_core | qr.function_mask[rr, cc])
        img = np.where(show, light[rr, cc], np.where(inside, background, 1.0)).astype(np.float32)
    return np.repeat(img[:, :, None], 3, axis=2), geo

