"""The error-budget option of the code losses (`losses/budget.py`) on a pixel-space descent, so the effect is seen
without a diffusion model: how much less a picture must change when part of each RS block's correction capacity
is spent on it, and whether the result still decodes.

    OMP_NUM_THREADS=1 python bench/bench_budget.py

Set-up (the one tests/test_budget.py asserts on): a v3-M code at 6 px a module, the picture on its data modules
(function patterns and quiet zone drawn as the code's), Adam on a grey offset for 150 steps against SRL (band
0.4 / 0.7, σ = module/3) + the offset's mean square. Budget b: per block up to ⌊b·t⌋ wrong codewords get no
gradient (t = 13 here, one block). Pictures: skimage's camera, astronaut, coffee, chelsea, brick (grey for the descent).
Columns: mean squared change of the picture, SSIM to it (RGB, skimage's), zxing / WeChat read the payload.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402

from aesthetic_qr.losses import SRLConfig, srl  # noqa: E402
from aesthetic_qr.qr import encode  # noqa: E402
from aesthetic_qr.qr.pixels import luminance, ssim_rgb  # noqa: E402
from aesthetic_qr.qr.render import render  # noqa: E402
from aesthetic_qr.scan.decoders import decode  # noqa: E402

TEXT = "https://example.com/budget"
PICTURES = ("camera", "astronaut", "coffee", "chelsea", "brick")
BUDGETS = (0.0, 0.5, 0.75)


def framed(name: str, qr, image: torch.Tensor) -> torch.Tensor:
    """The picture's luminance on the code's data modules, the code's own pixels elsewhere."""
    side = image.shape[-1]
    y = torch.from_numpy(luminance(getattr(data, name)()))[None, None]
    s = min(y.shape[-2:])
    y = y[..., :s, :s]
    pic = torch.nn.functional.interpolate(y, size=(side, side), mode="area").expand(1, 3, side, side)
    p, (x0, y0), n = qr.geometry.module_px, qr.geometry.origin, qr.size
    data_modules = torch.from_numpy(~qr.function_mask.astype(bool)).repeat_interleave(p, 0).repeat_interleave(p, 1)
    inside = torch.zeros(side, side, dtype=torch.bool)
    inside[y0:y0 + n * p, x0:x0 + n * p] = data_modules
    return torch.where(inside, pic, image)


def descend(picture: torch.Tensor, qr, budget: float, steps: int = 150) -> torch.Tensor:
    d = torch.zeros_like(picture[:, :1], requires_grad=True)
    opt = torch.optim.Adam([d], lr=0.03)
    cfg = SRLConfig(band=(0.4, 0.7), budget=budget, sigma_frac=1 / 3)
    for _ in range(steps):
        loss = srl((picture + d).clamp(0, 1), qr, cfg).sum() * 10 + (d ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (picture + d.detach()).clamp(0, 1)


def u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def main() -> int:
    torch.set_num_threads(1)
    qr = encode(TEXT, version=3, ecl="M")
    img, geo = render(qr, 6, 2)
    qr = qr.with_geometry(geo)
    image = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None]
    print(f"v{qr.version}-{qr.ecl}, t = {qr.correctable()} per block, {len(qr.blocks)} blocks")
    print("| picture | " + " | ".join(f"b = {b:g}: change / SSIM / zxing, WeChat" for b in BUDGETS) + " |")
    print("|---" * (1 + len(BUDGETS)) + "|")
    totals = {b: [] for b in BUDGETS}
    for name in PICTURES:
        picture = framed(name, qr, image)
        cells = []
        for b in BUDGETS:
            out = descend(picture, qr, b)
            reads = decode(u8(out), ("zxing", "wechat"), expected=qr.payload)
            change = float(((out - picture) ** 2).mean())
            totals[b].append(change)
            cells.append(f"{change:.4f} / {ssim_rgb(u8(picture), u8(out)):.3f} / "
                         f"{'yes' if reads['zxing'].match else 'no'}, {'yes' if reads['wechat'].match else 'no'}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    base = np.mean(totals[0.0])
    print("| mean change vs b = 0 | " + " | ".join(f"{np.mean(totals[b]) / base:.2f}×" for b in BUDGETS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
