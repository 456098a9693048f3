"""Refining a finished latent through the VAE decoder until the code reads: DiffQRCoder's SR-MPGD and Face2QR's
IDSE, one loop with two objectives.

* ``sr_mpgd`` (DiffQRCoder §3.5): plain gradient descent z ← z − γ·∇_z[SRL(D(z), y) + λ·LPIPS(D(z), D(z0))],
  γ ≈ 1000, λ ≈ 0.01 (LPIPS needs VGG16 weights; without them SSIM + L2 stands in).
* ``idse`` (Face2QR §3.2.2): Adam (lr 0.002, up to 300 steps) on z with L_c(D(z), I_b) + L_a(D(z), Î_s): the
  adaptive code loss (σ_f 1.5 / σ_b 3.0, w_f 1 / w_b 15 with the face mask) against the blueprint I_b, and the
  Wasserstein content loss on VGG-19 features against Î_s, the marker-harmonised start picture that z starts
  from (`idse_start`). Without VGG-19 weights SSIM + L2 stands in for L_a.

Both decode with `decoder.DifferentiableDecoder`, read the picture at the code's geometry, and after the first
step and every ``check_every`` steps ask the verifier: every RS block must keep at least ``margin`` spare
corrections and every decoder must read the payload. The first passing iterate stops the loop; otherwise the
best one is returned (passing first, then the largest worst-block margin, then the lowest loss). The code loss is
the paper's SRL with a margin band by default (`srl.srl_variant`): with threshold ½ it reaches zero on modules
left grey, and the verifier still fails (measured in tests/test_latent_refine.py's set-up).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..art.markers import harmonize_markers
from ..losses.adaptive import AdaptiveConfig, adaptive_code_loss
from ..losses.grid import fit_tensor
from ..losses.perceptual import VGGFeatures, fidelity_loss, pixel_loss, ssim_loss, w2_content_loss
from ..losses.srl import SRLConfig, srl, srl_variant
from ..qr.code import QRCode
from ..scan.analysis import analyze
from ..scan.decoders import decode
from .frozen import grad_mode
from .guidance import clamp_straight_through, face_module_mask, to_numpy_image

METHODS = ("sr_mpgd", "idse")
DEFAULTS = {"sr_mpgd": {"step": 1000.0, "fidelity_weight": 0.01, "iterations": 100},
            "idse": {"step": 0.002, "fidelity_weight": 1.0, "iterations": 300}}


@dataclass(frozen=True)
class LatentRefineConfig:
    method: str = "sr_mpgd"
    iterations: int | None = None        # None = the method's default
    step: float | None = None            # γ (SR-MPGD) or Adam's learning rate (IDSE); None = default
    fidelity_weight: float | None = None  # λ on the fidelity / content term; None = default
    check_every: int = 10
    margin: int = 1
    decoders: tuple[str, ...] = ("zxing", "wechat")
    srl: SRLConfig = field(default_factory=lambda: srl_variant("paper_margin"))
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    face_coverage: float = 1.0           # Face2QR's Δ_f: modules wholly inside the mask

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {METHODS}")
        if self.check_every < 1:
            raise ValueError(f"check_every must be ≥ 1, got {self.check_every}")

    def resolved(self, name: str):
        value = getattr(self, name)
        return DEFAULTS[self.method][name] if value is None else value


@dataclass
class Check:
    iteration: int
    loss: float
    min_margin: int
    block_errors: list[int]
    decoded: dict[str, bool]
    passed: bool

    def score(self) -> tuple:
        return (self.passed, self.min_margin, sum(self.decoded.values()), -self.loss)


@dataclass
class LatentRefineResult:
    latent: torch.Tensor           # 1×C×h×w, the best iterate
    image: np.ndarray              # H×W×3 float32 decoded from it (decoder's size, clamped)
    iterations: int
    best: Check
    history: list[Check]
    seconds: float

    @property
    def passed(self) -> bool:  # the loop stops at the first passing check
        return self.best.passed

    def summary(self) -> str:
        b = self.best
        reads = ", ".join(f"{n} {'reads' if ok else 'fails'}" for n, ok in b.decoded.items()) or "no decoder"
        how = "passed" if b.passed else "did not pass; best iterate kept"
        losses = [c.loss for c in self.history if c.iteration > 0]
        trend = f"loss {losses[0]:.4g} → {losses[-1]:.4g}; " if losses else ""
        return (f"{self.iterations} iterations in {self.seconds:.1f} s, {how} (iteration {b.iteration}); {trend}"
                f"worst-block margin {b.min_margin}, codeword errors per block {b.block_errors}; {reads}")


def idse_start(image: np.ndarray, qr: QRCode, lam: float = 0.8) -> np.ndarray:
    """Face2QR's first IDSE step on a decoded H×W×3 picture: marker harmonisation (eq. 6, λ = 0.8)."""
    return harmonize_markers(image, qr, lam)


class _Objective:
    def __init__(self, qr: QRCode, cfg: LatentRefineConfig, reference: torch.Tensor, blueprint, face, vgg):
        self.qr, self.cfg, self.vgg = qr, cfg, vgg
        self.size = tuple(qr.geometry.image_size)
        self.reference = fit_tensor(reference.detach().float(), self.size, "reference")
        self.blueprint = None if blueprint is None else fit_tensor(blueprint.detach().float(), self.size, "blueprint")
        self.face = None if face is None else face_module_mask(face, qr, cfg.face_coverage)
        self.weight = cfg.resolved("fidelity_weight")

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        ref = self.reference.to(image.device)
        if self.cfg.method == "sr_mpgd":
            code = srl(image, self.qr, self.cfg.srl)
            fid = fidelity_loss(image, ref, self.vgg)
        else:
            target = None if self.blueprint is None else self.blueprint.to(image.device)
            code = adaptive_code_loss(image, self.qr, target, self.face, self.cfg.adaptive)
            fid = (w2_content_loss(image, ref, self.vgg) if self.vgg is not None
                   else ssim_loss(image, ref) + pixel_loss(image, ref))
        return (code + self.weight * fid).sum()


def _check(iteration: int, arr: np.ndarray, loss: float, qr: QRCode, cfg: LatentRefineConfig) -> Check:
    a = analyze(arr, qr, heatmap=False)
    results = decode(arr, cfg.decoders, expected=qr.text)
    decoded = {n: r.match for n, r in results.items() if not (r.error or "").startswith("unavailable")}
    passed = a.decodable and a.min_margin >= cfg.margin and bool(decoded) and all(decoded.values())
    return Check(iteration, loss, a.min_margin, list(a.block_errors), decoded, passed)


def refine_latent(latent: torch.Tensor, decoder: Callable[[torch.Tensor], torch.Tensor], qr: QRCode,
                  config: LatentRefineConfig | None = None, *, reference: torch.Tensor | None = None,
                  blueprint: torch.Tensor | None = None, face: torch.Tensor | None = None,
                  vgg: VGGFeatures | None = None,
                  progress: Callable[[int, int, np.ndarray | None], None] | None = None) -> LatentRefineResult:
    """Refine one latent (1×C×h×w, the VAE's own scale) until the verifier passes or the iterations run out.

    decoder: latent → 1×3×H×W image in [0, 1] (differentiable). reference: 1×3×H×W picture to stay close to
    (default: the decoded start). blueprint (IDSE's I_b, default the ideal code) and face (H×W mask) are
    optional. progress(iteration, total, preview or None) is called every step; raising from it stops the loop
    (ComfyUI's interrupt).
    """
    cfg = config or LatentRefineConfig()
    if qr.geometry is None:
        raise ValueError("the code has no geometry: render it (AQR_Encode does) or pass one")
    if latent.dim() != 4 or latent.shape[0] != 1:
        raise ValueError(f"expected one latent shaped 1×C×h×w, got {tuple(latent.shape)}")
    iterations, step = int(cfg.resolved("iterations")), float(cfg.resolved("step"))
    t0 = time.perf_counter()
    size = tuple(qr.geometry.image_size)
    with grad_mode():
        z = latent.detach().clone().float().requires_grad_(True)
        with torch.no_grad():
            start = fit_tensor(decoder(z), size).clamp(0, 1)
        objective = _Objective(qr, cfg, start if reference is None else reference, blueprint, face, vgg)
        optimiser = torch.optim.Adam([z], lr=step) if cfg.method == "idse" else None
        best_z = z.detach().clone()
        best = _check(0, to_numpy_image(start), float("inf"), qr, cfg)
        history = [best]
        done = 0
        while not best.passed and done < iterations:
            done += 1
            image = clamp_straight_through(fit_tensor(decoder(z), size))
            loss = objective(image)
            (grad,) = torch.autograd.grad(loss, z)
            check = preview = None
            if done == 1 or done % cfg.check_every == 0 or done == iterations:
                preview = to_numpy_image(image)
                check = _check(done, preview, float(loss.detach()), qr, cfg)
                history.append(check)
                if check.score() > best.score():
                    best, best_z = check, z.detach().clone()
            if progress is not None:
                progress(done, iterations, preview)
            if check is not None and check.passed:
                break
            if optimiser is None:
                with torch.no_grad():
                    z -= step * grad
            else:
                z.grad = grad
                optimiser.step()
        with torch.no_grad():
            final = decoder(best_z).clamp(0, 1)
    return LatentRefineResult(best_z, to_numpy_image(final), done, best, history, time.perf_counter() - t0)
