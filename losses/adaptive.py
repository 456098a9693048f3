"""Face2QR's adaptive (spatially dynamic) code loss and marker harmonisation (Face2QR, NeurIPS 2024, §3.2.1 eq. 6,
§3.2.2 eqs. 9–11, defaults from §4.1). Face2QR has no public code; this follows the paper's text.

Paper: with Z = D(z) and I_b the blueprint, module j's term is
    s_j = w(j) · avg{[Z(θ_j) − I_b(θ_j)] ⊙ G(j)}                                         (9)
with G(j) = G_σf, w(j) = w_f for face modules (j ∈ Δ_f) and G_σb, w_b otherwise (10), and L_c = Σ_j s_j (11).
Defaults σ_f = 1.5, σ_b = 3.0, w_f = 1.0, w_b = 15.0. Δ_f = {j | avg(M_f(θ_j)) = 1}: modules wholly inside the
face mask (`face_modules`). The quiet zone is not part of the sum (j runs over the n² modules).

Where we depart, and why:
* Eq. 9 as printed is a *signed* difference: minimising Σ_j of it just darkens every module without bound, so the
  paper cannot mean it literally. ``error`` chooses the magnitude: ``"pixel_sq"`` (default) avg{(Z − I_b)² ⊙ G}
  keeps the Hadamard product inside the average, as printed, and squares the per-pixel difference (so a larger σ
  flattens the whole module towards the blueprint — the paper's "equalise the colour within the module");
  ``"pixel_abs"`` uses |Z − I_b|; ``"sampled_sq"`` (avg{(Z − I_b) ⊙ G})² is the squared difference of the
  simulated-decoder readings, as in ArtCoder [36] which the paper cites for its Gaussian decoder.
* Z and I_b are compared in luminance (I_b is a grey blueprint; an RGB target is converted).
* "variance σ": the values 1.5 and 3.0 are ArtCoder's σ in pixels (a standard deviation), and we use them as such;
  G is peak-normalised (max 1) like ArtCoder's kernel, and avg is the mean over the module's a×a pixels.
  ``kernel_norm="sum"`` makes G sum to 1 and s_j a Gaussian-weighted mean (no 1/a² factor). ``sigma_ref_px``
  scales both σ by module_px/sigma_ref_px (None = pixels as printed; the paper's 1024 px version-5 images have
  modules of roughly 22–27 px).
* ``reduction="sum"`` is eq. 11; ``"mean"`` divides by n² so the value does not grow with the version.
* Without a blueprint, I_b defaults to the ideal code (0 on dark modules, 1 on light ones).
* ``budget`` (ours, off by default) spends the error correction (`budget.spent_modules`): per RS block up to
  ⌊b·t⌋ codewords whose modules read wrong at ½ are left out of the sum, those with the largest s_j first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..qr.code import Geometry, QRCode
from .budget import spent_modules
from .grid import gaussian_weights, geometry_of, module_target, symbol_blocks
from .options import configured
from .srl import SRLConfig, luma_plane, wrong_in_blocks

ERRORS = ("pixel_sq", "pixel_abs", "sampled_sq")
@dataclass(frozen=True)
class AdaptiveConfig:
    sigma_face: float = 1.5
    sigma_background: float = 3.0
    weight_face: float = 1.0
    weight_background: float = 15.0
    sigma_ref_px: float | None = None
    kernel_norm: str = "peak"
    error: str = "pixel_sq"
    reduction: str = "sum"
    budget: float = 0.0     # ours: share of each RS block's t left wrong (`budget.spent_modules`)

    def __post_init__(self):
        if not 0.0 <= self.budget <= 1.0:
            raise ValueError(f"budget must be in [0, 1], got {self.budget!r}")
        if self.error not in ERRORS:
            raise ValueError(f"error {self.error!r} is not one of {ERRORS}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction {self.reduction!r} is not 'sum' or 'mean'")
        if self.kernel_norm not in ("peak", "sum"):
            raise ValueError(f"kernel_norm {self.kernel_norm!r} is not 'peak' or 'sum'")

    def kernels(self, module_px: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        scale = 1.0 if self.sigma_ref_px is None else module_px / self.sigma_ref_px
        return (gaussian_weights(module_px, self.sigma_face * scale, self.kernel_norm, 0.0, device, dtype),
                gaussian_weights(module_px, self.sigma_background * scale, self.kernel_norm, 0.0, device, dtype))


def _config(config, opts) -> AdaptiveConfig:
    return configured(AdaptiveConfig, config, opts, "adaptive-loss")


def _as_plane(x, batch: int, device, dtype, name: str) -> torch.Tensor:
    """H×W, C×H×W or B×C×H×W (C = 1 or 3) tensor, or H×W / H×W×C numpy array → B×H×W luminance."""
    if not torch.is_tensor(x):
        a = np.asarray(x)
        if a.ndim == 3 and a.shape[-1] in (1, 3):      # numpy images are channels-last (render's output)
            a = np.moveaxis(a, -1, 0)
        x = a
    t = torch.as_tensor(x, device=device).to(dtype)
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None] if t.shape[0] in (1, 3) else t[:, None]
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be H×W, C×H×W or B×C×H×W with C = 1 or 3, got {tuple(t.shape)}")
    plane = luma_plane(t)
    if plane.shape[0] not in (1, batch):
        raise ValueError(f"{name} has batch {plane.shape[0]} but the image has {batch}")
    return plane.expand(batch, *plane.shape[1:])


def face_modules(mask, qr: QRCode, *, geometry: Geometry | None = None, coverage: float = 1.0) -> torch.Tensor:
    """Δ_f from a pixel mask (H×W, B×H×W or B×1×H×W, values in [0, 1], at the code's geometry): modules whose mean
    mask value is ≥ `coverage` (1 = wholly inside the face, the paper's rule). Returns B×n×n bool."""
    t = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    t = t.to(torch.float64) if not t.is_floating_point() else t
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise ValueError(f"mask must have one channel, got {tuple(t.shape)}")
        t = t[:, 0]
    elif t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f"mask must be H×W, B×H×W or B×1×H×W, got {tuple(t.shape)}")
    cover = symbol_blocks(t, qr, geometry, fill=0.0).mean((-2, -1))
    return cover >= coverage - 1e-6


def adaptive_code_loss(image: torch.Tensor, qr: QRCode, target=None, face=None,
                       config: AdaptiveConfig | None = None, *, geometry: Geometry | None = None,
                       return_map: bool = False, **opts):
    """Face2QR adaptive code loss per batch item, shape (B,); optionally also the B×n×n weighted module terms s_j.

    image: B×3×H×W in [0, 1] at the code's geometry (other sizes raise — resample first). target: the blueprint
    I_b, same size as the image (tensor H×W, C×H×W or B×C×H×W; numpy H×W or H×W×C), or None for the ideal code.
    face: n×n or B×n×n bool module mask Δ_f (see `face_modules`), or None (no face: every module uses σ_b, w_b).
    """
    cfg = _config(config, opts)
    geo = geometry_of(qr, geometry)
    b, dev, dt = image.shape[0], image.device, image.dtype
    z = symbol_blocks(luma_plane(image), qr, geo)                       # B×n×n×p×p
    if target is None:
        ib = module_target(qr, device=dev, dtype=dt)[None, :, :, None, None]
    else:
        ib = symbol_blocks(_as_plane(target, b, dev, dt, "target"), qr, geo)
    n = qr.size
    if face is None:
        in_face = torch.zeros(1, n, n, dtype=torch.bool, device=dev)
    else:
        in_face = torch.as_tensor(np.asarray(face) if not torch.is_tensor(face) else face, device=dev).to(torch.bool)
        if in_face.shape[-2:] != (n, n) or in_face.dim() not in (2, 3):
            raise ValueError(f"face must be a {n}×{n} (or B×{n}×{n}) module mask, got {tuple(in_face.shape)}")
        in_face = in_face.reshape(-1, n, n)
    k_face, k_bg = cfg.kernels(geo.module_px, dev, dt)
    sel = in_face[..., None, None]
    kernel = torch.where(sel, k_face, k_bg)                              # 1|B×n×n×p×p
    weight = torch.where(in_face, torch.tensor(cfg.weight_face, device=dev, dtype=dt),
                         torch.tensor(cfg.weight_background, device=dev, dtype=dt))
    diff = z - ib
    area = 1.0 if cfg.kernel_norm == "sum" else float(geo.module_px ** 2)
    if cfg.error == "sampled_sq":
        term = ((diff * kernel).sum((-2, -1)) / area) ** 2
    else:
        err = diff ** 2 if cfg.error == "pixel_sq" else diff.abs()
        term = (err * kernel).sum((-2, -1)) / area
    per_module = weight * term
    if cfg.budget > 0:   # modules read at ½ against the code's bits: what a decoder would get wrong
        wrong = wrong_in_blocks(z, qr, geo, SRLConfig(band=(0.5, 0.5)))
        per_module = per_module * ~spent_modules(wrong, term, qr, cfg.budget)
    loss = per_module.sum((-2, -1))
    if cfg.reduction == "mean":
        loss = loss / float(n * n)
    return (loss, per_module) if return_map else loss
