"""A trained encoder/decoder pair and the two things it does: add a code to a picture at a chosen PSNR, and
restore the code's image from a picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..qr.code import QRCode
from ..qr.pixels import picture_modules
from .nets import MODELS


def code_plane(qr: QRCode, height: int, width: int) -> np.ndarray:
    """H×W float32: +1 on dark modules, −1 on light ones and everywhere off the symbol — the code drawn at the
    picture's size from its geometry (fitted like every other stage: `qr.pixels.picture_modules`)."""
    row, col = picture_modules((height, width), qr)
    inside = (row >= 0) & (col >= 0)
    plane = np.full((height, width), -1.0, dtype=np.float32)
    plane[inside] = qr.matrix[row[inside], col[inside]].astype(np.float32) * 2 - 1
    return plane


def scale_to_psnr(residual: torch.Tensor, psnr_db: torch.Tensor | float) -> torch.Tensor:
    """Scale each item's residual (B×C×H×W) so its RMS gives the PSNR asked for (before clipping)."""
    rms = residual.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-12).sqrt()
    target = torch.as_tensor(psnr_db, dtype=residual.dtype).reshape(-1, 1, 1, 1)
    return residual * (10 ** (-target / 20)) / rms


@dataclass
class Codec:
    """Encoder and decoder of one configuration ("carrier" or "paper"), in eval mode."""

    kind: str
    encoder: nn.Module
    decoder: nn.Module

    @classmethod
    def new(cls, kind: str) -> Codec:
        enc, dec = MODELS[kind]
        return cls(kind, enc(), dec())

    def residual(self, picture: torch.Tensor, code: torch.Tensor, psnr_db) -> torch.Tensor:
        """B×3×H×W change to add, at the PSNR asked for (grey for the carrier model, as its encoder makes it)."""
        r = self.encoder(picture, code)
        return scale_to_psnr(r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r, psnr_db)

    def logits(self, picture: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """B×1×H×W, positive where the decoder reads a dark module."""
        out = self.decoder(picture, shift)
        return out if self.kind == "carrier" else 0.5 - out   # the paper's decoder regresses the QR image (light 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"encoder.{k}": v for k, v in self.encoder.state_dict().items()},
                **{f"decoder.{k}": v for k, v in self.decoder.state_dict().items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            part.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")})

    def train(self, mode: bool = True) -> Codec:
        self.encoder.train(mode)
        self.decoder.train(mode)
        return self

    def parameters(self):
        return [*self.encoder.parameters(), *self.decoder.parameters()]
