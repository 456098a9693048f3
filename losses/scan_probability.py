"""ARTUP's module-based scanning-probability model (Xu et al., TOMM 2021, §4.2.1), in torch: differentiable and
batched (`module_scan_probability`), and as a numpy metric (`module_scan_probability_np`).

The model, as the paper states it (equation numbers are the paper's):

* Expected threshold (eq. 9). A scanner binarises with a local threshold; ARTUP replaces ZXing's hybrid
  block-average binariser by the mean luminance T̄(p) of a square window centred on the pixel. Here the window
  is ``window`` modules a side (the paper's side length is lost from the text we have; "a few modules" — the
  default 5 is about ZXing's 5×5 blocks of 8 px at 8 px/module), clipped to the image (the mean is over the
  pixels that exist, like ZXing at the borders).
* Thresholding error (eq. 8, 10–12). The real threshold T ~ N(T̄(p), σ_t²), limited to the luminance range
  [0, 1]. The pixel binarises light when T < Y(p), dark when T > Y(p); both probabilities are normalised by the
  mass inside [0, 1] (the paper's normalisation "because of the limitations of colour thresholding"), which is
  the CDF of the truncated normal:
      P_light(p) = (Φ((Y − T̄)/σ_t) − Φ(−T̄/σ_t)) / (Φ((1 − T̄)/σ_t) − Φ(−T̄/σ_t)),   P_dark = 1 − P_light.
  So a pure white (Y = 1) pixel is read light with probability exactly 1 whatever the threshold, and pure black
  dark with probability 1.
* Sampling error (eq. 13). The pixel a scanner samples for a module is drawn from a Gaussian centred on the
  module centre, σ_s in module units, restricted to the module's own pixels and normalised to sum 1 there.
* Module probability (eq. 14–15): P(module read correctly) = Σ_p w(p) · P_correct(p), with P_correct the
  thresholding probability of the module's intended colour.

Departures (documented, switchable where it matters):
* Expected threshold = (1 − g)·local mean + g·0.5, g = `global_weight` (default 0.5; g = 0 is the paper). Many
  scanners fall back to a global (histogram) binariser, and a phone's exposure and contrast changes act like a
  fixed threshold on the printed luminance (qr-verify's contrast presets are exactly that); with the local mean
  alone, a "dark" module in a bright region can sit at mid grey and vanish under over-exposure. Measured on the
  simulated-camera suite (bench/bench_artup.py), g = 0.5 reaches the same scan rate as g = 0 with less change.
* The defaults σ_t = 0.25 and window = 5 modules are our tuning (the paper's values are lost from the text).
* The window is a centred box over the image pixels rather than ZXing's block grid (the paper does the same,
  §4.2.1 "assume the pixel is always located in the centre of the block"); luminance is Rec.601 on whatever
  values the image holds (no gamma); T̄ is differentiable by default (the paper holds it fixed while adjusting
  pixels — `detach_threshold=True` does that).

Images are B×3×H×W (or B×H×W luminance, or B×H×W×3 with ``channels_last=True``) in
[0, 1] at the code's geometry (``qr.geometry.image_size``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..qr.code import Geometry, QRCode
from ..qr.pixels import module_grid
from .grid import gaussian_weights, geometry_of, luminance, symbol_blocks

DEFAULT_SIGMA_S = 1 / 3    # module units: the sampled point's spread around the module centre
DEFAULT_SIGMA_T = 0.25     # luminance units in [0, 1]: the real threshold's spread around its expected value
DEFAULT_WINDOW = 5.0       # modules: side of the local-mean window that gives the expected threshold
DEFAULT_GLOBAL_WEIGHT = 0.5  # share of a fixed global threshold in the expected threshold (0 = the paper)
GLOBAL_THRESHOLD = 0.5     # the fixed threshold of a global binariser (mid grey)
_SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------------------------
# pieces

def to_luminance(image: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """B×3×H×W (B×H×W×3 with channels_last) → B×H×W Rec.601 luminance; B×H×W passes through; H×W gets B=1."""
    if image.ndim == 2:
        return image.unsqueeze(0)
    if image.ndim == 3:
        return image
    if image.ndim != 4:
        raise ValueError(f"image must be B×3×H×W, B×H×W×3 (channels_last) or B×H×W, got {tuple(image.shape)}")
    if channels_last:
        image = image.permute(0, 3, 1, 2)
    c = image.shape[1]
    if c == 1:
        return image[:, 0]
    if c not in (3, 4):
        raise ValueError(f"image has {c} channels; expected 1, 3 or 4 (is it channels-last? pass channels_last=True)")
    return luminance(image[:, :3])


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / _SQRT2))


def normal_icdf(p: torch.Tensor) -> torch.Tensor:
    return _SQRT2 * torch.erfinv(2.0 * p - 1.0)


def _box_sum_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over [i − r, i + r] along `dim`, zero outside (cumulative-sum trick, O(N), differentiable)."""
    dim = dim % x.dim()
    n = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - dim) + [r + 1, r]                  # F.pad lists the last dimension first
    c = torch.nn.functional.pad(x, pad).cumsum(dim)                  # c[k] = sum of x[:k − r]
    return c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)


def local_mean(lum: torch.Tensor, window_px: int) -> torch.Tensor:
    """B×H×W mean over a window_px × window_px box centred on each pixel, clipped to the image (the mean of the
    pixels that exist). window_px is made odd (at least 1)."""
    r = max(0, int(window_px) // 2)
    if r == 0:
        return lum
    s = _box_sum_1d(_box_sum_1d(lum, r, 1), r, 2)
    h, w = lum.shape[-2:]
    ones_h = _box_sum_1d(lum.new_ones(1, h, 1), r, 1)
    ones_w = _box_sum_1d(lum.new_ones(1, 1, w), r, 2)
    return s / (ones_h * ones_w)


def window_px(geometry: Geometry, window: float) -> int:
    """The expected-threshold window in pixels for `window` modules (odd, ≥ 1)."""
    k = max(1, int(round(window * geometry.module_px)))
    return k if k % 2 else k + 1


def threshold_bounds(threshold: torch.Tensor, sigma_t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(CDF at 0, CDF mass in [0, 1]) of T ~ N(threshold, σ_t²): the truncation of eq. 10–12, which depends on the
    threshold only — a loop over luminances at one threshold computes it once."""
    s = max(float(sigma_t), 1e-6)
    a = normal_cdf(-threshold / s)
    return a, torch.clamp(normal_cdf((1.0 - threshold) / s) - a, min=1e-12)


def threshold_probability(lum: torch.Tensor, threshold: torch.Tensor, light: torch.Tensor,
                          sigma_t: float, bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Per pixel, the probability that a threshold T ~ N(threshold, σ_t²) limited to [0, 1] binarises the pixel
    to the wanted colour (light where `light` is true): the truncated-normal CDF of ARTUP eq. 10–12. `bounds`:
    `threshold_bounds(threshold, sigma_t)`, when already known."""
    s = max(float(sigma_t), 1e-6)
    a, mass = threshold_bounds(threshold, sigma_t) if bounds is None else bounds
    x = normal_cdf((lum - threshold) / s)
    p_light = torch.clamp((x - a) / mass, 0.0, 1.0)
    return torch.where(light, p_light, 1.0 - p_light)


def luminance_for_probability(prob: torch.Tensor, threshold: torch.Tensor, light: torch.Tensor,
                              sigma_t: float) -> torch.Tensor:
    """The inverse of `threshold_probability` in the luminance: the pixel value whose probability of reading
    as the wanted colour is `prob` (clipped to [0, 1]). ARTUP's "look-up table" of §4.2.2, in closed form."""
    s = max(float(sigma_t), 1e-6)
    a = normal_cdf(-threshold / s)
    b = normal_cdf((1.0 - threshold) / s)
    p_light = torch.where(light, prob, 1.0 - prob)
    q = torch.clamp(a + p_light * (b - a), 1e-12, 1.0 - 1e-12)
    return torch.clamp(threshold + s * normal_icdf(q), 0.0, 1.0)


def sampling_weights(module_px: int, sigma_s: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """p×p weights of ARTUP eq. 13: a Gaussian centred on the module centre, σ = σ_s·module_px pixels, summing to
    1 over the module. σ_s ≤ 0 samples the centre only (the centre pixel, or the central 2×2 for even sizes)."""
    if sigma_s <= 0:
        w = torch.zeros(module_px, module_px, device=device, dtype=dtype)
        lo, hi = (module_px - 1) // 2, module_px // 2 + 1
        w[lo:hi, lo:hi] = 1.0
        return w / w.sum()
    return gaussian_weights(module_px, sigma_s * module_px, normalise="sum", device=device, dtype=dtype)


def light_map(qr: QRCode, geometry: Geometry | None = None, device=None) -> torch.Tensor:
    """H×W bool, the wanted colour of every pixel: light for light modules and the quiet zone, dark for dark
    modules."""
    row, col, _, _ = module_grid(geometry_of(qr, geometry), qr.size)
    dark = (row >= 0) & (col >= 0) & qr.matrix.astype(bool)[np.maximum(row, 0), np.maximum(col, 0)]
    return torch.from_numpy(~dark).to(device)


# ---------------------------------------------------------------------------------------------------------------
# the model

def expected_threshold(lum: torch.Tensor, geometry: Geometry, window: float = DEFAULT_WINDOW,
                       global_weight: float = DEFAULT_GLOBAL_WEIGHT) -> torch.Tensor:
    """B×H×W expected threshold: (1 − g)·(local mean over `window` modules) + g·GLOBAL_THRESHOLD."""
    local = local_mean(lum, window_px(geometry, window))
    if global_weight <= 0:
        return local
    return (1.0 - global_weight) * local + global_weight * GLOBAL_THRESHOLD


def pixel_probability(image: torch.Tensor, qr: QRCode, *, sigma_t: float = DEFAULT_SIGMA_T,
                      window: float = DEFAULT_WINDOW, global_weight: float = DEFAULT_GLOBAL_WEIGHT,
                      threshold: torch.Tensor | None = None,
                      detach_threshold: bool = False, channels_last: bool = False,
                      geometry: Geometry | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B×H×W probability that each pixel binarises to its wanted colour, B×H×W expected threshold T̄).

    `threshold` overrides the local mean (B×H×W or H×W), e.g. the threshold an outer iteration holds fixed."""
    geo = geometry_of(qr, geometry)
    lum = to_luminance(image, channels_last)
    if tuple(lum.shape[-2:]) != (geo.image_size[1], geo.image_size[0]):
        raise ValueError(f"image is {lum.shape[-1]}×{lum.shape[-2]} but the code's geometry is "
                         f"{geo.image_size[0]}×{geo.image_size[1]}; resample it to the code's size first")
    if threshold is None:
        threshold = expected_threshold(lum, geo, window, global_weight)
        if detach_threshold:
            threshold = threshold.detach()
    else:
        threshold = threshold.to(lum).expand_as(lum)
    light = light_map(qr, geo, device=lum.device)
    return threshold_probability(lum, threshold, light, sigma_t), threshold


def module_scan_probability(image: torch.Tensor, qr: QRCode, *, sigma_s: float = DEFAULT_SIGMA_S,
                            sigma_t: float = DEFAULT_SIGMA_T, window: float = DEFAULT_WINDOW,
                            global_weight: float = DEFAULT_GLOBAL_WEIGHT, threshold: torch.Tensor | None = None,
                            detach_threshold: bool = False, channels_last: bool = False,
                            geometry: Geometry | None = None) -> torch.Tensor:
    """(B, n, n) probability that a scanner reads each module of `qr` correctly from `image` (ARTUP eq. 15):
    the sampling-weighted mean of the pixels' thresholding probabilities. Differentiable in the image."""
    geo = geometry_of(qr, geometry)
    prob, _ = pixel_probability(image, qr, sigma_t=sigma_t, window=window, global_weight=global_weight,
                                threshold=threshold,
                                detach_threshold=detach_threshold, channels_last=channels_last, geometry=geo)
    blocks = symbol_blocks(prob, qr, geo, fill=1.0)                      # B×n×n×p×p
    w = sampling_weights(geo.module_px, sigma_s, device=prob.device, dtype=prob.dtype)
    return torch.einsum("bijxy,xy->bij", blocks, w).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# numpy metric

def module_scan_probability_np(image: np.ndarray, qr: QRCode, **model) -> np.ndarray:
    """(n, n) float32 P(module read correctly) for one H×W×3 (or H×W) float image in [0, 1] at the code's geometry
    (uint8 is scaled). The metric form of `module_scan_probability`; no gradients."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)[None]
    with torch.no_grad():
        return module_scan_probability(t, qr, **model)[0].numpy()

