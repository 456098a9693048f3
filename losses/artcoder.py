"""ArtCoder's code loss with its sampling-simulation (SS) layer and competition mechanism (Su et al., CVPR 2021,
§3.2 "Sampling-simulation layer", §3.3 "Code loss" and "Competition mechanism"); GladCoder's thresholds (IJCAI
2024) as a preset.

* SS layer: a convolution with kernel = stride = module size whose weights are a Gaussian centred on the module
  centre, σ = 1.5 px, peak-normalised to 1, weights < 0.1 zeroed. So SS(x)_k = Σ_p K(p)·v(p) over module k's
  pixels. v is the luminance by default (``channels="luminance"``); ``channels="rgb"`` sums R + G + B under the
  kernel, as ArtCoder's layer does.
* Ideal target: dark modules filled with 40/255, light with 220/255; its SS value is fill·ΣK (×3 for RGB).
* Code loss per module: (SS(x)_k − SS(target)_k)², masked by the competition mechanism and averaged over all n²
  modules (``reduction="all"``: ArtCoder's MSELoss over the masked maps) or over the active ones
  (``reduction="active"``).
* Competition mechanism, recomputed on every call and detached: a module stops counting once the mean luminance of
  its centre window is below 70/255 (dark target) or above 180/255 (light target). ArtCoder's window is 7×7 px
  at 16 px modules; here it is the centred square of side round(7/16·module_px) (`grid.centre_mask` with
  ``window_fraction=7/16``), so it scales with the module size.

Departures: luminance rather than the RGB sum by default (a scanner reads luminance; ``channels="rgb"`` is the
paper's); the window scales with the module. σ stays 1.5 px as in the paper unless ``sigma_ref_px`` is set (σ is
then 1.5·module_px/sigma_ref_px; ArtCoder's module is 16 px). The released code's defaults differ from its paper
(competition 80/180, fill 50/200); we follow the paper. ``ArtCoderConfig.gladcoder()`` uses 78/178 and 48/208.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..qr.code import Geometry, QRCode
from .grid import centre_mask, gaussian_weights, geometry_of, module_mean, module_target, symbol_blocks
from .options import configured
from .srl import luma_plane

CHANNELS = ("luminance", "rgb")
REDUCTIONS = ("all", "active")


@dataclass(frozen=True)
class ArtCoderConfig:
    sigma: float = 1.5
    sigma_ref_px: float | None = None   # None: σ in pixels as-is; else σ·module_px/sigma_ref_px
    floor: float = 0.1
    kernel_norm: str = "peak"           # "peak" (ArtCoder) | "sum" (SS becomes a weighted mean)
    fill_dark: float = 40 / 255
    fill_light: float = 220 / 255
    dark_below: float = 70 / 255        # a dark module is done once its window mean is below this
    light_above: float = 180 / 255      # a light module is done once its window mean is above this
    window_fraction: float = 7 / 16
    channels: str = "luminance"
    competition: bool = True
    reduction: str = "all"

    def __post_init__(self):
        if self.channels not in CHANNELS:
            raise ValueError(f"channels {self.channels!r} is not one of {CHANNELS}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction {self.reduction!r} is not one of {REDUCTIONS}")
        if self.kernel_norm not in ("peak", "sum"):
            raise ValueError(f"kernel_norm {self.kernel_norm!r} is not 'peak' or 'sum'")

    @classmethod
    def gladcoder(cls, **overrides) -> ArtCoderConfig:
        """GladCoder's thresholds: done below 78/255 or above 178/255, fill 48/255 and 208/255."""
        return replace(cls(dark_below=78 / 255, light_above=178 / 255, fill_dark=48 / 255, fill_light=208 / 255),
                       **overrides)

    def kernel(self, module_px: int, device=None, dtype=torch.float32) -> torch.Tensor:
        sigma = self.sigma if self.sigma_ref_px is None else self.sigma * module_px / self.sigma_ref_px
        floor = self.floor if self.kernel_norm == "peak" else 0.0
        return gaussian_weights(module_px, sigma, self.kernel_norm, floor, device, dtype)


def _config(config, opts) -> ArtCoderConfig:
    return configured(ArtCoderConfig, config, opts, "ArtCoder")


def ss_layer(image: torch.Tensor, qr: QRCode, config: ArtCoderConfig | None = None, *,
             geometry: Geometry | None = None, **opts) -> torch.Tensor:
    """B×n×n sampling simulation: Σ K·v per module (v = luminance, or R+G+B with ``channels="rgb"``)."""
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    kernel = cfg.kernel(geo.module_px, image.device, image.dtype)
    if cfg.channels == "rgb":
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"channels='rgb' needs a B×3×H×W image, got {tuple(image.shape)}")
        plane = image.sum(1)
    else:
        plane = luma_plane(image)
    return (symbol_blocks(plane, qr, geo) * kernel).sum((-2, -1))


def active_modules(image: torch.Tensor, qr: QRCode, config: ArtCoderConfig | None = None, *,
                   geometry: Geometry | None = None, **opts) -> torch.Tensor:
    """B×n×n bool (detached): modules the competition mechanism still counts."""
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    blocks = symbol_blocks(luma_plane(image.detach()), qr, geo)
    window = centre_mask(geo.module_px, cfg.window_fraction, device=image.device)
    read = blocks[..., window].mean(-1)
    light = module_target(qr, device=image.device) > 0.5
    done = torch.where(light, read > cfg.light_above, read < cfg.dark_below)
    return ~done


def artcoder_code_loss(image: torch.Tensor, qr: QRCode, config: ArtCoderConfig | None = None, *,
                       geometry: Geometry | None = None, return_map: bool = False, **opts):
    """ArtCoder code loss per batch item, shape (B,); optionally also the B×n×n masked per-module squared error.

    image: B×3×H×W in [0, 1] at the code's geometry (other sizes raise — resample first). Options are
    `ArtCoderConfig` fields, as a config or keywords.
    """
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    sampled = ss_layer(image, qr, cfg, geometry=geo)
    kernel_mass = cfg.kernel(geo.module_px, image.device, image.dtype).sum()
    light = module_target(qr, device=image.device, dtype=image.dtype)
    fill = cfg.fill_dark + (cfg.fill_light - cfg.fill_dark) * light
    target = fill * kernel_mass * (3 if cfg.channels == "rgb" else 1)
    per_module = (sampled - target) ** 2
    active = None  # without competition every module is active: the mean over all of them
    if cfg.competition:
        active = active_modules(image, qr, cfg, geometry=geo)
        per_module = per_module * active.to(image.dtype)
    loss = module_mean(per_module, active if cfg.reduction == "active" else None)
    return (loss, per_module) if return_map else loss
