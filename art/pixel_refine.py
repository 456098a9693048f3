"""Pixel-space personalisation (the PyCon talk's "optimization for image and QR code fusion"), aimed at what a
camera does rather than at zero loss at module centres: start from the picture with the code's markers
harmonised, then Adam on the pixels' luminance (chroma kept from the picture) against SRL averaged over random
camera degradations + fidelity to the picture; luminance stays in [0, 1] and chroma is the picture's (the colour
guard by construction). The verifier, not the loss, decides when to
stop: every `check_every` steps the iterate is checked as it will be saved (8-bit pixels). The camera views of
the suite screen it; one whose scan success rate reaches the target on every decoder gets the full verification
(`verify_image` with the whole suite, `min_ssr` = the target), and the first that passes it wins. Otherwise the
most robust iterate seen is kept, and verified the same way. `PixelRefineResult.report` is that verification, of
exactly the pixels of `PixelRefineResult.image`: the stop rule and the final verdict are one check."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..losses.colour import luminance_only
from ..losses.eot import CameraAugment
from ..losses.grid import luminance
from ..losses.perceptual import VGGFeatures, fidelity_loss
from ..losses.srl import srl
from ..qr.code import QRCode
from ..qr.pixels import fit, pixel_modules, to_float_rgb, to_uint8
from ..scan.camera import run_suite
from ..scan.decoders import DEFAULT_DECODERS
from ..scan.report import VerifyReport, verify_image
from .markers import harmonize_markers


@dataclass
class PixelRefineConfig:
    iterations: int = 400
    lr: float = 0.01
    code_weight: float = 1.0
    fidelity_weight: float = 0.5
    eot_samples: int = 2
    band: tuple[float, float] = (0.35, 0.65)  # dark must read below 0.35, light above 0.65: a contrast margin
    marker_lambda: float = 0.8
    check_every: int = 25
    target_ssr: float = 0.95
    decoders: tuple[str, ...] = DEFAULT_DECODERS
    seed: int = 0


@dataclass
class PixelRefineResult:
    image: np.ndarray                 # H×W×3 float32 in [0, 1], at the code's geometry, on the 8-bit grid (k/255)
    start: np.ndarray                 # the picture with harmonised markers, where optimisation began
    iterations: int
    stopped_early: bool
    best_ssr: dict[str, float]
    seconds: float
    history: list[dict] = field(default_factory=list)
    report: VerifyReport | None = None  # the full verification of `image` (passed ⇔ the target was reached)


def _camera_ssr(image: np.ndarray, qr: QRCode, decoders) -> dict[str, float]:
    return run_suite(image, qr.payload, decoders, groups=("camera",), qr=qr).ssr


def _verify(image: np.ndarray, qr: QRCode, cfg: PixelRefineConfig) -> VerifyReport:
    """The verdict: both decoders read the payload and the whole suite's SSR reaches the target."""
    return verify_image(image, qr.text, qr, suite=True, decoders=cfg.decoders, min_ssr=cfg.target_ssr)


def _as_saved(snapshot: torch.Tensor) -> np.ndarray:
    """An iterate (1×3×H×W) as it will be saved: rounded to 8 bits (and back to float, exactly k/255), so every
    check looks at the pixels a file will hold."""
    return to_float_rgb(to_uint8(snapshot[0].permute(1, 2, 0).numpy()))


def pixel_refine(picture: np.ndarray, qr: QRCode, config: PixelRefineConfig | None = None, *,
                 vgg: VGGFeatures | None = None,
                 progress: Callable[[int, int, np.ndarray | None], None] | None = None) -> PixelRefineResult:
    """Optimise `picture` (any size; cover-fitted to `qr.geometry`) into a picture that scans as `qr`.

    ComfyUI runs every prompt under `torch.inference_mode()`, where nothing records gradients; the optimisation
    leaves it explicitly (its tensors are all created inside, so none is an inference tensor)."""
    with torch.inference_mode(False), torch.enable_grad():
        return _optimise(picture, qr, config or PixelRefineConfig(), vgg, progress)


def _optimise(picture, qr, cfg, vgg, progress) -> PixelRefineResult:
    if qr.geometry is None:
        raise ValueError("the code has no geometry: render it first (AQR_Encode / AQR_Reshuffle attach one)")
    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    augment = CameraAugment()
    fitted = fit(picture, qr.geometry)
    fitted[~_symbol_mask(qr, fitted.shape[:2])] = 1.0  # a white quiet zone, as scanners need
    start = torch.from_numpy(harmonize_markers(fitted, qr, lam=cfg.marker_lambda)).permute(2, 0, 1)[None]
    start_luma = luminance(start)[:, None]
    luma = start_luma.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([luma], lr=cfg.lr)
    module_px = qr.geometry.module_px

    def current() -> torch.Tensor:
        return luminance_only(luma, start)

    def fidelity() -> torch.Tensor:
        # the optimiser moves luminance only, so without a VGG fidelity is measured on luminance (3× cheaper)
        return fidelity_loss(current(), start, vgg) if vgg is not None else fidelity_loss(luma, start_luma)

    # the best iterate so far: (camera worst-decoder SSR, 8-bit pixels, camera SSR, full verification or None)
    best = (-1.0, _as_saved(start.detach()), {}, None)
    history, stopped, it = [], False, 0
    for it in range(1, cfg.iterations + 1):
        optimiser.zero_grad()
        code = sum(srl(augment(luma, module_px, generator), qr, band=cfg.band) for _ in range(cfg.eot_samples))
        loss = (cfg.code_weight * code / cfg.eot_samples + cfg.fidelity_weight * fidelity()).sum()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            luma.clamp_(0, 1)
        if it % cfg.check_every == 0 or it == cfg.iterations:
            array = _as_saved(current().detach())
            ssr = _camera_ssr(array, qr, cfg.decoders)
            worst = min(ssr.values()) if ssr else 0.0
            entry = {"iteration": it, "loss": float(loss.detach()), "ssr": ssr}
            report = _verify(array, qr, cfg) if worst >= cfg.target_ssr else None  # the screen passed: the verdict
            if report is not None:
                entry["verified"] = report.passed
            history.append(entry)
            if (report is not None and report.passed) or worst > best[0]:
                best = (worst, array, ssr, report)
            if progress is not None:
                progress(it, cfg.iterations, array)
            if report is not None and report.passed:
                stopped = True
                break
        elif progress is not None:
            progress(it, cfg.iterations, None)
    _, image, ssr, report = best
    if report is None:  # the kept iterate was never fully verified (its camera SSR stayed below the target)
        report = _verify(image, qr, cfg)
    return PixelRefineResult(image, start[0].permute(1, 2, 0).detach().numpy().astype(np.float32), it, stopped,
                             ssr, time.perf_counter() - t0, history, report)


def _symbol_mask(qr: QRCode, shape) -> np.ndarray:
    """H×W bool: the pixels of the symbol itself (the quiet zone around it is made white)."""
    row, col = pixel_modules(shape, qr.geometry, qr.size)
    return (row >= 0) & (col >= 0)
