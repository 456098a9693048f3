"""Picture-aware blueprints: read a picture module by module, rank modules, and
build the adaptive-halftone blueprint of Text2QR / Face2QR.

Everything works on H×W×3 float images in [0, 1] at the code's geometry (integer pixels per module, see
`qr.render.make_geometry`); pictures of another size are fitted with `qr.pixels.fit` (cover-crop), never
rejected.

* `module_luminance` — ARTUP §4.1.1: each module's mean luminance under a Gaussian weight centred on the module
  centre, σ = `sigma_ratio` × module size (0 gives the plain module mean of Face2QR eq. 2).
* `binarize_modules` — one target bit per module (1 = dark), Otsu or fixed threshold, optional Floyd–Steinberg
  error diffusion in module space.
* `module_priority` — which modules a reshuffle should honour first: QArt local contrast, ARTUP edges +
  saliency + centre, or uniform.
* `halftone_blueprint` — polarise the picture's luminance away from (τ_b, τ_w), stamp a centred core of every
  module with the code bit, draw function patterns whole and the quiet zone white, leave a keep mask alone.
"""

from __future__ import annotations

import functools

import numpy as np

from ..qr.code import Geometry, QRCode
from ..qr.errors import QRInputError
from ..qr.optional import opencv
from ..qr.pixels import (
    LUMA,
    fit,
    luminance,
    module_grid,
    module_means,
    require_geometry,
    require_same_aspect,
    symbol_pixels,
    to_float_rgb,
)

PRIORITY_MODES = ("qart", "artup", "uniform")
ARTUP_WEIGHTS = (0.67, 0.23, 0.10)  # edges, saliency, centre (ARTUP §4.1.3)
QART_WINDOW = 11                      # modules, the side of QArt's local-contrast window
SALIENCY_GRID = 48                    # region-contrast saliency is computed on at most this many cells a side
SALIENCY_SIGMA2 = 0.4                 # spatial weight exp(-d²/σ²), d in picture widths (Cheng et al.'s RC value)
POLARISE_MARGIN = 1e-4                # polarised pixels land this far past the threshold, so rounding never
                                      # leaves one inside the band


# ----------------------------------------------------------------------------------------------- helpers

def _resolve(qr_or_geometry, size: int | None) -> tuple[Geometry, int]:
    """(geometry, modules a side) from a QRCode with geometry, or a Geometry plus `size`."""
    if isinstance(qr_or_geometry, QRCode):
        return require_geometry(qr_or_geometry), qr_or_geometry.size
    if isinstance(qr_or_geometry, Geometry):
        if size is None or size < 1:
            raise QRInputError("with a bare Geometry, also give size (modules a side, 17 + 4·version)")
        return qr_or_geometry, int(size)
    raise QRInputError(f"expected a QRCode or a Geometry, got {type(qr_or_geometry).__name__}")


def _normalise(x: np.ndarray) -> np.ndarray:
    """Min–max to [0, 1]; a constant array becomes all zeros."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


# ----------------------------------------------------------------------------------------------- reading

def gaussian_module_weights(module_px: int, sigma_ratio: float) -> np.ndarray | None:
    """p×p weights summing to 1, a Gaussian centred on the module centre with σ = sigma_ratio·p
    (None for sigma_ratio ≤ 0: the plain mean)."""
    if sigma_ratio is None or sigma_ratio <= 0:
        return None
    p = int(module_px)
    d = np.arange(p) - (p - 1) / 2
    g = np.exp(-d ** 2 / (2 * (sigma_ratio * p) ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def module_luminance(image, qr_or_geometry, size: int | None = None, sigma_ratio: float = 1 / 3) -> np.ndarray:
    """(size, size) float Gaussian-weighted mean luminance of each module (ARTUP §4.1.1).

    The weight is a Gaussian centred on the module centre with σ = `sigma_ratio` × module size, restricted to
    the module's own pixels and normalised (ARTUP eq. 4–5). `sigma_ratio` ≤ 0 takes the plain module mean
    (Face2QR eq. 2). Pass a QRCode with geometry, or a Geometry plus `size`. The picture is fitted to the
    geometry first when it has another size. Modules the geometry puts outside the image read as white.
    """
    geo, n = _resolve(qr_or_geometry, size)
    img = fit(image, geo)
    return module_means(luminance(img), geo, n, gaussian_module_weights(geo.module_px, sigma_ratio))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (the cut between bins maximising between-class variance).
    Values at or above it are one class; a constant input gives 0.5."""
    v = np.clip(np.asarray(values, dtype=np.float64).ravel(), 0.0, 1.0)
    if v.size == 0 or v.max() - v.min() <= 1e-12:
        return 0.5
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    p = hist / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    mt = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    k = int(np.argmax(between))          # class 0 = bins 0..k
    return float(edges[k + 1])


def binarize_modules(lum: np.ndarray, threshold: str | float = "otsu", dither: bool = False) -> np.ndarray:
    """Target bits from module luminance: 1 (dark) where luminance < threshold, else 0.

    threshold: "otsu" (computed over all modules) or a number in [0, 1]. dither=True diffuses each module's
    quantisation error (value − 0 or 1) to its unvisited neighbours in raster order with the Floyd–Steinberg
    weights 7/16 right, 3/16 down-left, 5/16 down, 1/16 down-right, so grey areas become module-level
    halftones instead of solid blocks.
    """
    lum = np.asarray(lum, dtype=np.float64)
    if lum.ndim != 2:
        raise QRInputError(f"module luminance must be a 2-D (size, size) array, got shape {lum.shape}")
    if isinstance(threshold, str):
        if threshold.lower() != "otsu":
            raise QRInputError(f"threshold {threshold!r} is not 'otsu' or a number in [0, 1]")
        t = otsu_threshold(lum)
    else:
        t = float(threshold)
        if not 0.0 <= t <= 1.0:
            raise QRInputError(f"threshold {t} is outside [0, 1]")
    if not dither:
        return (lum < t).astype(np.uint8)
    work = np.clip(lum, 0.0, 1.0).copy()
    rows, cols = work.shape
    out = np.zeros((rows, cols), dtype=np.uint8)
    for r in range(rows):
        row = work[r]
        below = work[r + 1] if r + 1 < rows else None
        for c in range(cols):
            v = row[c]
            light = v >= t
            out[r, c] = 0 if light else 1
            err = v - (1.0 if light else 0.0)
            if c + 1 < cols:
                row[c + 1] += err * 7 / 16
            if below is not None:
                if c > 0:
                    below[c - 1] += err * 3 / 16
                below[c] += err * 5 / 16
                if c + 1 < cols:
                    below[c + 1] += err * 1 / 16
    return out


# ----------------------------------------------------------------------------------------------- priority

def _local_variance(target: np.ndarray, window: int) -> np.ndarray:
    """Variance of each cell's window × window neighbourhood (reflected at the border)."""
    cv2 = opencv()
    t = target.astype(np.float64)
    mean = cv2.blur(t, (window, window), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.blur(t * t, (window, window), borderType=cv2.BORDER_REFLECT)
    return np.maximum(mean_sq - mean * mean, 0.0)


def edge_density(image: np.ndarray, geo: Geometry, n: int) -> np.ndarray:
    """Fraction of Canny edge pixels in each module. Canny runs on the 8-bit luminance, lightly smoothed
    (σ = 1 px), with thresholds from the median (0.66× and 1.33×, floored at 10 and 30 of 255)."""
    cv2 = opencv()
    gray = np.clip(np.round(luminance(image) * 255), 0, 255).astype(np.uint8)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
    med = float(np.median(gray))
    lo, hi = max(10.0, 0.66 * med), max(30.0, 1.33 * med)
    edges = cv2.Canny(gray, lo, hi) > 0
    return module_means(edges.astype(np.float32), geo, n, fill=0.0)


@functools.lru_cache(maxsize=8)
def _spatial_weights(m: int) -> np.ndarray:
    """(m², m²) exp(−d²/SALIENCY_SIGMA2) between the centres of an m × m grid's cells, in symbol widths."""
    pos = (np.arange(m) + 0.5) / m
    along = np.exp(-((pos[:, None] - pos[None, :]) ** 2) / SALIENCY_SIGMA2)   # one axis; the 2-D weight is a product
    weights = np.kron(along, along)       # cell k = row·m + column, as the cells' reshape orders them
    weights.flags.writeable = False
    return weights


def region_contrast_saliency(image: np.ndarray, geo: Geometry, n: int) -> np.ndarray:
    """Region-contrast saliency per module, after Cheng et al.'s RC with a regular grid as the regions.

    The symbol is cut into m × m cells (m = min(n, 48)), each described by its mean CIELAB colour; a cell's
    saliency is the sum over all other cells of their colour distance, weighted by exp(−d²/0.4) with d the
    distance between cell centres in symbol widths (so near contrast counts more than far contrast, and a
    colour unusual for the picture stands out). The cell map is resized to n × n modules.
    """
    cv2 = opencv()
    lab = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab)
    sym = symbol_pixels(lab, geo, n, fill=0.0)
    m = min(n, SALIENCY_GRID)
    cells = cv2.resize(sym, (m, m), interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float64)
    norms = (cells * cells).sum(1)
    dist = cells @ cells.T              # |a − b|² = |a|² + |b|² − 2a·b, in place: one (m², m²) array, no (m², m², 3)
    dist *= -2.0
    dist += norms[:, None]
    dist += norms[None, :]
    np.sqrt(np.maximum(dist, 0.0, out=dist), out=dist)
    dist *= _spatial_weights(m)
    sal = dist.sum(1).reshape(m, m)
    if m != n:
        sal = cv2.resize(sal, (n, n), interpolation=cv2.INTER_LINEAR)
    return sal


def centre_heuristic(n: int) -> np.ndarray:
    """1 at the symbol centre falling linearly to 0 at the corners (Euclidean distance, in modules)."""
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n]
    d = np.hypot(yy - c, xx - c)
    return 1.0 - d / max(d.max(), 1e-12)


def module_priority(image, qr: QRCode | Geometry, mode: str = "qart", size: int | None = None,
                    sigma_ratio: float = 1 / 3) -> np.ndarray:
    """(size, size) float in [0, 1]: how much each module's look matters, highest first for a reshuffle.

    qart: local contrast — the variance of the module-luminance map (the target at one pixel per module)
          over an 11 × 11-module window (QArt).
    artup: 0.67·edges + 0.23·saliency + 0.10·centre (ARTUP eq. 6), each term min–max normalised first:
           edges = fraction of Canny edge pixels per module, saliency = `region_contrast_saliency`,
           centre = `centre_heuristic`.
    uniform: all ones.
    Every result is min–max normalised (a constant map becomes zeros, except uniform). Ties are left to
    the caller. The picture is fitted to the geometry first when it has another size.
    """
    if mode not in PRIORITY_MODES:
        raise QRInputError(f"priority mode {mode!r} is not one of {', '.join(PRIORITY_MODES)}")
    geo, n = _resolve(qr, size)
    if mode == "uniform":
        return np.ones((n, n), dtype=np.float64)
    img = fit(image, geo)
    if mode == "qart":
        lum = module_means(luminance(img), geo, n, gaussian_module_weights(geo.module_px, sigma_ratio))
        return _normalise(_local_variance(lum, QART_WINDOW))
    we, ws, wc = ARTUP_WEIGHTS
    score = (we * _normalise(edge_density(img, geo, n)) + ws * _normalise(region_contrast_saliency(img, geo, n))
             + wc * _normalise(centre_heuristic(n)))
    return _normalise(score)


# ----------------------------------------------------------------------------------------------- halftone

def polarise(image: np.ndarray, tau_black: float, tau_white: float, margin: float = POLARISE_MARGIN) -> np.ndarray:
    """Push every pixel whose luminance lies strictly between the thresholds to the nearer one (ties go
    white), keeping its hue: the RGB is scaled so Y lands on τ_b (or τ_w); where scaling up would clip a
    channel, the colour is scaled until its largest channel is 1 and then mixed with white just enough to
    reach τ_w. Pixels land `margin` past the threshold. Pixels outside the band are untouched."""
    img = image.astype(np.float64)
    y = luminance(image).astype(np.float64)   # the band is decided on the same Y everything else reports
    band = (y > tau_black) & (y < tau_white)
    if not band.any():
        return image.astype(np.float32)
    to_black = band & (y - tau_black < tau_white - y)
    to_white = band & ~to_black
    out = img.copy()
    tb = max(0.0, tau_black - margin)
    tw = min(1.0, tau_white + margin)
    # darken: plain scaling never clips
    yb = y[to_black]
    out[to_black] = img[to_black] * (tb / yb)[:, None]
    # lighten: scale, or scale to the gamut edge then mix with white
    c = img[to_white]
    yw = y[to_white]
    k = tw / yw
    peak = c.max(axis=1)
    clips = peak * k > 1.0
    lit = c * k[:, None]
    if clips.any():
        cc = c[clips] / peak[clips, None]          # brightest colour of this hue (largest channel 1)
        yc = cc @ LUMA
        t = np.clip((tw - yc) / np.maximum(1.0 - yc, 1e-12), 0.0, 1.0)
        lit[clips] = cc + t[:, None] * (1.0 - cc)
    out[to_white] = lit
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def core_size(module_px: int, core_ratio: float) -> int:
    """Side u of the centred core square: round(core_ratio·module_px), at least 1, at most the module."""
    return int(min(module_px, max(1, round(core_ratio * module_px))))


def code_layers(qr: QRCode, core_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of the geometry: (inside the symbol, in a module core, in a function module, code luminance
    1 − bit). The core is the centred u × u square, offset (p − u) // 2, as in `render(style='centre-square')`."""
    geo = qr.geometry
    p = geo.module_px
    row, col, dy, dx = module_grid(geo, qr.size)
    inside = (row >= 0) & (col >= 0)
    u = core_size(p, core_ratio)
    lo = (p - u) // 2
    core = inside & (dy >= lo) & (dy < lo + u) & (dx >= lo) & (dx < lo + u)
    rr, cc = np.maximum(row, 0), np.maximum(col, 0)
    function = inside & qr.function_mask[rr, cc]
    code = np.where(inside, 1.0 - qr.matrix[rr, cc].astype(np.float32), 1.0).astype(np.float32)
    return inside, core, function, code


def halftone_blueprint(image, qr: QRCode, core_ratio: float = 1 / 3, tau_black: float = 0.3,
                       tau_white: float = 0.7, keep_mask=None) -> np.ndarray:
    """The Text2QR / Face2QR adaptive-halftone blueprint, H×W×3 float32 at exactly `qr.geometry.image_size`.

    1. The picture is fitted to the geometry (`fit`) and polarised (`polarise`): no pixel keeps a
       luminance strictly between τ_b and τ_w.
    2. The centred u × u core of every module (u = round(core_ratio·module_px), ≥ 1) is set to the code bit:
       black (0) for dark modules, white (1) for light ones; the rest of the module keeps the picture.
    3. Function patterns (finders, separators, timing, alignment, format and version modules) are drawn whole,
       as in the plain rendering; everything outside the symbol (the quiet zone) is white.
    4. keep_mask (H×W bool or float in [0, 1], at the geometry's size, or in the picture's frame with the
       picture's aspect ratio and then fitted like the picture; another aspect ratio is refused, never stretched)
       marks pixels to leave as the fitted picture — not polarised, no cores — e.g. a face. Fractional values
       blend the picture with the blueprint. Function patterns and the quiet zone are drawn over it all the same,
       so the code stays locatable.
    """
    if not isinstance(qr, QRCode):
        raise QRInputError(f"expected a QRCode, got {type(qr).__name__}")
    if qr.geometry is None:
        raise QRInputError("the QR code has no pixel geometry, so the blueprint size and module grid are unknown: "
                           "render it first (AQR_Encode does) or attach one with qr.with_geometry(...)")
    tau_black, tau_white, core_ratio = float(tau_black), float(tau_white), float(core_ratio)
    if not (0.0 <= tau_black < tau_white <= 1.0):
        raise QRInputError(f"thresholds must satisfy 0 ≤ tau_black < tau_white ≤ 1, got tau_black={tau_black}, "
                           f"tau_white={tau_white}")
    if not (0.0 < core_ratio <= 1.0):
        raise QRInputError(f"core_ratio must be in (0, 1], got {core_ratio}")
    geo = qr.geometry
    src = to_float_rgb(image)
    picture = fit(src, geo)
    out = polarise(picture, tau_black, tau_white)

    inside, core, function, code = code_layers(qr, core_ratio)
    stamp = core | function
    out[stamp] = code[stamp][:, None]

    if keep_mask is not None:
        keep = np.asarray(keep_mask)
        if keep.ndim == 3 and keep.shape[2] == 1:
            keep = keep[:, :, 0]
        if keep.ndim != 2:
            raise QRInputError(f"keep_mask must be an H×W mask, got shape {keep.shape}")
        keep = keep.astype(np.float32) / (255.0 if keep.dtype == np.uint8 else 1.0)
        if keep.shape != picture.shape[:2]:  # in the picture's frame: fitted like the picture, never stretched
            require_same_aspect(*keep.shape, src.shape[1::-1], what="keep_mask", of="the image")
            keep = fit(keep, geo)
        keep = np.clip(keep, 0.0, 1.0)
        keep[function | ~inside] = 0.0
        blend = keep > 0
        k = keep[blend][:, None]
        out[blend] = k * picture[blend] + (1.0 - k) * out[blend]

    out[~inside] = 1.0
    return out
