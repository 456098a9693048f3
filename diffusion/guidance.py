"""Scanning-robust guidance of a diffusion sampler (DiffQRCoder's SRPG, WACV 2025 §3.4 and Appendix C).

The objective on a predicted clean latent x̂0 is L = λ_code·SRL(D(x̂0), ỹ) + λ_perc·fidelity(D(x̂0), x_ref), with D
the VAE decoder (`decoder.DifferentiableDecoder`) and the decoded image resampled to the code's own geometry.

The paper edits the noise prediction of a DDIM step, ε̂ = ε + √(1−ᾱ_t)·∇_{z_t} L. Samplers in k-diffusion form
(ComfyUI's) see x = z_t/√ᾱ_t, σ = √(1−ᾱ_t)/√ᾱ_t and the denoised prediction x̂0 = x − σ·ε, so the same edit is

    x̂0 ← x̂0 − σ²·∇_x L                                                         (``xt`` mode, exact)

and every sampler and scheduler that reads x̂0 (all of ComfyUI's) applies the paper's guidance. The gradient
through the diffusion model, ∇_x L = (∂x̂0/∂x)ᵀ ∇_{x̂0} L, costs a backward pass through the UNet and ControlNet.
``x0`` mode replaces that Jacobian by the ideal denoiser's for unit-variance data, ∂x̂0/∂x = I/(1+σ²):

    x̂0 ← x̂0 − σ²/(1+σ²)·∇_{x̂0} L                                               (``x0`` mode, decoder only)

so λ values mean the same in both modes (at large σ the step is ∇_{x̂0} L itself, as in GladCoder).

ECC gate (Appendix C): a step is skipped for an image whose prediction already reads with every RS block inside
its correction capacity (`scan.analysis.analyze(...).decodable`), since guidance there only costs picture quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..losses.adaptive import face_modules
from ..losses.grid import fit_tensor, geometry_of
from ..losses.perceptual import VGGFeatures, fidelity_loss
from ..losses.srl import SRLConfig, srl, srl_variant
from ..qr.code import QRCode
from ..scan.analysis import analyze

MODES = ("x0", "xt")


@dataclass(frozen=True)
class GuidanceConfig:
    code_scale: float = 500.0          # λ1 (DiffQRCoder's code default)
    perceptual_scale: float = 2.0      # λ2 (code default; the paper's main setting is 3)
    srl: SRLConfig = field(default_factory=lambda: srl_variant("paper_margin"))
    face_code_weight: float = 0.25     # weight of the code term on face modules (1 = no protection)
    face_coverage: float = 0.5         # share of a module inside the mask that makes it a face module
    gate: bool = True


def step_scale(sigma: torch.Tensor, mode: str) -> torch.Tensor:
    """Factor k with x̂0 ← x̂0 − k·gradient (σ² in ``xt`` mode, σ²/(1+σ²) in ``x0`` mode), shaped B×1×1×1."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    s2 = sigma.reshape(-1, 1, 1, 1).float() ** 2
    return s2 if mode == "xt" else s2 / (1 + s2)


def clamp_straight_through(image: torch.Tensor) -> torch.Tensor:
    """The image clamped to [0, 1] (what ComfyUI's VAEDecode shows) with an identity gradient, so an overshooting
    pixel that must move back still gets one (a plain clamp's gradient is zero there)."""
    return image + (image.clamp(0, 1) - image).detach()


def batch_item(t: torch.Tensor | None, index: int) -> torch.Tensor | None:
    """Item `index` of a batch as a batch of one; a batch of one serves every index (one reference, many images)."""
    return None if t is None else t[min(index, t.shape[0] - 1)][None]


def face_module_mask(mask: torch.Tensor, qr: QRCode, coverage: float, what: str = "face_mask") -> torch.Tensor:
    """B×n×n bool: the modules a picture-space face mask (H×W or B×H×W, same aspect as the code) covers at least
    `coverage` of, once resampled onto the code's geometry (`what` names the mask in the error)."""
    m = mask.detach().float()
    m = fit_tensor(m.reshape(-1, 1, *m.shape[-2:]), tuple(geometry_of(qr).image_size), what)[:, 0]
    return face_modules(m, qr, coverage=coverage)


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """The first image of a B×3×H×W tensor as a contiguous H×W×3 float32 array, clamped to [0, 1]."""
    return np.ascontiguousarray(image.detach()[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy())


class ScanObjective:
    """λ_code·SRL + λ_perc·fidelity per image, at the code's geometry.

    reference: optional B×3×H×W (or 1×…) picture in [0, 1] to stay close to, any size of the same aspect.
    face_mask: optional B×H×W (or H×W) mask in [0, 1]; its modules get ``face_code_weight`` in the code term.
    vgg: optional VGG16 features for DiffQRCoder's "LPIPS"; without one the fidelity term is SSIM + L2.
    """

    def __init__(self, qr: QRCode, config: GuidanceConfig | None = None, *, reference: torch.Tensor | None = None,
                 face_mask: torch.Tensor | None = None, vgg: VGGFeatures | None = None):
        self.qr = qr
        self.config = config or GuidanceConfig()
        self.geometry = geometry_of(qr)
        self.size = tuple(self.geometry.image_size)
        self.vgg = vgg
        self.reference = None if reference is None else fit_tensor(reference.detach().float(), self.size,
                                                                   "reference")
        self.module_weight = None
        if face_mask is not None:
            face = face_module_mask(face_mask, qr, self.config.face_coverage)
            self.module_weight = torch.where(face, torch.tensor(self.config.face_code_weight), torch.tensor(1.0))

    def __call__(self, image: torch.Tensor, index: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one image (1×3×H×W at the code's size, item `index` of the batch) and its parts."""
        cfg = self.config
        code = srl(image, self.qr, cfg.srl, module_weight=batch_item(self.module_weight, index))
        loss = cfg.code_scale * code
        parts = {"srl": float(code.detach().sum())}
        ref = batch_item(self.reference, index)
        if ref is not None and cfg.perceptual_scale > 0:
            fid = fidelity_loss(image, ref.to(image.device), self.vgg)
            loss = loss + cfg.perceptual_scale * fid
            parts["fidelity"] = float(fid.detach().sum())
        return loss.sum(), parts

    def reads(self, image: torch.Tensor) -> bool:
        """The ECC gate: does this 1×3×H×W image (code's size) read with every block inside its capacity?"""
        return analyze(to_numpy_image(image), self.qr, heatmap=False).decodable


@dataclass
class ItemGradient:
    gradient: torch.Tensor | None      # ∇_{x̂0} L (1×C×h×w), None when the gate skipped the item
    loss: float | None
    parts: dict[str, float]
    gated: bool


def x0_gradients(x0: torch.Tensor, to_vae_latent, decoder, objective: ScanObjective,
                 gate: bool | None = None) -> list[ItemGradient]:
    """∇_{x̂0} L for every item of a batch of predicted latents (the sampler's scale), one item at a time so only
    one decoder graph is alive. `to_vae_latent` maps the sampler's latent to the VAE's (ComfyUI's
    ``model.process_latent_out``); it must be differentiable."""
    gate = objective.config.gate if gate is None else gate
    results = []
    for i in range(x0.shape[0]):
        xi = x0[i:i + 1].detach().clone().to(torch.promote_types(x0.dtype, torch.float32)).requires_grad_(True)
        image = clamp_straight_through(fit_tensor(decoder(to_vae_latent(xi)), objective.size))
        if gate and objective.reads(image):
            results.append(ItemGradient(None, None, {}, True))
            continue
        loss, parts = objective(image, i)
        (grad,) = torch.autograd.grad(loss, xi)
        results.append(ItemGradient(grad, float(loss.detach()), parts, False))
    return results


def stack_gradients(items: list[ItemGradient], like: torch.Tensor) -> torch.Tensor | None:
    """B×C×h×w gradient (zeros for gated items) in `like`'s dtype/device, or None when every item was gated."""
    if all(it.gradient is None for it in items):
        return None
    zeros = torch.zeros_like(like[:1], dtype=torch.float32)
    return torch.cat([zeros if it.gradient is None else it.gradient.to(zeros) for it in items])
