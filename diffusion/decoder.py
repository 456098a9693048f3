"""A VAE decoder that gradients can flow through, for guidance and latent refinement.

ComfyUI's ``VAE.decode`` cannot be differentiated: it runs on inference tensors, clamps (zero gradient outside
[0, 1]) and may fall back to tiles. `DifferentiableDecoder` holds a frozen fp32 copy of the VAE's
``first_stage_model`` without its encoder (`frozen.plain_copy`), maps its [-1, 1] output to [0, 1] without
clamping, and can
* run under autocast (bf16 where the GPU supports it, else fp16; never on CPU, where it is slower), and
* recompute each residual / attention block in the backward pass (gradient checkpointing), which keeps only the
  block boundaries of the full-resolution activations — what lets SD1.5 at 768² fit in 8 GB.
One copy is cached per VAE model, device and precision (`decoder_for`).
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .frozen import plain_copy

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CHECKPOINTED_BLOCKS = ("ResnetBlock", "AttnBlock", "Block", "Upsample")  # ComfyUI's KL decoder and TAESD blocks


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None = plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run


class DifferentiableDecoder:
    """latent (the VAE's own scale, B×C×h×w) → image B×3×H×W in [0, 1], unclamped, differentiable."""

    def __init__(self, first_stage_model: nn.Module, device: torch.device | str = "cpu", precision: str = "auto",
                 gradient_checkpointing: bool = False):
        if not hasattr(first_stage_model, "decode"):
            raise TypeError(f"{type(first_stage_model).__name__} has no decode(); expected a VAE's first_stage_model")
        self.device = torch.device(device)
        self.autocast = resolve_precision(precision, self.device)
        drop = [n for n, _ in first_stage_model.named_children() if "encoder" in n and "decoder" not in n]
        self.model = plain_copy(first_stage_model, drop=drop).float().to(self.device)
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:
            for sub in self.model.modules():
                if type(sub).__name__ in CHECKPOINTED_BLOCKS:
                    sub.forward = _checkpointed(sub.forward)

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent.to(self.device, torch.float32)
        if self.autocast is not None:
            with torch.autocast(self.device.type, dtype=self.autocast):
                out = self.model.decode(z)
        else:
            out = self.model.decode(z)
        if out.dim() != 4 or out.shape[1] != 3:
            raise ValueError(f"the VAE decoded a {tuple(out.shape)} tensor; only image VAEs (B×3×H×W) are "
                             f"supported")
        return (out.float() + 1.0) / 2.0


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_for(first_stage_model: nn.Module, device, precision: str = "auto",
                gradient_checkpointing: bool = False) -> DifferentiableDecoder:
    """The cached `DifferentiableDecoder` of this VAE model on `device` (made on first use; freed with the VAE)."""
    per_model = _CACHE.setdefault(first_stage_model, {})
    key = (str(torch.device(device)), precision, gradient_checkpointing)
    if key not in per_model:
        per_model.clear()  # one copy per VAE: a new device or precision replaces the old copy
        per_model[key] = DifferentiableDecoder(first_stage_model, device, precision, gradient_checkpointing)
    return per_model[key]
