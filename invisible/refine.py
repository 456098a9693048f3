"""Make a hidden code read after the attacks a user names: gradient steps on the encoder's residual, through the
decoder and differentiable stand-ins for those attacks, at an unchanged PSNR; the real attacks then decide
(`hide.hide`).

Why: the trained encoder adds the same kind of residual to every picture, and on fine texture at the carrier's
scale (grass, gravel, fur) the picture's own detail drowns it. A few steps that see this very picture and this
very decoder move the residual's energy to where the decoder reads it — informed embedding, which training alone
cannot give."""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..losses.eot import gaussian_blur
from .noise import jpeg, quantise_8bit, resize_back

STEPS = 40          # the default most steps
ROUND = 5           # steps between checks with the real attacks
LOGIT_MARGIN = 2.0  # how sure the decoder should be at each module centre
CENTRE_PX = 5       # a pixel counts as a module centre when its 5×5 neighbourhood has one label


def stand_in(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The differentiable version of `attacks.ATTACKS[name]`, with the same parameter (B×3×H×W in 0…1)."""
    kind, value = re.fullmatch(r"([a-z]+)([\d.]*)", name).groups()
    value = float(value) if value else None
    return {"clean": lambda x: x,
            "jpeg": lambda x: jpeg(x, value),
            "blur": lambda x: gaussian_blur(x, value),
            "resize": lambda x: resize_back(x, value),
            "bright": lambda x: x * value}[kind]


def centre_weight(code: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """1×1×H×W: 1 on module centres within the symbol and its quiet zone (`inside`), where a scanner samples;
    0 on module edges and on the picture around the code, which cost residual and read nothing."""
    same = F.max_pool2d(code, CENTRE_PX, 1, CENTRE_PX // 2) == -F.max_pool2d(-code, CENTRE_PX, 1, CENTRE_PX // 2)
    return (same & inside).to(code.dtype)


def refine_steps(base: torch.Tensor, residual: torch.Tensor, code: torch.Tensor, weight: torch.Tensor,
                 logits: Callable[[torch.Tensor], torch.Tensor], survive: tuple[str, ...], steps: int, lr: float,
                 first: int = 0, check: Callable[[], None] | None = None) -> torch.Tensor:
    """`steps` Adam steps on `residual` (1×C×H×W, added to `base` 1×3×H×W) towards the decoder reading `code`
    (±1) with a margin at the weighted pixels, one attack stand-in per step in turn (the clean picture first,
    counting from `first`), the residual's energy held fixed; `check` runs before each step. Returns the new
    residual; runs with gradients whatever mode the caller is in (ComfyUI runs nodes under inference mode)."""
    attacks = [stand_in(n) for n in ("clean", *survive)]
    with torch.inference_mode(False), torch.enable_grad():
        base, code, weight = base.clone(), code.clone(), weight.clone()
        total = weight.sum().clamp_min(1)
        energy = residual.pow(2).sum().sqrt()
        r = residual.clone().requires_grad_(True)
        opt = torch.optim.Adam([r], lr=lr)
        for i in range(first, first + steps):
            if check is not None:
                check()
            x = quantise_8bit(attacks[i % len(attacks)]((base + r).clamp(0, 1)))
            margin = LOGIT_MARGIN - code * logits(x)
            loss = (F.softplus(4 * margin) / 4 * weight).sum() / total
            (r.grad,) = torch.autograd.grad(loss, [r])   # the decoder's own weights get no gradient
            opt.step()
            with torch.no_grad():
                r *= energy / r.pow(2).sum().sqrt().clamp_min(1e-12)
        return r.detach()
