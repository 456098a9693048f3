"""ARTUP — scanning-robust aesthetic QR codes (Xu, Li, Ma, Liu, Yan; ACM TOMM 2021), the whole pipeline:

1. Binary stage (§4.1): the code's free bits are reshuffled so its modules follow the picture's module-based
   binarisation (Gaussian-weighted module means), with ARTUP's priority 0.67·edges + 0.23·saliency +
   0.10·centre — `art.follow.follow_picture(priority="artup")`. A code that is already reshuffled can be given.
2. Grayscale stage (§4.2): start from the picture's luminance at the code's geometry and raise each module's
   probability of being read correctly (`losses.scan_probability`, eq. 8–15) to at least p_min, moving pixels
   only towards their module's colour (light modules are lightened, dark ones darkened; modules already at
   p_min are left alone):
   * Algorithm 1 (luminance modification), `adjust="probability"`: with the expected threshold T̄ held fixed,
     each pixel's thresholding probability P_t(p) is raised by c·β(p), β a Gaussian centred on the module
     (σ_β, default σ_s: "a prior to the colour adjustment of the module's centre", §4.4) scaled so Σ w·β = 1,
     capped at 1; the scalar c of each module is solved exactly (bisection on the capped sum, which is what the
     paper's iterative redistribution converges to when pixels saturate) so that Σ w·P_t = p_min. The new
     luminance is the closed-form inverse of the truncated-normal CDF (the paper's look-up table). This makes
     the module centres black/white dots.
   * `adjust="blend"` (default; ours): each failing module is blended with its colour, Y' = Y + s·β·(c − Y),
     with the smallest s ∈ [0, 1] that meets the same constraint under the same model. With a flat β it is an
     affine change inside the module, so the picture's texture survives; measured on the simulated-camera suite
     it reaches the same scan rates at a higher SSIM than the dots (bench/bench_artup.py).
   * Algorithm 2 (threshold estimation): T̄ is re-estimated from the adjusted image and step 1 redone from the
     picture, `iterations` times (the paper: about 10 at 512²; here the change of T̄ falls below 1e-4 by then).
     T̄ starts from the mean of the picture's luminance and the binary code ("pre-estimated from the grayscale
     image and the binary code").
   * Function patterns: finders, separators and alignment patterns are drawn crisply (`markers="crisp"`, as in
     the paper's figures) or harmonised with Face2QR's λ formula (`markers="harmonize"`, `art.markers`); timing,
     format and version modules go through the model with `function_p_min`.
3. Colour stage (§4.3, eq. 18–23): every pixel's colour is linearly interpolated towards black (to darken) or
   white (to lighten) until its Rec.601 luminance equals the grayscale target: C' = C + k·(C_m − C),
   k = (Y* − Y(C)) / (Y(C_m) − Y(C)). Both ends have the pixel's hue (mixing with black or white keeps the HSV
   hue). colour="saturated" first scales towards the brightest colour with the same channel ratios and only
   then mixes with white, keeping more saturation when lightening.

Departures from the paper (each is a parameter; the paper's choice is one value of it):
* adjust="blend" by default (the paper: "probability").
* The expected threshold mixes in a fixed mid-grey threshold, global_weight = 0.5 (the paper: 0, local mean
  only) — see `losses.scan_probability`. σ_t = 0.25 and window = 5 modules are our tuning (the paper's values
  are lost from our copy of the text).
* p_min is one number for data modules and `function_p_min` for function modules, rather than eq. 24's
  saliency-modulated map (pass an (n, n) array as p_min for that).
* The quiet zone: the paper does not discuss it. quiet_zone="model" keeps `quiet_width` modules around the
  symbol light (per pixel P ≥ p_min) and leaves the rest of the border as the picture.
* A camera pass (`camera_blur`): the paper's model reads the pixels as printed; a phone sees them blurred, and
  a module that reads right when sharp can drown in dark neighbours when blurred. After Algorithm 2 the same
  constraint is checked on the blurred image (threshold re-estimated from it) and failing modules are blended
  further. By default the blur is a fixed share of the code's width, so larger versions (smaller modules) get
  more of it. Without it, version 10 and a bright silhouette picture fell to 84–90 % in the suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from ..losses.scan_probability import (
    DEFAULT_GLOBAL_WEIGHT,
    DEFAULT_SIGMA_S,
    DEFAULT_SIGMA_T,
    DEFAULT_WINDOW,
    expected_threshold,
    light_map,
    luminance_for_probability,
    module_scan_probability,
    sampling_weights,
    threshold_bounds,
    threshold_probability,
)
from ..qr.code import QRCode, encode
from ..qr.errors import QRInputError
from ..qr.pixels import fit, luminance, require_geometry, to_float_rgb
from ..qr.render import make_geometry
from .colour import COLOUR_MODES, match_luminance
from .follow import FollowResult, follow_picture
from .markers import check_lambda, clamp_values, marker_modules, marker_pixels

ADJUST_MODES = ("blend", "probability")
MARKER_MODES = ("crisp", "harmonize", "model")
QUIET_ZONE_MODES = ("model", "white", "picture")
DEFAULT_P_MIN = 0.85
DEFAULT_FUNCTION_P_MIN = 0.99
DEFAULT_QUIET_WIDTH = 1.0
DEFAULT_CAMERA_BLUR = None        # auto: CAMERA_BLUR_PER_MODULE × modules across the image (quiet zone included)
CAMERA_BLUR_PER_MODULE = 0.003    # a fixed optical blur of 0.3 % of the code's width, in module units
DEFAULT_ITERATIONS = 10
DEFAULT_SIZE_PX = 512
_BISECTION_STEPS = 32
_CAMERA_STEPS = 12
_CAMERA_PROGRESS = 0.99   # the camera pass stops once a step closes less than 1 % of the modules' total gap


# ---------------------------------------------------------------------------------------------------------------
# configuration

_UNIT = {"min": 0.0, "max": 1.0}


@dataclass(frozen=True)
class ArtupConfig:
    """Every tuning parameter of ARTUP's three stages (what each does: `artup`). Validated on construction, and
    so by `dataclasses.replace` too: a bad value raises QRInputError naming it. `metadata` holds the inclusive
    bounds that the validation enforces ("min"/"max"), for front ends that want to show them.

    The binary-stage fields are used only when `artup` encodes and reshuffles `text`; a given code keeps its own
    version, level, mask and (when it has one) geometry. Their values are checked where they are used
    (`encode`, `follow_picture`, `make_geometry`)."""

    # binary stage
    version: int | None = None              # None: the smallest that fits at `ecl`
    ecl: str = "M"
    mask: int | None = None                 # None: try all eight
    module_px: int | None = None            # None: the largest that keeps the image within size_px
    border: int = 4
    multiple: int = 8
    size_px: int = DEFAULT_SIZE_PX
    priority: str | np.ndarray = "artup"
    extra_versions: int = 0
    seed: int = 0
    # grayscale stage
    p_min: float | np.ndarray = field(default=DEFAULT_P_MIN, metadata=_UNIT)
    function_p_min: float = field(default=DEFAULT_FUNCTION_P_MIN, metadata=_UNIT)
    sigma_s: float = field(default=DEFAULT_SIGMA_S, metadata={"min": 0.0})
    sigma_t: float = DEFAULT_SIGMA_T
    window: float = DEFAULT_WINDOW
    global_weight: float = field(default=DEFAULT_GLOBAL_WEIGHT, metadata=_UNIT)
    iterations: int = field(default=DEFAULT_ITERATIONS, metadata={"min": 1})
    adjust: str = "blend"
    beta_sigma: float | None = None         # None: σ_s for adjust="probability", flat for "blend"
    markers: str = "crisp"
    lam: float = field(default=0.8, metadata=_UNIT)
    include_alignment: bool = True
    quiet_zone: str = "model"
    quiet_width: float | None = field(default=DEFAULT_QUIET_WIDTH, metadata={"min": 0.0})  # None: whole border
    camera_blur: float | None = field(default=DEFAULT_CAMERA_BLUR, metadata={"min": 0.0})   # None: auto
    init_mix: float = field(default=0.5, metadata=_UNIT)  # T̄'s start: (1 − init_mix)·picture + init_mix·code
    # colour stage
    colour: str = "paper"

    def __post_init__(self):
        for f in fields(self):  # NaN and ±inf pass every comparison below: reject them first, by name
            value = getattr(self, f.name)
            if "float" in str(f.type) and value is not None:
                try:
                    if isinstance(value, (str, bytes)):
                        raise TypeError
                    finite = bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())
                except (TypeError, ValueError):
                    raise QRInputError(f"{f.name} must be a number, got {value!r}") from None
                if not finite:
                    raise QRInputError(f"{f.name} must be finite, got {_show(value)}")
        if self.colour not in COLOUR_MODES:
            raise QRInputError(f"colour {self.colour!r} is not one of {', '.join(COLOUR_MODES)}")
        self._check_bounds("p_min", float(np.min(self.p_min)), float(np.max(self.p_min)))
        self._check_bounds("function_p_min")
        if self.sigma_t <= 0:
            raise QRInputError(f"sigma_t must be > 0 (the threshold's spread in luminance), got {self.sigma_t}")
        self._check_bounds("sigma_s", note=" (module units; 0 samples the centre only)")
        if self.window <= 0:
            raise QRInputError(f"window must be > 0 modules, got {self.window}")
        self._check_bounds("global_weight")
        if self.camera_blur is not None:
            self._check_bounds("camera_blur", note=" modules (or None for auto)")
        if self.quiet_width is not None:
            self._check_bounds("quiet_width", note=" modules (or None for the whole border)")
        if self.adjust not in ADJUST_MODES:
            raise QRInputError(f"adjust {self.adjust!r} is not one of {', '.join(ADJUST_MODES)}")
        if self.markers not in MARKER_MODES:
            raise QRInputError(f"markers {self.markers!r} is not one of {', '.join(MARKER_MODES)}")
        if self.quiet_zone not in QUIET_ZONE_MODES:
            raise QRInputError(f"quiet_zone {self.quiet_zone!r} is not one of {', '.join(QUIET_ZONE_MODES)}")
        self._check_bounds("iterations")
        check_lambda(self.lam)
        self._check_bounds("init_mix")

    def _check_bounds(self, name: str, lo_value=None, hi_value=None, note: str = "") -> None:
        """The field's metadata bounds, with the message naming it ("x must be in [0, 1], got …")."""
        value = getattr(self, name)
        meta = self.__dataclass_fields__[name].metadata
        lo, hi = meta.get("min"), meta.get("max")
        lo_value = value if lo_value is None else lo_value
        hi_value = value if hi_value is None else hi_value
        if (lo is None or lo_value >= lo) and (hi is None or hi_value <= hi):
            return
        bound = f"in [{lo:g}, {hi:g}]" if hi is not None else f"≥ {lo:g}"
        raise QRInputError(f"{name} must be {bound}{note}, got {_show(value)}")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (`dataclasses.asdict`, except that a per-module p_min is given as its
        mean and a priority map as "map")."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # asdict would deep-copy a priority map
        if isinstance(self.priority, np.ndarray):
            out["priority"] = "map"
        out["p_min"] = float(np.mean(self.p_min))
        return out


def _show(value) -> str:
    """A value for a one-line message (an array as its range)."""
    if isinstance(value, np.ndarray) and value.size > 1:
        return f"an array from {float(np.min(value))} to {float(np.max(value))}"
    return str(value.item() if isinstance(value, np.ndarray) else value)


DEFAULT_CONFIG = ArtupConfig()


def _gauss_blur(g: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of an H×W plane (reflected borders)."""
    r = max(1, int(np.ceil(3 * sigma_px)))
    x = torch.arange(-r, r + 1, dtype=g.dtype)
    k = torch.exp(-x ** 2 / (2 * sigma_px ** 2))
    k = k / k.sum()
    t = torch.nn.functional.pad(g[None, None], (r, r, r, r), mode="reflect")
    t = torch.nn.functional.conv2d(t, k.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(t, k.view(1, 1, -1, 1))[0, 0]


# ---------------------------------------------------------------------------------------------------------------
# grayscale stage

@dataclass
class GrayscaleResult:
    gray: np.ndarray              # H×W float32 target luminance
    probability: np.ndarray       # (n, n) P(module read correctly), with the threshold re-estimated from `gray`
    threshold: np.ndarray         # H×W float32 the self-consistent expected threshold
    changed: list[float]          # per iteration: share of pixels whose luminance moved
    residual: list[float]         # per iteration: mean |ΔT̄| between successive threshold estimates
    camera_blur: float = 0.0      # the blur (modules) of the camera pass, 0 when off
    camera_probability: np.ndarray | None = None  # (n, n) P on the image blurred by camera_blur


def _shape(module_px: int, sigma: float | None, dtype=torch.float32) -> torch.Tensor:
    """p×p adjustment prior with peak 1: a Gaussian of σ module units around the centre; σ ≤ 0 or None: flat."""
    if sigma is None or sigma <= 0:
        return torch.ones(module_px, module_px, dtype=dtype)
    b = sampling_weights(module_px, sigma, dtype=dtype)
    return b / b.max()


def _raise_probability(pt: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, p_min: torch.Tensor,
                       steps: int = _BISECTION_STEPS) -> torch.Tensor:
    """Algorithm 1, vectorised over modules (blocks n×n×p×p of pixel probabilities): the smallest c ≥ 0 per
    module with Σ w·min(1, P_t + c·β) ≥ p_min (c = 0 where already met), applied. β is scaled so Σ w·β = 1
    (eq. 17), so without the cap at 1, c is exactly the module's deficit."""
    beta = beta / (w * beta).sum()
    current = torch.einsum("ijxy,xy->ij", pt, w)
    need = current < p_min
    if not bool(need.any()):
        return pt
    lo = torch.zeros_like(current)
    hi = torch.full_like(current, float(1.0 / beta.min()))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = torch.einsum("ijxy,xy->ij", torch.clamp(pt + mid[..., None, None] * beta, max=1.0), w) >= p_min
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    c = torch.where(need, hi, torch.zeros_like(hi))
    return torch.clamp(pt + c[..., None, None] * beta, max=1.0)


def _blend_modules(y: torch.Tensor, t: torch.Tensor, light: torch.Tensor, w: torch.Tensor, shape: torch.Tensor,
                   p_min: torch.Tensor, sigma_t: float, steps: int = 14) -> torch.Tensor:
    """The blend adjustment (ours): per module the smallest s ∈ [0, 1] with Y' = Y + s·shape·(colour − Y)
    meeting Σ w·P_t(Y') ≥ p_min (bisection on the modules that need it, to 2⁻¹⁴; P is monotone in s). With a flat
    shape this is a per-module alpha blend of the picture with the code bit: affine in Y inside the module, so the
    module keeps its texture."""
    delta = shape * (light.to(y.dtype) - y)

    def prob(s, y, delta, t, light, bounds):
        p = threshold_probability(y + s[..., None, None] * delta, t, light, sigma_t, bounds)
        return torch.einsum("kxy,xy->k", p.reshape(-1, *p.shape[-2:]), w).reshape(p.shape[:-2])

    bounds = threshold_bounds(t, sigma_t)
    need = prob(torch.zeros(y.shape[:2], dtype=y.dtype), y, delta, t, light, bounds) < p_min
    if not bool(need.any()):
        return y
    few = (y[need], delta[need], t[need], light[need], tuple(b[need] for b in bounds))
    goal = p_min[need]
    lo = torch.zeros(goal.shape, dtype=y.dtype)
    hi = torch.ones_like(lo)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = prob(mid, *few) >= goal
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    s = torch.zeros(y.shape[:2], dtype=y.dtype)
    s[need] = hi
    return y + s[..., None, None] * delta


def grayscale_stage(y0: np.ndarray, qr: QRCode, config: ArtupConfig = DEFAULT_CONFIG, *,
                    progress: Callable[[int, int], None] | None = None) -> GrayscaleResult:
    """ARTUP's grayscale aesthetic code from the picture's luminance `y0` (H×W at `qr.geometry`) and the
    (reshuffled) code; the grayscale fields of `config` as in `artup` (its binary and colour fields are not
    used). Pixels only move towards their module's colour."""
    if not isinstance(config, ArtupConfig):
        raise QRInputError(f"config must be an ArtupConfig, got {type(config).__name__}")
    c = config
    p_min, function_p_min, sigma_s, sigma_t, window = c.p_min, c.function_p_min, c.sigma_s, c.sigma_t, c.window
    global_weight, iterations, adjust, beta_sigma = c.global_weight, c.iterations, c.adjust, c.beta_sigma
    markers, lam, include_alignment, quiet_zone = c.markers, check_lambda(c.lam), c.include_alignment, c.quiet_zone
    quiet_width, camera_blur, init_mix = c.quiet_width, c.camera_blur, c.init_mix
    geo = require_geometry(qr)
    n, p = qr.size, geo.module_px
    x0, yo = geo.origin
    side = n * p
    h, w_img = y0.shape
    if (w_img, h) != tuple(geo.image_size):
        raise QRInputError(f"luminance is {w_img}×{h} but the code's geometry is {geo.image_size}")
    if x0 < 0 or yo < 0 or x0 + side > w_img or yo + side > h:
        raise QRInputError("the code's geometry puts modules outside the image; re-render it with a border ≥ 0")
    dt = torch.float32
    Y0 = torch.from_numpy(np.ascontiguousarray(y0, dtype=np.float32))
    light = light_map(qr, geo)
    inside = torch.zeros(h, w_img, dtype=torch.bool)
    inside[yo:yo + side, x0:x0 + side] = True
    qpx = int(round((geo.border if quiet_width is None else quiet_width) * p))
    quiet = torch.zeros(h, w_img, dtype=torch.bool)
    quiet[max(0, yo - qpx):yo + side + qpx, max(0, x0 - qpx):x0 + side + qpx] = True
    quiet &= ~inside
    wts = sampling_weights(p, sigma_s, dtype=dt)
    if beta_sigma is None:
        beta_sigma = sigma_s if adjust == "probability" else 0.0
    shape = _shape(p, beta_sigma, dt)
    pm = np.broadcast_to(np.asarray(p_min, dtype=np.float32), (n, n)).copy()
    fm = qr.function_mask.astype(bool)
    pm[fm] = np.maximum(pm[fm], function_p_min)
    pm_t = torch.from_numpy(np.clip(pm, 0.0, 1.0))
    qz_p = float(np.min(np.broadcast_to(np.asarray(p_min, dtype=np.float32), (n, n))))

    marker_sel = marker_light = None
    if markers != "model":
        sel, lt = marker_pixels((h, w_img), qr, marker_modules(qr, include_alignment=include_alignment))
        marker_sel, marker_light = torch.from_numpy(sel), torch.from_numpy(lt)

    def blocks(plane: torch.Tensor) -> torch.Tensor:
        return plane[yo:yo + side, x0:x0 + side].reshape(n, p, n, p).permute(0, 2, 1, 3)

    def unblock(b: torch.Tensor) -> torch.Tensor:
        return b.permute(0, 2, 1, 3).reshape(side, side)

    def threshold_of(g: torch.Tensor) -> torch.Tensor:
        return expected_threshold(g[None], geo, window, global_weight)[0]

    def finish(g: torch.Tensor, threshold: torch.Tensor, pt: torch.Tensor) -> torch.Tensor:
        """Quiet zone and function patterns (drawn over whatever the modules got)."""
        if quiet_zone == "model":  # per pixel: no sampling spread outside the symbol
            target = luminance_for_probability(torch.full_like(Y0, qz_p), threshold, light, sigma_t)
            g = torch.where(quiet & (pt < qz_p), torch.maximum(target, g), g)
        elif quiet_zone == "white":
            g = torch.where(quiet, torch.ones_like(g), g)
        if marker_sel is not None:
            if markers == "crisp":
                g = torch.where(marker_sel, marker_light.to(dt), g)
            else:
                g = torch.where(marker_sel, torch.from_numpy(clamp_values(g.numpy(), marker_light.numpy(), lam)), g)
        return g

    def modify(threshold: torch.Tensor) -> torch.Tensor:
        """One pass of Algorithm 1 from the picture, with the expected threshold held fixed."""
        pt = threshold_probability(Y0, threshold, light, sigma_t)
        g = Y0.clone()
        if adjust == "probability":
            raised = _raise_probability(blocks(pt), wts, shape, pm_t)
            new = luminance_for_probability(raised, blocks(threshold), blocks(light), sigma_t)
            sym = torch.where(raised > blocks(pt), new, blocks(Y0))
        else:
            sym = _blend_modules(blocks(Y0), blocks(threshold), blocks(light), wts, shape, pm_t, sigma_t)
        g[yo:yo + side, x0:x0 + side] = unblock(sym)
        return finish(g, threshold, pt)

    def camera_pass(g: torch.Tensor) -> torch.Tensor:
        """Ours: the same constraint on the image as a camera sees it, blurred by σ = camera_blur modules (and
        its threshold re-estimated from the blurred image). Failing modules are blended further towards their
        colour (by the β shape) in a few fixed-point steps; modules never move back."""
        goal = blocks(light).to(dt)
        before = float("inf")
        for _ in range(_CAMERA_STEPS):
            gb = _gauss_blur(g, camera_blur * p)
            t = threshold_of(gb)
            pt = threshold_probability(gb, t, light, sigma_t)
            gap = torch.clamp(pm_t - torch.einsum("ijxy,xy->ij", blocks(pt), wts), min=0.0)
            sharp = threshold_probability(g, threshold_of(g), light, sigma_t)   # keep the sharp constraint too
            gap = torch.maximum(gap, torch.clamp(pm_t - torch.einsum("ijxy,xy->ij", blocks(sharp), wts), min=0.0))
            total = float(gap.sum())
            if float(gap.max()) <= 1e-3 or total > _CAMERA_PROGRESS * before:   # met, or stuck
                break
            before = total
            step = torch.where(gap > 0, torch.clamp(2.0 * gap, 0.05, 0.5), torch.zeros_like(gap))
            sym = blocks(g)
            sym = sym + step[..., None, None] * shape * (goal - sym)
            g = g.clone()
            g[yo:yo + side, x0:x0 + side] = unblock(sym)
            t = threshold_of(g)
            g = finish(g, t, threshold_probability(g, t, light, sigma_t))
        return g

    # Algorithm 2: re-estimate the expected threshold from the adjusted image and redo the adjustment
    threshold = threshold_of((1 - init_mix) * Y0 + init_mix * light.to(dt))
    changed, residual = [], []
    g = Y0
    for it in range(iterations):
        g = modify(threshold)
        new_t = threshold_of(g)
        residual.append(float((new_t - threshold).abs().mean()))
        changed.append(float(((g - Y0).abs() > 1e-4).float().mean()))
        threshold = new_t
        if progress is not None:
            progress(it + 1, iterations)
    if camera_blur is None:
        camera_blur = CAMERA_BLUR_PER_MODULE * (n + 2 * geo.border)
    if camera_blur > 0:
        g = camera_pass(g)
    model = {"sigma_s": sigma_s, "sigma_t": sigma_t, "window": window, "global_weight": global_weight}
    with torch.no_grad():
        prob = module_scan_probability(g[None], qr, **model)[0].numpy()
        cam = (module_scan_probability(_gauss_blur(g, camera_blur * p)[None], qr, **model)[0].numpy()
               if camera_blur > 0 else None)
    return GrayscaleResult(g.numpy().astype(np.float32), prob, threshold.numpy(), changed, residual,
                           float(camera_blur), cam)


# ---------------------------------------------------------------------------------------------------------------
# the pipeline

@dataclass
class ArtupResult:
    image: np.ndarray             # H×W×3 float32 in [0, 1], the colour ARTUP code at qr.geometry
    qr: QRCode                    # the (reshuffled) code, geometry attached
    gray: np.ndarray              # H×W float32, the grayscale stage
    picture: np.ndarray           # H×W×3 float32, the picture fitted to the geometry
    probability: np.ndarray       # (n, n) P(module read correctly) of the grayscale code
    timings: dict[str, float]     # seconds per stage
    config: ArtupConfig           # the settings it was made with
    follow: FollowResult | None = None
    grayscale: GrayscaleResult | None = field(default=None, repr=False)

    @property
    def params(self) -> dict:
        """`config` as a JSON-ready dict (`ArtupConfig.to_dict`)."""
        return self.config.to_dict()

    @property
    def mean_p(self) -> float:
        return float(self.probability.mean())

    @property
    def min_p(self) -> float:
        return float(self.probability.min())

    def _camera_summary(self) -> dict:
        gs = self.grayscale
        if gs is None or gs.camera_probability is None:
            return {}
        return {"camera_blur": round(gs.camera_blur, 3), "mean_p_camera": round(float(gs.camera_probability.mean()), 4),
                "min_p_camera": round(float(gs.camera_probability.min()), 4)}

    def to_dict(self) -> dict:
        data = self.qr.module_block >= 0
        return {**self.qr.summary(), "mean_p": round(self.mean_p, 4), "min_p": round(self.min_p, 4),
                "mean_p_data": round(float(self.probability[data].mean()), 4),
                "below_p_min": int((self.probability < self.params["p_min"] - 1e-3).sum()),
                **self._camera_summary(),
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}, "params": self.params,
                "match_fraction": round(self.follow.report.match_fraction, 4) if self.follow else None}


def auto_module_px(size: int, border: int, size_px: int) -> int:
    """The largest whole module size that keeps the code (with its quiet zone) within size_px (≥ 2)."""
    return max(2, int(size_px // (size + 2 * border)))


def artup(picture, text: str | None = None, *, qr: QRCode | None = None, config: ArtupConfig = DEFAULT_CONFIG,
          progress: Callable[[int, int], None] | None = None) -> ArtupResult:
    """The ARTUP pipeline on `picture` (H×W×3 float [0, 1] or uint8, any size: cover-fitted to the code), tuned
    by `config` (an `ArtupConfig`; its fields below).

    Binary stage: `text` is encoded (smallest version at `ecl` unless `version`) and reshuffled towards the
    picture with `follow_picture` (all masks unless `mask`; `extra_versions` larger versions too; `priority`
    "artup" by default; `seed` breaks ties). Or pass `qr`, an already reshuffled code: it is used as is (its
    geometry, or one made from module_px/border/multiple when it has none), and the other binary-stage fields
    are not used. module_px None picks the largest that keeps the image within `size_px`.

    Grayscale stage (the model: `losses.scan_probability`):
      p_min           required P(module read correctly) for data modules — a number, or an (n, n) array (eq. 24's
                      per-module constraint). Higher: more robust, more code visible.
      function_p_min  the same for timing, format and version modules (and any function module not drawn crisp).
      sigma_s         sampling spread, module units (eq. 13).
      sigma_t         threshold spread, luminance units (eq. 8).
      window          expected-threshold window, modules (eq. 9).
      global_weight   share of a fixed mid-grey threshold in the expected threshold (0 = the paper).
      iterations      threshold re-estimations (Algorithm 2).
      adjust          "probability": the paper's Algorithm 1 — raise pixel probabilities by c·β, β a Gaussian of
                      σ `beta_sigma` (default σ_s), which darkens/lightens module centres first (dots).
                      "blend" (default, ours): blend each failing module with its colour by the smallest factor
                      that meets p_min, with the shape β (default flat): same robustness, higher SSIM measured.
      markers         "crisp" finders, separators and alignment patterns (`include_alignment`) in pure
                      black/white; "harmonize" Face2QR's clamp with `lam` (`art.markers`); "model" like any other
                      module.
      quiet_zone      "model": light, per pixel P ≥ p_min; "white"; "picture": untouched. Only the `quiet_width`
                      modules next to the symbol (default 1; None = the whole border) — the rest of the border
                      keeps the picture (ours: the suite scans as well with 1 module as with 4).
      camera_blur     ours: after Algorithm 2, also require P ≥ p_min on the image blurred by this σ (modules),
                      blending failing modules further. None (default) = 0.003 × the modules across the image
                      (a fixed optical blur of 0.3 % of the code's width: 0.14 module at v5, 0.2 at v10); 0 = off
                      (the paper's model, which reads the printed pixels).
      init_mix        the expected threshold starts from (1 − init_mix)·picture + init_mix·binary code.
    Colour stage: `colour` "paper" or "saturated" (see `match_luminance`).

    `progress(done, total)` is called after the binary stage, every threshold iteration and the colour stage.
    """
    if not isinstance(config, ArtupConfig):
        raise QRInputError(f"config must be an ArtupConfig, got {type(config).__name__}")
    cfg = config
    total = cfg.iterations + 2
    report = (lambda done: progress(done, total)) if progress is not None else (lambda done: None)
    src = to_float_rgb(picture, "picture")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    follow = None
    if qr is None:
        if not text:
            raise QRInputError("give the text to encode or an already reshuffled QR code")
        first = cfg.version if cfg.version is not None else encode(text, ecl=cfg.ecl, mask=0).version
        mpx = cfg.module_px if cfg.module_px is not None else auto_module_px(17 + 4 * first, cfg.border, cfg.size_px)
        follow = follow_picture(text, src, version=first, ecl=cfg.ecl, mask=cfg.mask,
                                extra_versions=cfg.extra_versions, module_px=mpx, border=cfg.border,
                                multiple=cfg.multiple, priority=cfg.priority, seed=cfg.seed)
        code = follow.qr
    else:
        if not isinstance(qr, QRCode):
            raise QRInputError(f"qr must be a QRCode, got {type(qr).__name__}")
        code = qr
        if code.geometry is None:
            mpx = cfg.module_px if cfg.module_px is not None else auto_module_px(code.size, cfg.border, cfg.size_px)
            code = code.with_geometry(make_geometry(code.size, mpx, cfg.border, cfg.multiple))
    geo = code.geometry
    timings["binary"] = time.perf_counter() - t0
    report(1)

    t0 = time.perf_counter()
    fitted = fit(src, geo)
    y0 = luminance(fitted)
    gs = grayscale_stage(y0, code, cfg, progress=lambda done, _total: report(1 + done))
    timings["grayscale"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out = fitted.copy()
    moved = np.abs(gs.gray - y0) > 1e-6
    out[moved] = match_luminance(fitted[moved], gs.gray[moved], cfg.colour)
    timings["colour"] = time.perf_counter() - t0
    timings["total"] = timings["binary"] + timings["grayscale"] + timings["colour"]
    report(total)
    return ArtupResult(out, code, gs.gray, fitted, gs.probability, timings, cfg, follow, gs)


ESCALATE_P_MIN = (0.9, 0.95, 0.98, 0.995)


def artup_until_scans(picture, text: str | None = None, *, qr: QRCode | None = None,
                      config: ArtupConfig = DEFAULT_CONFIG, camera_ssr: float = 0.95,
                      decoders=("zxing", "wechat"),
                      progress: Callable[[int, int], None] | None = None) -> tuple[ArtupResult, list]:
    """ARTUP, then let the verifier decide: while the clean output does not decode with every decoder, or the
    camera views fall below `camera_ssr`, run the grayscale and colour stages again with a higher p_min
    (`dataclasses.replace(config, p_min=…)`, each of ESCALATE_P_MIN above config.p_min in turn). The retries
    are given the first attempt's code, so the reshuffle is not rerun and its geometry is kept (the binary-stage
    fields of `config` go unused then). The model's threshold is an estimate of a scanner's; at small module
    sizes real binarisers disagree with it (seen: coffee, v3 at 8 px/module, zxing misread until p_min 0.95).
    Returns the first result that passes (or the most robust one) and one record per attempt; `progress` is
    passed to every attempt's `artup`."""
    from ..scan.camera import run_suite
    from ..scan.decoders import decode

    if not isinstance(config, ArtupConfig):
        raise QRInputError(f"config must be an ArtupConfig, got {type(config).__name__}")
    attempts, best = [], None
    schedule = [config.p_min] + [p for p in ESCALATE_P_MIN if p > float(np.max(config.p_min))]
    for step, level in enumerate(schedule):
        cfg = config if step == 0 else replace(config, p_min=level)
        result = artup(picture, text, qr=qr, config=cfg, progress=progress)
        clean = decode(result.image, decoders, expected=result.qr.payload)
        ssr = run_suite(result.image, result.qr.payload, decoders, groups=("camera",), qr=result.qr).ssr
        reads = all(r.match for r in clean.values())
        worst = min(ssr.values()) if ssr else 0.0
        attempts.append({"p_min": result.params["p_min"], "clean_decode": reads,
                         "camera_ssr": {k: round(v, 3) for k, v in ssr.items()}})
        score = (reads, worst)
        if best is None or score > best[0]:
            best = (score, result)
        if reads and worst >= camera_ssr:
            break
        qr, text = result.qr, None  # the retries keep the reshuffled code and its geometry
    return best[1], attempts
