"""The noise layer between encoder and decoder in training: what a hidden picture meets on its way to a scanner
(8-bit saving, JPEG, blur, resizing, sensor noise, exposure, small crops), each differentiable, drawn per batch.

The paper's first model broke on 8-bit saving and its second on blur; training through these is the fix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..losses.eot import gaussian_blur

# JPEG's standard tables (ITU-T T.81 annex K): luminance and chrominance quantisation at quality 50
_LUMA_Q50 = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA_Q50 = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
               47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def quantise_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round to 1/255 steps, gradient passed straight through (what saving a PNG does)."""
    q = torch.round(x.clamp(0, 1) * 255) / 255
    return x + (q - x).detach()


def _soft_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding whose gradient is not zero: round(x) + (x − round(x))³ (Shin & Song's JPEG approximation)."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _dct_matrix(device, dtype) -> torch.Tensor:
    n = torch.arange(8, dtype=dtype, device=device)
    m = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


def _quality_table(table: list[int], quality: float, device, dtype) -> torch.Tensor:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    t = torch.tensor(table, dtype=dtype, device=device).reshape(8, 8)
    return torch.clamp(torch.floor((t * scale + 50) / 100), min=1)


def _blocks_roundtrip(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """8×8 DCT, quantise with `table`, dequantise, inverse DCT; plane B×H×W with H, W multiples of 8, in 0…255."""
    b, h, w = plane.shape
    d = _dct_matrix(plane.device, plane.dtype)
    blocks = (plane - 128).reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = d @ blocks @ d.T
    coef = _soft_round(coef / table) * table
    out = d.T @ coef @ d
    return out.permute(0, 1, 3, 2, 4).reshape(b, h, w) + 128


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """Differentiable JPEG (YCbCr, 4:2:0 chroma, standard tables) of B×3×H×W in [0,1]."""
    b, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x, (0, pw, 0, ph), mode="replicate") * 255
    r, g, bl = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * bl
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * bl
    y = _blocks_roundtrip(y, _quality_table(_LUMA_Q50, quality, x.device, x.dtype))
    chroma_table = _quality_table(_CHROMA_Q50, quality, x.device, x.dtype)
    planes = []
    for c in (cb, cr):
        small = F.avg_pool2d(c[:, None], 2)[:, 0]
        small = _blocks_roundtrip(F.pad(small, (0, (-small.shape[-1]) % 8, 0, (-small.shape[-2]) % 8),
                                        mode="replicate"), chroma_table)
        small = small[:, : c.shape[1] // 2, : c.shape[2] // 2]
        planes.append(F.interpolate(small[:, None], scale_factor=2, mode="nearest")[:, 0])
    cb, cr = planes
    rgb = torch.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                       y + 1.772 * (cb - 128)], dim=1)
    return (rgb[:, :, :h, :w] / 255).clamp(0, 1)


def resize_back(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Downscale by `factor` (area) and back to the size it had (bilinear): a picture shown or sent smaller."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(8, round(h * factor)), max(8, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class NoiseLayer:
    """One distortion (or a blur/JPEG pair) per batch, drawn from the ranges the benchmark tests past."""

    jpeg_quality: tuple[float, float] = (50.0, 95.0)
    blur_sigma: float = 1.5
    resize: tuple[float, float] = (0.5, 1.0)
    noise_std: float = 2.0 / 255
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    shift_px: int = 8

    KINDS = ("identity", "jpeg", "blur", "resize", "noise", "exposure", "shift", "blur+jpeg")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, tuple[int, int]]:
        """B×3×H×W → (distorted, (dy, dx) shift applied); always ends with 8-bit rounding."""
        def uniform(lo, hi):
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        kind = self.KINDS[int(torch.randint(len(self.KINDS), (), generator=generator))]
        shift = (0, 0)
        if kind in ("blur", "blur+jpeg"):
            x = gaussian_blur(x, uniform(0.3, self.blur_sigma))
        if kind in ("jpeg", "blur+jpeg"):
            x = jpeg(x, uniform(*self.jpeg_quality))
        elif kind == "resize":
            x = resize_back(x, uniform(*self.resize))
        elif kind == "noise":
            x = x + self.noise_std * torch.randn(x.shape, generator=generator)
        elif kind == "exposure":
            x = ((x - 0.5) * uniform(*self.contrast) + 0.5) * uniform(*self.brightness)
        elif kind == "shift":
            shift = tuple(int(v) for v in torch.randint(-self.shift_px, self.shift_px + 1, (2,), generator=generator))
            x = torch.roll(x, shifts=shift, dims=(-2, -1))
        return quantise_8bit(x), shift
