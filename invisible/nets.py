"""The two encoder/decoder pairs: ours (a carrier codec small enough to train on two CPU cores) and the paper's
(FC-DenseNet "tiramisu" encoder, conv + batch-norm decoder), selectable by name for the comparison.

Why a carrier: a convolutional encoder is translation-equivariant, so on a flat patch it can only add a flat
offset, which no decoder can tell from the picture's own shading. Ours modulates a fixed 2-D carrier (period 8 px,
four quadrature phases) with amplitude maps the encoder learns from the picture and the code; the decoder learns
to whiten the picture, demodulates, and learns to read the module under the noise. A shifted or cropped picture
only rotates the four phases, so the decoder can search the shift cheaply (`phase_weights`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.eot import gaussian_blur

PERIOD = 8


def carriers(h: int, w: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """4×H×W: cos·cos, cos·sin, sin·cos, sin·sin of the period-8 grid (y first), each with unit mean square."""
    omega = 2 * math.pi / PERIOD
    y = torch.arange(h, dtype=dtype, device=device)[:, None] * omega
    x = torch.arange(w, dtype=dtype, device=device)[None, :] * omega
    cy, sy, cx, sx = torch.cos(y), torch.sin(y), torch.cos(x), torch.sin(x)
    return torch.stack([cy * cx, cy * sx, sy * cx, sy * sx]) * 2


def phase_weights(dy: int, dx: int, dtype=torch.float32) -> torch.Tensor:
    """4×4 matrix M with carriers(rolled by (dy, dx)) = M @ carriers: how a shift mixes the four phases."""
    a, b = -2 * math.pi * dy / PERIOD, -2 * math.pi * dx / PERIOD
    ry = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=dtype)
    rx = torch.tensor([[math.cos(b), -math.sin(b)], [math.sin(b), math.cos(b)]], dtype=dtype)
    return torch.kron(ry, rx)


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.GELU())


class CarrierEncoder(nn.Module):
    """(picture, code) → grey residual: amplitude maps at half resolution, times the four carriers, summed."""

    def __init__(self, width: int = 24):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(4, width, 4, stride=2, padding=1), nn.GELU())
        self.body = nn.Sequential(_block(width, width), _block(width, width, 2), _block(width, width, 4),
                                  _block(width, width))
        self.amplitude = nn.Conv2d(width, 4, 3, padding=1)

    def forward(self, picture: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h, w = picture.shape[-2:]
        x = self.body(self.down(torch.cat([picture * 2 - 1, code], dim=1)))
        amp = F.interpolate(self.amplitude(x), size=(h, w), mode="bilinear", align_corners=False)
        return (amp * carriers(h, w, picture.dtype, picture.device)).sum(dim=1, keepdim=True)


class CarrierDecoder(nn.Module):
    """Picture → code logits: whitening at full resolution, demodulation by the (shifted) carrier, reading at
    half resolution with a receptive field of a few modules."""

    def __init__(self, width: int = 24, maps: int = 4):
        super().__init__()
        self.maps = maps
        self.whiten = nn.Sequential(_block(3, 16), _block(16, 16), nn.Conv2d(16, maps, 3, padding=1))
        self.read = nn.Sequential(_block(maps * 4 + 1, width), _block(width, width, 2), _block(width, width, 4),
                                  _block(width, width, 8), _block(width, width), nn.Conv2d(width, 1, 3, padding=1))

    def demodulate(self, picture: torch.Tensor) -> torch.Tensor:
        """B×(maps·4)×H/2×W/2: each whitened map times each carrier phase, pooled over one period."""
        h, w = picture.shape[-2:]
        detail = (picture - gaussian_blur(picture, 3.0)) * 16   # the picture's shading carries no code
        white = self.whiten(detail)
        prod = white[:, :, None] * carriers(h, w, picture.dtype, picture.device)[None, None]
        pooled = F.avg_pool2d(prod.flatten(1, 2), 2)
        return F.avg_pool2d(pooled, 3, stride=1, padding=1, count_include_pad=False)

    def read_at(self, demod: torch.Tensor, picture: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Logits (B×1×H×W) assuming the picture was shifted by `shift` pixels since it was encoded."""
        b, _, hh, ww = demod.shape
        m = phase_weights(*shift, dtype=demod.dtype).to(demod.device)
        # the shifted carriers are m @ carriers, so m (orthogonal) maps the demodulated phases back
        d = torch.einsum("ij,bmjhw->bmihw", m, demod.view(b, self.maps, 4, hh, ww)).flatten(1, 2)
        luma = F.avg_pool2d(picture.mean(dim=1, keepdim=True), 2) * 2 - 1
        logits = self.read(torch.cat([d, luma], dim=1))
        return F.interpolate(logits, size=picture.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, picture: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return self.read_at(self.demodulate(picture), picture, shift)


# --------------------------------------------------------------------------------------------- the paper's

class _DenseLayer(nn.Sequential):
    def __init__(self, cin: int, growth: int):
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, growth, 3, padding=1), nn.Dropout2d(0.2))


class _DenseBlock(nn.Module):
    """Each layer sees the block's input and every earlier layer's output; returns only the new maps."""

    def __init__(self, cin: int, layers: int, growth: int):
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            new.append(layer(torch.cat([x, *new], dim=1)))
        return torch.cat(new, dim=1)


class TiramisuEncoder(nn.Module):
    """FC-DenseNet as the paper describes it: 11 dense blocks, 5 transitions down (BN, ReLU, 1×1 conv, stride 2)
    and 5 up (3×3 transposed conv, stride 2). Block depth and growth rate are FC-DenseNet56's (4 layers, 12 maps;
    the paper does not give them). Outputs the embedded picture; we take its difference to the input as the
    residual so both models are compared at the same PSNR."""

    def __init__(self, layers: int = 4, growth: int = 12, first: int = 48):
        super().__init__()
        self.first = nn.Conv2d(4, first, 3, padding=1)
        self.down_blocks, self.downs, skips = nn.ModuleList(), nn.ModuleList(), []
        c = first
        for _ in range(5):
            self.down_blocks.append(_DenseBlock(c, layers, growth))
            c += layers * growth
            skips.append(c)
            self.downs.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1, stride=2)))
        self.bottleneck = _DenseBlock(c, layers, growth)
        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        up = layers * growth
        for skip in reversed(skips):
            self.ups.append(nn.ConvTranspose2d(up, up, 3, stride=2, padding=1, output_padding=1))
            self.up_blocks.append(_DenseBlock(up + skip, layers, growth))
        self.last = nn.Conv2d(up, 3, 1)

    def forward(self, picture: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h, w = picture.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        x = F.pad(torch.cat([picture, (1 - code) / 2], dim=1), (0, pw, 0, ph), mode="replicate")
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downs):
            x = torch.cat([x, block(x)], dim=1)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        out = torch.sigmoid(self.last(x))[..., :h, :w]
        return out - picture


class PaperDecoder(nn.Module):
    """The improved decoder: 3×3 convolutions with batch norm and ReLU (16, 16, 16, 8, 8, 8 maps), then one map."""

    def __init__(self, widths: tuple[int, ...] = (16, 16, 16, 8, 8, 8)):
        super().__init__()
        layers, c = [], 3
        for wdt in widths:
            layers += [nn.Conv2d(c, wdt, 3, padding=1), nn.BatchNorm2d(wdt), nn.ReLU()]
            c = wdt
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, picture: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return self.net(picture)


MODELS = {"carrier": (CarrierEncoder, CarrierDecoder), "paper": (TiramisuEncoder, PaperDecoder)}
