"""The SSIM polish (issue #12, lever 2): the last step of `art`, after a level has passed the camera suite.

ARTUP's blend moves a forced module's every pixel towards black or white by the same share, which flattens the
picture's texture inside it. What a scanner reads of a module is a blurred sample near its centre: at full
size (a sharp sample), after qr-verify's resize and blur, after a camera's downscale. The polish moves the forced
data modules' pixels to maximise the luminance SSIM to the picture (skimage's 7×7 formula, with its analytic
gradient) while none of those read statistics gets worse: for every forced module, its luminance blurred by
each of `READ_SIGMAS` (module units) at its centre may only get darker (dark module) or lighter (light one)
than in the verified image, and no pixel of its core may cross the core's extreme there (`CORE`). SciPy's
L-BFGS follows the gradient with a quadratic penalty on any statistic that gets worse; luminance stays in
[0, 1]. The texture comes back where a blurred sample does not see it.

The polished picture is verified again like any attempt, and kept only if it passes (`art`). Measured on the
tuning pictures (7 Debian wallpapers × 3 payloads): SSIM 0.576 → 0.596, all 21 polished outputs passing; without
the core bound, 1 of 21 was refused. About 0.4 s per polish at 512²."""

from __future__ import annotations

import numpy as np

from ..qr.code import QRCode
from ..qr.pixels import SSIM_WINDOW, module_pixels, opencv

__all__ = ["CORE", "READ_SIGMAS", "polish", "ssim_and_gradient"]

# the read statistics held: a sharp sample, qr-verify's blurred one (σ 2 px at 300 px ≈ 0.27 module at 512²),
# a camera's downscale to 2-3 px per module
READ_SIGMAS = (0.12, 0.27, 0.5)
PENALTY = 1e6                      # weight of a read statistic that got worse (luminance², per module)
CORE = 0.25                        # half-width of a module's core, in modules: no pixel there may cross the core's
                                   # extreme (a dark core's lightest, a light core's darkest pixel) in `gray`
_C1, _C2 = 0.01 ** 2, 0.03 ** 2   # skimage's constants for data range 1
_COV = SSIM_WINDOW ** 2 / (SSIM_WINDOW ** 2 - 1)   # skimage's sample covariance


def _box(x: np.ndarray) -> np.ndarray:
    """The 7×7 mean, zero outside: its own adjoint, so the same filter carries the gradient back."""
    return opencv().blur(x, (SSIM_WINDOW, SSIM_WINDOW), borderType=opencv().BORDER_CONSTANT)


def _reference_stats(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(7×7 mean, sample variance) of the reference: what every SSIM evaluation against it shares."""
    m = _box(ref)
    return m, _COV * (_box(ref * ref) - m * m)


def ssim_and_gradient(ref: np.ndarray, x: np.ndarray, windows: np.ndarray,
                      ref_stats: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """(Σ over `windows` (H×W 0/1, the window centres counted) of skimage's SSIM map of `x` to `ref`, its
    gradient with respect to `x`). `ref_stats` = (7×7 mean, variance) of `ref`, to reuse across calls."""
    ma, va = _reference_stats(ref) if ref_stats is None else ref_stats
    mb = _box(x)
    vb = _COV * (_box(x * x) - mb * mb)
    vab = _COV * (_box(ref * x) - ma * mb)
    a1, b1 = 2 * ma * mb + _C1, 2 * vab + _C2
    a2, b2 = ma * ma + mb * mb + _C1, va + vb + _C2
    s = a1 * b1 / (a2 * b2) * windows
    d_mean = s * (2 * ma / a1 - 2 * mb / a2 - 2 * _COV * ma / b1 + 2 * _COV * mb / b2)
    d_cross = s * (2 * _COV / b1)
    d_square = s * (-_COV / b2)
    return float(s.sum()), _box(d_mean) + 2 * x * _box(d_square) + ref * _box(d_cross)


def polish(ref: np.ndarray, gray: np.ndarray, qr: QRCode, free: np.ndarray, iterations: int = 20) -> np.ndarray:
    """`gray` (H×W luminance, the verified image) with the pixels of the `free` modules ((n, n) bool, at
    `qr.geometry`) moved towards the SSIM optimum to `ref` (the picture's luminance), every free module's read
    statistics (`READ_SIGMAS`) no worse than in `gray`. Every other pixel is `gray`'s."""
    from scipy.optimize import minimize  # noqa: PLC0415  (a dependency of ComfyUI too)

    cv2 = opencv()
    geo = qr.geometry
    n, p, (x0, y0) = qr.size, geo.module_px, geo.origin
    side = n * p
    ref = np.asarray(ref, np.float32)
    x = np.array(gray, np.float32)
    if iterations <= 0 or not free.any():
        return x
    index = np.flatnonzero(module_pixels(x.shape, geo, free))
    r = SSIM_WINDOW // 2
    windows = np.zeros(x.shape, np.float32)       # the windows that can see a free pixel, inside the image
    windows[max(r, y0 - r):min(x.shape[0] - r, y0 + side + r), max(r, x0 - r):min(x.shape[1] - r, x0 + side + r)] = 1
    low, high = _core_bounds(x, qr, free)
    low, high = low.flat[index], high.flat[index]
    ref_stats = _reference_stats(ref)
    rows = np.ix_(y0 + np.arange(n) * p + (p - 1) // 2, x0 + np.arange(n) * p + (p - 1) // 2)
    sign = np.where(qr.matrix.astype(bool), 1.0, -1.0).astype(np.float32) * free   # +1: may only get darker
    sigmas = [s * p for s in READ_SIGMAS]

    def reads(img):
        return [cv2.GaussianBlur(img, (0, 0), s, borderType=cv2.BORDER_REPLICATE)[rows] for s in sigmas]

    held = reads(x)

    def objective(v):
        x.flat[index] = np.clip(v, low, high)
        total, grad = ssim_and_gradient(ref, x, windows, ref_stats)
        f, g = -total, -grad
        for s, now, then in zip(sigmas, reads(x), held):
            worse = np.maximum(sign * (now - then), 0.0)
            f += PENALTY * float((worse * worse).sum())
            pull = np.zeros_like(x)
            pull[rows] = 2 * PENALTY * worse * sign
            g = g + cv2.GaussianBlur(pull, (0, 0), s, borderType=cv2.BORDER_CONSTANT)
        return f, g.flat[index].astype(np.float64)

    found = minimize(objective, x.flat[index].astype(np.float64), jac=True, method="L-BFGS-B",
                     options={"maxiter": int(iterations), "maxcor": 10})
    x.flat[index] = np.clip(found.x, low, high)
    return x


def _core_bounds(gray: np.ndarray, qr: QRCode, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H×W (low, high) per-pixel bounds: [0, 1], except in the `CORE` of a free module, where a dark module's
    pixels stay at most as light as its core's lightest pixel in `gray` and a light one's at least as dark as its
    darkest. The blurred reads hold the core's mean; these keep a sharp sample anywhere in it from crossing."""
    geo = qr.geometry
    n, p, (x0, y0) = qr.size, geo.module_px, geo.origin
    side = n * p
    inner = np.abs(np.arange(p) - (p - 1) / 2) <= CORE * p
    sym = gray[y0:y0 + side, x0:x0 + side].reshape(n, p, n, p)[:, inner][:, :, :, inner]
    in_core = (inner[:, None, None] & inner[None, None, :])[None]           # (1, p, 1, p)
    dark = qr.matrix.astype(bool)
    low, high = np.zeros(gray.shape, np.float32), np.ones(gray.shape, np.float32)
    low[y0:y0 + side, x0:x0 + side] = np.where(in_core & (free & ~dark)[:, None, :, None],
                                               sym.min(axis=(1, 3))[:, None, :, None], 0.0).reshape(side, side)
    high[y0:y0 + side, x0:x0 + side] = np.where(in_core & (free & dark)[:, None, :, None],
                                                sym.max(axis=(1, 3))[:, None, :, None], 1.0).reshape(side, side)
    return low, high
