"""DiffQRCoder's Scanning Robust Loss (SRL), as the paper defines it (Liao et al., WACV 2025, §3.3 and the SRPG
slide "Binarized average value of submodule … Take mean").

For every module M_k of the code (quiet zone excluded; the grid comes from the code's geometry, never from a resize):

1. luminance g = 0.299 R + 0.587 G + 0.114 B (Rec.601; the public code uses 0.2999/0.587/0.1114);
2. binary relaxation per pixel, with a band (lo, hi): a dark target pays 2·max(0, g − lo), a light target
   2·max(0, hi − g). The paper's single threshold ½ is lo = hi = 0.5 (the default). The public code's
   ``band=(0.45, 0.65)`` is a *margin*: dark must read ≤ 0.45 and light ≥ 0.65. A band with lo > hi is a dead band
   instead (dark pays only above lo, light only below hi);
3. sampling-error reweighting: Ẽ_k = Σ_p G(p)·E(p) over the module's p×p pixels, with a Gaussian G centred on the
   module centre. ``sigma_mode="scaled"`` (default): σ = ``sigma_frac``·module_px with sigma_frac = 1/6, weights
   summing to 1. So Ẽ_k is a weighted mean of E, its value does not depend on the module size, and the central
   third (where the early-stop mask reads, ±s/6) is the ±1σ core of the kernel: a 9 px module gets σ = 1.5, the
   public code's value. ``sigma_mode="code"``: the released code's σ = 1.5 px, peak-normalised to 1, weights < 0.1
   zeroed (only ~30 centre pixels count whatever the module size; Ẽ is then a sum, not a mean);
4. "already correct" mask φ_k (detached, stop-gradient): the mean of g over the module's central sub-module (the
   centred square of side ≈ module_px/3, `grid.centre_mask`) is read against the band: a dark target is wrong when
   that mean is ≥ lo, a light one when it is < hi (with lo = hi = 0.5 this is a reader binarising at ½, ties
   reading light). The target bit is the module's bit in ``qr.matrix``. Correct modules contribute nothing, so
   their pixels get exactly zero gradient;
5. reduction: ``"wrong"`` (paper): Σ_k φ_k·w_k·Ẽ_k / max(1, Σ_k φ_k), the mean over the modules that read wrong;
   ``"all"`` (public code): Σ_k φ_k·w_k·Ẽ_k / n².

Ours, off by default: ``budget`` b > 0 spends the error correction (`budget.spent_modules`): per RS block up to
⌊b·t⌋ wrong codewords, those with the largest Ẽ, leave φ (no loss, no gradient).

Where we depart from the public code (jwliao1209/DiffQRCoder): paper threshold instead of the 0.45/0.65 band,
module-size-scaled σ instead of a fixed 1.5 px, mean over wrong modules instead of over all, and the optional
weight w_k = ``function_weight`` on function-pattern modules (``qr.function_mask``; 1 = paper and code; an
independent reproduction found ×4 helps detection). ``SRLConfig.public_code()`` gives the released code's choices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..qr.code import Geometry, QRCode
from .budget import spent_modules
from .grid import (
    centre_mask,
    gaussian_weights,
    geometry_of,
    luminance,
    module_mean,
    module_target,
    symbol_blocks,
)
from .options import configured

SIGMA_MODES = ("scaled", "code")
REDUCTIONS = ("wrong", "all")


def luma_plane(image: torch.Tensor) -> torch.Tensor:
    """B×3×H×W (RGB) or B×1×H×W (already grey) → B×H×W luminance."""
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] not in (1, 3):
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"expected a B×3×H×W (or B×1×H×W) image tensor, got {shape}")
    return image[:, 0] if image.shape[1] == 1 else luminance(image)


def module_weights(qr: QRCode, function_weight: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """n×n: 1 on data/EC modules, `function_weight` on function-pattern modules."""
    fm = torch.as_tensor(qr.function_mask, device=device).to(torch.bool)
    w = torch.ones(fm.shape, device=device, dtype=dtype)
    return torch.where(fm, torch.full_like(w, float(function_weight)), w)


@dataclass(frozen=True)
class SRLConfig:
    band: tuple[float, float] = (0.5, 0.5)   # (lo, hi): dark must read below lo, light at or above hi
    sigma_mode: str = "scaled"                # "scaled" (σ = sigma_frac·module_px, sum 1) | "code" (1.5 px, peak 1)
    sigma_frac: float = 1 / 6
    code_sigma: float = 1.5
    code_floor: float = 0.1
    centre_fraction: float = 1 / 3            # side of the sub-module the early-stop mask reads
    reduction: str = "wrong"                  # "wrong" (paper) | "all" (public code)
    function_weight: float = 1.0              # ×w on function-pattern modules (Prooftag used 4)
    budget: float = 0.0                       # share of each RS block's t left wrong (`budget.spent_modules`)

    def __post_init__(self):
        if self.sigma_mode not in SIGMA_MODES:
            raise ValueError(f"sigma_mode {self.sigma_mode!r} is not one of {SIGMA_MODES}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction {self.reduction!r} is not one of {REDUCTIONS}")
        if len(self.band) != 2:
            raise ValueError(f"band must be (lo, hi), got {self.band!r}")
        if not 0.0 <= self.budget <= 1.0:
            raise ValueError(f"budget must be in [0, 1], got {self.budget!r}")

    @classmethod
    def public_code(cls, **overrides) -> SRLConfig:
        """The released code's choices: margin band 0.45/0.65, σ = 1.5 px peak-normalised floor 0.1, mean over
        all modules."""
        return replace(cls(band=(0.45, 0.65), sigma_mode="code", reduction="all"), **overrides)

    def kernel(self, module_px: int, device=None, dtype=torch.float32) -> torch.Tensor:
        if self.sigma_mode == "code":
            return gaussian_weights(module_px, self.code_sigma, "peak", self.code_floor, device, dtype)
        return gaussian_weights(module_px, self.sigma_frac * module_px, "sum", 0.0, device, dtype)


VARIANTS = ("paper_margin", "paper", "public_code")
MARGIN_BAND = (0.45, 0.65)


def srl_variant(name: str, **overrides) -> SRLConfig:
    """The named SRL settings: ``paper`` (threshold ½), ``paper_margin`` (the paper's loss with the public code's
    margin band 0.45/0.65: a module only counts as right once it is clearly dark or light; with threshold ½ the
    loss reaches zero on modules left grey, which real decoders misread) and ``public_code``."""
    if name not in VARIANTS:
        raise ValueError(f"SRL variant {name!r} is not one of {VARIANTS}")
    if name == "public_code":
        return SRLConfig.public_code(**overrides)
    return replace(SRLConfig(band=MARGIN_BAND if name == "paper_margin" else (0.5, 0.5)), **overrides)


def _config(config: SRLConfig | None, opts: dict) -> SRLConfig:
    return configured(SRLConfig, config, opts, "SRL")


def wrong_modules(image: torch.Tensor, qr: QRCode, config: SRLConfig | None = None, *,
                  geometry: Geometry | None = None, **opts) -> torch.Tensor:
    """B×n×n bool (detached): modules whose central sub-module reads against their bit (SRL's φ)."""
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    blocks = symbol_blocks(luma_plane(image.detach()), qr, geo)
    return wrong_in_blocks(blocks, qr, geo, cfg)


def wrong_in_blocks(blocks: torch.Tensor, qr: QRCode, geo: Geometry, cfg: SRLConfig) -> torch.Tensor:
    """`wrong_modules` on luminance already cut into B×n×n×p×p module blocks (`grid.symbol_blocks`)."""
    lo, hi = cfg.band
    centre = centre_mask(geo.module_px, cfg.centre_fraction, device=blocks.device)
    read = blocks.detach()[..., centre].mean(-1)                        # B×n×n
    light = module_target(qr, device=blocks.device, dtype=blocks.dtype) > 0.5
    return torch.where(light, read < hi, read >= lo)


def srl(image: torch.Tensor, qr: QRCode, config: SRLConfig | None = None, *, geometry: Geometry | None = None,
        module_weight: torch.Tensor | None = None, return_map: bool = False, **opts):
    """Scanning Robust Loss per batch item, shape (B,).

    image: B×3×H×W in [0, 1] at the code's geometry (`qr.geometry` or `geometry`); other sizes raise — resample
    first. Options are `SRLConfig` fields, given as a config or as keywords (keywords override the config).
    module_weight: optional n×n (or B×n×n) extra weight per module, e.g. less on a face (multiplies w_k).
    With ``return_map=True`` also returns the B×n×n per-module term φ_k·w_k·Ẽ_k (before the reduction).
    """
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    lo, hi = cfg.band
    blocks = symbol_blocks(luma_plane(image), qr, geo)                  # B×n×n×p×p
    light = module_target(qr, device=image.device, dtype=image.dtype)[:, :, None, None]
    err = 2 * (torch.relu(blocks - lo) * (1 - light) + torch.relu(hi - blocks) * light)
    kernel = cfg.kernel(geo.module_px, image.device, image.dtype)
    sampled = (err * kernel).sum((-2, -1))                               # B×n×n
    wrong = wrong_in_blocks(blocks, qr, geo, cfg)
    if cfg.budget > 0:
        wrong = wrong & ~spent_modules(wrong, sampled, qr, cfg.budget)
    weights = module_weights(qr, cfg.function_weight, image.device, image.dtype)
    if module_weight is not None:
        weights = weights * module_weight.to(image.device, image.dtype)
    per_module = sampled * weights * wrong.to(image.dtype)
    loss = module_mean(per_module, wrong if cfg.reduction == "wrong" else None)
    return (loss, per_module) if return_map else loss
