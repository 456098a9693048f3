"""Module-level analysis of an aligned QR image: which modules a scanner would read wrong, and whether the
Reed-Solomon blocks can still correct them.

The image must be aligned with a known geometry (a `QRCode` carrying `.geometry`, as `render` sets it, or an
explicit `Geometry`). An image of another size than `geometry.image_size` is treated as a uniformly rescaled
copy (module pitch and origin scale with it).

Sampling, like a scanner: luminance Y = 0.299 R + 0.587 G + 0.114 B, averaged over the centred square of about a
third of the module side (at least 1 px). Each module is then classified dark when its sample is below a
threshold:

* ``"local"`` (default) — the mean luminance of all pixels in a window of ``window`` × ``window`` modules
  (default 7) centred on the module, clipped to the image. This is what a hybrid/local-average binariser does
  (zxing averages 5×5 blocks of 8 px, about 10 modules at phone resolution); it follows the picture's local
  brightness, so a light module inside a dark region of an art code can read dark, and vice versa.
* ``"global"`` — the fixed threshold 0.5; a float sets another fixed threshold.

The read matrix is compared with ``qr.matrix``. Data/EC modules are grouped by (RS block, codeword) through
``module_block``/``module_codeword``: a codeword with at least one wrong bit is one codeword error, and a block is
correctable while its errors do not exceed ``qr.correctable()``; ``margin = correctable − errors``. Wrong
function modules are counted by kind. Format information is read by decoders from either of its two 15-bit
copies and BCH(15,5) corrects up to 3 bit errors, so the format is considered readable when one copy has at most
3 wrong bits; likewise the two 18-bit version copies (version ≥ 7; below that the version comes from the size).
``decodable`` = format readable and version readable and every block's margin ≥ 0. Finder, timing, alignment
and quiet-zone problems affect detection rather than decoding and are reported but not part of the verdict —
confirm with real decoders (`decoders.decode`, `camera.run_suite`). They matter: on a clean render, one wrong
finder or separator module (centre, edge, corner, any of the three finders) is enough for zxing-cpp 3.1 to find
no code at all, while WeChat still reads it — hence ``finders_intact``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..qr.code import Geometry, QRCode
from ..qr.pixels import luminance, module_centres, pixel_modules, require_geometry, to_float_rgb

FORMAT_CORRECTABLE_BITS = 3   # BCH(15,5) and BCH(18,6) both correct 3 bit errors


def _integral(lum: np.ndarray) -> np.ndarray:
    """(H+1)×(W+1) summed-area table (OpenCV's when available: 5× faster than two numpy cumsums)."""
    try:
        import cv2  # noqa: PLC0415
        return cv2.integral(np.ascontiguousarray(lum, dtype=np.float32), sdepth=cv2.CV_64F)
    except ImportError:
        ii = np.zeros((lum.shape[0] + 1, lum.shape[1] + 1), dtype=np.float64)
        np.cumsum(np.cumsum(lum, axis=0, dtype=np.float64), axis=1, out=ii[1:, 1:])
        return ii


def _box_mean(ii: np.ndarray, y0, y1, x0, x1) -> np.ndarray:
    """Mean over boxes [y0, y1) × [x0, x1) (broadcasting int arrays, already clipped, non-empty)."""
    s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    return (s / ((y1 - y0) * (x1 - x0))).astype(np.float32)


def function_kinds(qr: QRCode) -> dict[str, np.ndarray]:
    """Boolean masks of each kind of function module (together they equal ``qr.function_mask``)."""
    n = qr.size
    fm = np.asarray(qr.function_mask, dtype=bool)
    finder = np.zeros((n, n), bool)
    sep = np.zeros((n, n), bool)
    for r, c in ((0, 0), (0, n - 7), (n - 7, 0)):
        finder[r:r + 7, c:c + 7] = True
        sep[max(r - 1, 0):r + 8, max(c - 1, 0):c + 8] = True
    sep &= ~finder
    timing = np.zeros((n, n), bool)
    timing[6, 8:n - 8] = timing[8:n - 8, 6] = True
    fmt = np.zeros((n, n), bool)
    fmt[8, 0:9] = fmt[0:9, 8] = True
    fmt[8, n - 8:] = fmt[n - 7:, 8] = True
    fmt[6, 8] = fmt[8, 6] = False           # timing crosses the format strip
    dark = np.zeros((n, n), bool)
    dark[n - 8, 8] = True
    fmt &= ~dark
    ver = np.zeros((n, n), bool)
    if qr.version >= 7:
        ver[n - 11:n - 8, 0:6] = ver[0:6, n - 11:n - 8] = True
    align = fm & ~(finder | sep | timing | fmt | dark | ver)
    return {"finder": finder & fm, "separator": sep & fm, "timing": timing & fm & ~align, "alignment": align,
            "format": fmt & fm, "version": ver & fm, "dark_module": dark & fm}


def _format_copies(n: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) of the two 15-bit format copies: around the top-left finder; split top-right/bottom-left."""
    r1 = np.r_[np.full(6, 8), 8, 8, 7, np.arange(5, -1, -1)]
    c1 = np.r_[np.arange(6), 7, 8, 8, np.full(6, 8)]
    r2 = np.r_[np.arange(n - 1, n - 8, -1), np.full(8, 8)]
    c2 = np.r_[np.full(7, 8), np.arange(n - 8, n)]
    return (r1, c1), (r2, c2)


def _version_copies(n: int):
    i = np.arange(18)
    a, b = n - 11 + i % 3, i // 3
    return (a, b), (b, a)


@dataclass
class ModuleAnalysis:
    version: int
    ecl: str
    size: int
    threshold: str                   # 'local(7)', 'global(0.5)' …
    correctable: int                 # codeword errors each block corrects
    block_errors: list[int]          # codewords with ≥ 1 wrong bit, per RS block
    block_bit_errors: list[int]      # wrong modules, per RS block
    block_margin: list[int]          # correctable − errors
    min_margin: int
    worst_block: int
    data_module_errors: int          # wrong data/EC modules (remainder bits excluded)
    remainder_errors: int            # wrong remainder-bit modules (harmless)
    function_errors: dict[str, int]  # wrong function modules by kind
    format_copy_errors: tuple[int, int]
    format_ok: bool
    version_copy_errors: tuple[int, int] | None
    version_ok: bool
    finders_intact: bool             # every finder and separator module reads right
    quiet_zone_dark: int             # quiet-zone modules (inside the image) that read dark
    quiet_zone_modules: int
    module_error_rate: float         # wrong symbol modules / all symbol modules
    decodable: bool
    samples: np.ndarray = field(repr=False)     # (size, size) float32 sampled luminance
    thresholds: np.ndarray = field(repr=False)  # (size, size) float32
    read: np.ndarray = field(repr=False)        # (size, size) uint8, 1 = read dark
    wrong: np.ndarray = field(repr=False)       # (size, size) bool
    heatmap: np.ndarray | None = field(default=None, repr=False)  # H×W×3 float32

    @property
    def total_codeword_errors(self) -> int:
        return int(sum(self.block_errors))

    def to_dict(self, arrays: bool = False) -> dict:
        out = {k: getattr(self, k) for k in (
            "version", "ecl", "size", "threshold", "correctable", "block_errors", "block_bit_errors",
            "block_margin", "min_margin", "worst_block", "data_module_errors", "remainder_errors",
            "function_errors", "format_copy_errors", "format_ok", "version_copy_errors", "version_ok",
            "finders_intact", "quiet_zone_dark", "quiet_zone_modules", "module_error_rate", "decodable")}
        out["format_copy_errors"] = list(self.format_copy_errors)
        if self.version_copy_errors is not None:
            out["version_copy_errors"] = list(self.version_copy_errors)
        out["total_codeword_errors"] = self.total_codeword_errors
        if arrays:
            out["samples"] = np.round(self.samples, 4).tolist()
            out["read"] = self.read.tolist()
            out["wrong"] = self.wrong.astype(int).tolist()
        return out


def sample_modules(lum: np.ndarray, geometry: Geometry, n: int, pad: int = 0, window: float = 7.0,
                   ii: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centre samples, local-window means) for an (n+2·pad)² grid of modules, vectorised via an integral image.
    Modules whose centre square falls outside the image get NaN."""
    h, w = lum.shape
    ii = _integral(lum) if ii is None else ii
    px, py, cx, cy = module_centres(geometry, (h, w), n, pad)
    sw, sh = max(1, int(round(px / 3))), max(1, int(round(py / 3)))
    x0 = np.floor(cx - sw / 2 + 0.5).astype(np.int64)
    y0 = np.floor(cy - sh / 2 + 0.5).astype(np.int64)
    x1, y1 = x0 + sw, y0 + sh
    okx = (x0 >= 0) & (x1 <= w)
    oky = (y0 >= 0) & (y1 <= h)
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x1, 1, w)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y1, 1, h)
    x1c, y1c = np.maximum(x1c, x0c + 1), np.maximum(y1c, y0c + 1)
    samples = _box_mean(ii, y0c[:, None], y1c[:, None], x0c[None, :], x1c[None, :])
    samples[~(oky[:, None] & okx[None, :])] = np.nan
    wx0 = np.clip(np.floor(cx - window * px / 2), 0, w - 1).astype(np.int64)
    wx1 = np.clip(np.ceil(cx + window * px / 2), 1, w).astype(np.int64)
    wy0 = np.clip(np.floor(cy - window * py / 2), 0, h - 1).astype(np.int64)
    wy1 = np.clip(np.ceil(cy + window * py / 2), 1, h).astype(np.int64)
    wx1, wy1 = np.maximum(wx1, wx0 + 1), np.maximum(wy1, wy0 + 1)
    local = _box_mean(ii, wy0[:, None], wy1[:, None], wx0[None, :], wx1[None, :])
    return samples, local


def analyze(image, qr: QRCode, geometry: Geometry | None = None, threshold: str | float = "local",
            window: float = 7.0, heatmap: bool = True) -> ModuleAnalysis:
    """Read every module of an aligned image the way a scanner samples it and score it against ``qr``.

    geometry: where the modules are (default ``qr.geometry``). threshold: "local" (window mean, ``window``
    modules wide), "global" (0.5) or a float. heatmap: also build the full-resolution error picture.
    """
    geo = geometry if geometry is not None else qr.geometry
    if geo is None:
        raise ValueError("the code has no geometry: render it first (render sets qr.geometry) or pass geometry=")
    lum = luminance(image)
    n = qr.size
    pad = int(geo.border)
    ii = _integral(lum)
    samples_all, local_all = sample_modules(lum, geo, n, pad, window, ii)
    if threshold == "local":
        thr_all, label = local_all, f"local({window:g})"
    elif threshold == "global":
        thr_all, label = np.full_like(samples_all, 0.5), "global(0.5)"
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        thr_all, label = np.full_like(samples_all, float(threshold)), f"global({float(threshold):g})"
    else:
        raise ValueError(f"threshold must be 'local', 'global' or a number, got {threshold!r}")
    inner = (slice(pad, pad + n), slice(pad, pad + n))
    samples, thr = samples_all[inner], thr_all[inner]
    # a module off the image reads as the opposite of what it should be
    read = np.where(np.isnan(samples), 1 - qr.matrix, samples < thr).astype(np.uint8)
    wrong = read != qr.matrix

    # quiet zone: dark only if below the threshold *and* below mid-grey (a flat white margin stays white)
    qz = np.ones(samples_all.shape, bool)
    qz[inner] = False
    qz &= ~np.isnan(samples_all)
    qz_dark = int((qz & (samples_all < thr_all) & (samples_all < 0.5)).sum())

    blk, cw = np.asarray(qr.module_block), np.asarray(qr.module_codeword)
    n_blocks = len(qr.blocks)
    data = blk >= 0
    wd = wrong & data
    b, c = blk[wd].astype(np.int64), cw[wd].astype(np.int64)
    stride = int(cw.max()) + 1 if cw.size else 1
    keys = np.unique(b * stride + c)
    block_errors = np.bincount(keys // stride, minlength=n_blocks)[:n_blocks]
    block_bits = np.bincount(b, minlength=n_blocks)[:n_blocks]
    t = int(qr.correctable())
    margin = t - block_errors
    worst = int(np.argmin(margin)) if n_blocks else 0

    kinds = function_kinds(qr)
    f_err = {k: int((wrong & m).sum()) for k, m in kinds.items()}
    remainder = wrong & ~data & ~np.asarray(qr.function_mask, bool)
    (fr1, fc1), (fr2, fc2) = _format_copies(n)
    fmt_err = (int(wrong[fr1, fc1].sum()), int(wrong[fr2, fc2].sum()))
    format_ok = min(fmt_err) <= FORMAT_CORRECTABLE_BITS
    if qr.version >= 7:
        (vr1, vc1), (vr2, vc2) = _version_copies(n)
        ver_err = (int(wrong[vr1, vc1].sum()), int(wrong[vr2, vc2].sum()))
        version_ok = min(ver_err) <= FORMAT_CORRECTABLE_BITS
    else:
        ver_err, version_ok = None, True
    min_margin = int(margin.min()) if n_blocks else t

    result = ModuleAnalysis(
        version=int(qr.version), ecl=str(qr.ecl), size=n, threshold=label, correctable=t,
        block_errors=[int(x) for x in block_errors], block_bit_errors=[int(x) for x in block_bits],
        block_margin=[int(x) for x in margin], min_margin=min_margin, worst_block=worst,
        data_module_errors=int(wd.sum()), remainder_errors=int(remainder.sum()), function_errors=f_err,
        format_copy_errors=fmt_err, format_ok=bool(format_ok), version_copy_errors=ver_err,
        version_ok=bool(version_ok), finders_intact=f_err["finder"] + f_err["separator"] == 0,
        quiet_zone_dark=qz_dark, quiet_zone_modules=int(qz.sum()),
        module_error_rate=float(wrong.mean()),
        decodable=bool(format_ok and version_ok and min_margin >= 0),
        samples=samples, thresholds=thr, read=read, wrong=wrong)
    if heatmap:
        result.heatmap = error_heatmap(image, wrong, geo, n)
    return result


GREEN = np.array([0.15, 0.85, 0.25], dtype=np.float32)
RED = np.array([1.0, 0.1, 0.1], dtype=np.float32)


def error_heatmap(image, wrong: np.ndarray, geometry: Geometry, n: int | None = None, dim: float = 0.45,
                  alpha_ok: float = 0.35, alpha_bad: float = 0.75) -> np.ndarray:
    """H×W×3 float32: the picture dimmed, correct modules tinted green, wrong ones red (quiet zone untinted)."""
    rgb = to_float_rgb(image)
    n = wrong.shape[0] if n is None else n
    row, col = pixel_modules(rgb.shape[:2], geometry, n)
    # 0 outside the symbol, 1 correct, 2 wrong
    state = np.where((row >= 0) & (col >= 0), np.where(wrong, 2, 1)[np.maximum(row, 0), np.maximum(col, 0)], 0)
    alpha = np.array([0.0, alpha_ok, alpha_bad], np.float32)
    keep = (np.float32(dim) * (1 - alpha))[state]                                  # H×W
    add = (np.stack([np.zeros(3, np.float32), GREEN, RED]) * alpha[:, None])[state]  # H×W×3
    out = rgb * keep[:, :, None]
    out += add
    return np.clip(out, 0, 1, out=out)


def probability_heatmap(picture: np.ndarray, prob: np.ndarray, qr, dim: float = 0.45,
                        alpha: float = 0.6) -> np.ndarray:
    """H×W×3: the picture dimmed, each module tinted from red (P = 0) through yellow to green (P = 1); the quiet
    zone is left dimmed. Works on the picture at any uniform scale of the code's geometry."""
    picture = to_float_rgb(picture)
    row, col = pixel_modules(picture.shape[:2], require_geometry(qr), qr.size)
    inside = (row >= 0) & (col >= 0)
    p = np.clip(prob, 0.0, 1.0)[np.where(inside, row, 0), np.where(inside, col, 0)]
    # red → yellow → green: through the brighter middle so mid probabilities stand out
    tint = np.where((p < 0.5)[..., None], RED + (2 * p)[..., None] * (np.array([1.0, 0.85, 0.1]) - RED),
                    np.array([1.0, 0.85, 0.1]) + (2 * p - 1)[..., None] * (GREEN - np.array([1.0, 0.85, 0.1])))
    a = np.where(inside, alpha, 0.0)[..., None]
    out = picture * dim * (1 - a) + tint * a
    return np.clip(out, 0.0, 1.0).astype(np.float32)
