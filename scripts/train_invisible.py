"""Reproduce the shipped invisible-QR weights (or train the paper's configuration for the comparison).

    # ours, in two phases → invisible/weights/carrier.safetensors
    OMP_NUM_THREADS=1 python scripts/train_invisible.py --out out/carrier_phase1.safetensors
    OMP_NUM_THREADS=1 python scripts/train_invisible.py --start-from out/carrier_phase1.safetensors \
        --steps 1600 --psnr 34,42 --lr 1e-3 --seed 1
    OMP_NUM_THREADS=1 python scripts/train_invisible.py --kind paper --minutes 30 --out out/paper.safetensors

Pictures: Debian's wallpaper packages (fetched with apt-get into --cache on first use; `invisible.data` names each
and its licence) plus procedural pictures; the held-out split (`invisible.data.split`) is never trained on, and
neither are the pictures that ship in Python packages (the benchmark's). One torch thread: on this 2-core machine
two threads were slower than one while anything else ran. The curve goes to a JSON file beside the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from aesthetic_qr.invisible.data import PictureCrops, fetch_wallpapers, split  # noqa: E402
from aesthetic_qr.invisible.train import TrainConfig, train  # noqa: E402
from aesthetic_qr.invisible.weights import SHIPPED, load_codec, save_codec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("carrier", "paper"), default="carrier")
    ap.add_argument("--steps", type=int, default=None, help="default: 3600 (carrier) or 900 (paper, 4 per batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "aesthetic-qr" / "wallpapers")
    ap.add_argument("--out", type=Path, default=None, help=f"default for the carrier model: {SHIPPED}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=None, help="stop at this wall time (default: run all steps)")
    ap.add_argument("--start-from", type=Path, default=None, help="continue from these weights (a second phase)")
    ap.add_argument("--psnr", default="30,40", help="PSNR range drawn per item, dB (default 30,40)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the carrier model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = a.out or (SHIPPED if a.kind == "carrier" else Path("out/paper.safetensors"))
    psnr = tuple(float(v) for v in a.psnr.split(","))
    cfg = TrainConfig(kind=a.kind, seed=a.seed, minutes=a.minutes, psnr=psnr, lr=a.lr,
                      **({"steps": a.steps or 3600} if a.kind == "carrier" else
                         {"steps": a.steps or 900, "batch": 4, "size": 224}))
    pictures = fetch_wallpapers(a.cache)
    train_set, held_out = split(pictures)
    print(f"{len(pictures)} wallpapers: {len(train_set)} to train on, {len(held_out)} held out", flush=True)
    crops = PictureCrops(train_set, cfg.size, seed=a.seed)
    curve, start = [], time.perf_counter()

    last = {}

    def on_step(step: int, stats: dict) -> None:
        last.update(step=step, **stats)
        if step % 25 == 0 or step == cfg.steps - 1:
            curve.append({"step": step, **{k: round(v, 5) for k, v in stats.items()}})
            done = (step + 1) / cfg.steps
            eta = stats["seconds"] / done * (1 - done)
            bar = "#" * int(30 * done)
            print(f"\r[{bar:<30}] {step + 1}/{cfg.steps} loss {stats['loss']:.4f} bit errors "
                  f"{stats['bit_err']:.3f} ({stats['seconds'] / 60:.1f} min, {eta / 60:.1f} left)", end="",
                  flush=True)

    codec = train(cfg, crops, on_step, load_codec(a.start_from) if a.start_from else None)
    minutes = (time.perf_counter() - start) / 60
    curve.append({k: round(v, 5) for k, v in last.items()})
    info = {"kind": a.kind, "steps": last["step"] + 1, "psnr": list(psnr), "lr": a.lr,
            "start_from": a.start_from.name if a.start_from else None, "batch": cfg.batch, "size": cfg.size,
            "seed": a.seed,
            "minutes": round(minutes, 1), "threads": a.threads, "train_pictures": len(train_set),
            "held_out": [p.name for p in held_out]}
    save_codec(codec, out, info)
    out.with_suffix(".curve.json").write_text(json.dumps({"info": info, "curve": curve}, indent=1))
    print(f"\nsaved {out} ({out.stat().st_size / 1e6:.2f} MB) after {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
