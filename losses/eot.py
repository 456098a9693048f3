"""Expectation over transformation: differentiable, random camera degradations applied before a code loss, so
the optimiser makes pictures that survive blur, downscaling, exposure and noise rather than ones whose loss is
zero only at the exact module centres (methods.md, "Where we aim past the anchors")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CameraAugment:
    """Ranges are in module units where a size matters, so the same settings fit any module size."""

    blur_modules: tuple[float, float] = (0.0, 0.35)     # Gaussian σ, in modules
    scale_px_per_module: tuple[float, float] = (2.0, 4.0)  # downscale to this many px per module, then back
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)
    noise: float = 0.03
    p_scale: float = 0.5                                 # share of samples that are downscaled

    def __call__(self, image: torch.Tensor, module_px: int, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """B×3×H×W in [0,1] → the same shape, each item degraded with its own random draw."""
        out = []
        for item in image:
            out.append(self._one(item[None], module_px, generator))
        return torch.cat(out)

    def _uniform(self, lo: float, hi: float, generator) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    def _one(self, x: torch.Tensor, module_px: int, generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        if float(torch.rand((), generator=generator)) < self.p_scale:
            target = self._uniform(*self.scale_px_per_module, generator)
            factor = min(1.0, target / module_px)
            if factor < 1.0:
                small = F.interpolate(x, scale_factor=factor, mode="area")
                x = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        sigma = self._uniform(*self.blur_modules, generator) * module_px
        if sigma > 0.3:
            x = gaussian_blur(x, sigma)
        c = self._uniform(*self.contrast, generator)
        b = self._uniform(*self.brightness, generator)
        x = ((x - 0.5) * c + 0.5) * b
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x.clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, differentiable in x."""
    radius = max(1, int(3 * sigma + 0.5))
    r = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
