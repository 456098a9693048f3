"""The training loop: random pictures and real QR codes in, both networks updated through the noise layer.

Ours learns to read every module after the noise layer, at a PSNR drawn per item, while keeping SSIM; the paper's
configuration is trained as the paper did (its loss, RMSprop, no noise), on the same data and budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..losses.perceptual import ssim_loss
from ..qr.code import encode
from .codec import Codec
from .noise import NoiseLayer, quantise_8bit

ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?=&"))


def random_payload(rng: np.random.Generator) -> str:
    """A URL or a line of text, up to about 60 bytes: what people hide."""
    n = int(rng.integers(4, 46))
    body = "".join(rng.choice(ALPHABET, n))
    return f"https://{body[:8]}.example/{body[8:]}" if rng.random() < 0.6 else body + " " * int(rng.integers(0, 3))


def code_pool(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Module matrices (1 = dark) of real codes, quiet zone included, over the versions and levels people use."""
    pool = []
    for _ in range(count):
        qr = encode(random_payload(rng), ecl=str(rng.choice(list("LMQH"))))
        pool.append(np.pad(qr.matrix, 4))
    return pool


def code_planes(pool: list[np.ndarray], rng: np.random.Generator, batch: int, size: int,
                module_px: tuple[int, int]) -> torch.Tensor:
    """B×1×S×S planes (+1 dark, −1 light) of pool codes at a random module size and offset; light off the code."""
    out = np.full((batch, 1, size, size), -1.0, dtype=np.float32)
    for i in range(batch):
        m = pool[int(rng.integers(len(pool)))]
        p = int(rng.integers(module_px[0], module_px[1] + 1))
        side = m.shape[0] * p
        oy, ox = (int(rng.integers(min(0, size - side), max(1, size - side + 1))) for _ in range(2))
        idx_y, idx_x = (np.arange(size) - oy) // p, (np.arange(size) - ox) // p
        ok_y, ok_x = (idx_y >= 0) & (idx_y < m.shape[0]), (idx_x >= 0) & (idx_x < m.shape[0])
        sub = m[np.clip(idx_y, 0, m.shape[0] - 1)][:, np.clip(idx_x, 0, m.shape[0] - 1)] * 2.0 - 1
        sub[~ok_y] = -1
        sub[:, ~ok_x] = -1
        out[i, 0] = sub
    return torch.from_numpy(out)


@dataclass
class TrainConfig:
    kind: str = "carrier"
    steps: int = 1500
    batch: int = 8
    size: int = 128
    lr: float = 2e-3
    psnr: tuple[float, float] = (30.0, 40.0)
    module_px: tuple[int, int] = (6, 16)
    ssim_weight: float = 0.5
    seed: int = 0
    minutes: float | None = None   # stop early at this wall time (the paper's model, on our model's budget)
    noise: NoiseLayer = field(default_factory=NoiseLayer)


def clipped_at_psnr(pictures: torch.Tensor, residual: torch.Tensor, psnr: torch.Tensor) -> torch.Tensor:
    """Picture plus residual, clipped to 0…1, with the residual rescaled so the PSNR holds after the clipping —
    otherwise the cheapest "invisible" residual is one that black and white clip away."""
    kept = (pictures + residual).clamp(0, 1) - pictures
    rms = kept.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-12).sqrt()
    gain = (10 ** (-psnr / 20)).reshape(-1, 1, 1, 1) / rms
    return (pictures + residual * gain.detach().clamp(max=4.0)).clamp(0, 1)


def _carrier_step(codec: Codec, cfg: TrainConfig, pictures, codes, gen, rng, progress: float
                  ) -> tuple[torch.Tensor, dict]:
    """Reading first, then keeping the picture: the SSIM weight ramps in over the first 30 % of training."""
    psnr = torch.from_numpy(rng.uniform(*cfg.psnr, len(pictures)).astype(np.float32))
    hidden = clipped_at_psnr(pictures, codec.residual(pictures, codes, psnr), psnr)
    seen, shift = cfg.noise(quantise_8bit(hidden), gen)
    target = torch.roll(codes, shifts=shift, dims=(-2, -1))
    logits = codec.logits(seen, shift)
    per_item = F.binary_cross_entropy_with_logits(logits, (target > 0).float(), reduction="none").mean(dim=(1, 2, 3))
    # the hardest pictures (fine texture over the whole code) count twice: a code that reads on most pictures
    # but never on grass is what the mean alone trains
    read = per_item.mean() + per_item.topk(max(1, len(per_item) // 4)).values.mean()
    keep = ssim_loss(hidden, pictures).mean() * min(1.0, progress / 0.3)
    errors = ((logits > 0) != (target > 0)).float().mean()
    stats = {"read": float(read.detach()), "1-ssim": float(keep.detach()), "bit_err": float(errors)}
    return read + cfg.ssim_weight * keep, stats


def _paper_step(codec: Codec, cfg: TrainConfig, pictures, codes, gen, rng, progress: float
                ) -> tuple[torch.Tensor, dict]:
    """‖I_P − O_P‖² + β‖I_Q − O_Q‖², β = 0.75, the decoder reading the encoder's output directly."""
    hidden = pictures + codec.encoder(pictures, codes)
    restored = codec.decoder(hidden)
    qr_image = (1 - codes) / 2
    loss = F.mse_loss(hidden, pictures) + 0.75 * F.mse_loss(restored, qr_image)
    errors = (((0.5 - restored) > 0) != (codes > 0)).float().mean()
    return loss, {"mse_p": float(F.mse_loss(hidden.detach(), pictures)), "bit_err": float(errors)}


def train(cfg: TrainConfig, crops, on_step: Callable[[int, dict], None] | None = None,
          start_from: Codec | None = None) -> Codec:
    """Train a codec of `cfg.kind` (fresh, or `start_from`'s weights) on batches from `crops` (anything with
    `.batch(n)` → B×3×S×S)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    codec = Codec.new(cfg.kind)
    if start_from is not None:
        codec.load_state_dict(start_from.state_dict())
    codec.train()
    pool = code_pool(rng, 256)
    if cfg.kind == "carrier":
        opt = torch.optim.AdamW(codec.parameters(), lr=cfg.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        step_fn = _carrier_step
    else:
        opt = torch.optim.RMSprop(codec.parameters(), lr=1e-3)
        sched, step_fn = None, _paper_step
    start = time.perf_counter()
    for step in range(cfg.steps):
        pictures = crops.batch(cfg.batch)
        codes = code_planes(pool, rng, cfg.batch, pictures.shape[-1], cfg.module_px)
        loss, stats = step_fn(codec, cfg, pictures, codes, gen, rng, step / cfg.steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        seconds = time.perf_counter() - start
        if on_step is not None:
            on_step(step, {"loss": float(loss.detach()), **stats, "seconds": seconds})
        if cfg.minutes is not None and seconds > 60 * cfg.minutes:
            break
    return codec.train(False)


__all__ = ["TrainConfig", "code_planes", "code_pool", "random_payload", "train"]
