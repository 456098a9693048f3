"""Memory and time of one differentiable decode (forward + backward to the latent) through SD1.5's KL VAE decoder,
with and without gradient checkpointing — the cost the ``x0`` guidance mode adds to a sampling step.

    python bench/bench_decoder.py [--size 512 768] [--device cpu|cuda]

The decoder is ComfyUI's own class with random weights (the cost does not depend on the values). Each case runs
in a fresh process: peak RSS on CPU (fp32), CUDA's max_memory_allocated on a GPU (autocast bf16/fp16 as the
guidance node's "auto" precision does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench_guidance import _comfyui_on_path


def _one(size: int, checkpointing: bool, device: str) -> dict:
    _comfyui_on_path(device)
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL

    from aesthetic_qr.diffusion.decoder import DifferentiableDecoder
    from aesthetic_qr.diffusion.frozen import grad_mode

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    torch.manual_seed(0)
    with torch.inference_mode():
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
        for p in vae.parameters():
            p.normal_(0, 0.02)
    dev = torch.device(device)
    decoder = DifferentiableDecoder(vae, dev, "auto", checkpointing)
    del vae
    z = torch.randn(1, 4, size // 8, size // 8, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    with grad_mode():
        zz = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(decoder(zz).square().mean(), zz)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    out = {"size": size, "checkpointing": checkpointing, "seconds": time.perf_counter() - t,
           "finite": bool(torch.isfinite(g).all())}
    if dev.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        import resource

        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs="+", default=[512, 768])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(int(args.one[0]), args.one[1] == "1", args.device)))
        return
    print(f"SD1.5 KL decoder, forward + backward to the latent, {args.device}")
    print(f"{'size':>6} {'checkpointing':>13} {'seconds':>8} {'peak MB':>8}")
    for size in args.size:
        for ckpt in ("0", "1"):
            done = subprocess.run([sys.executable, __file__, "--device", args.device, "--one", str(size), ckpt],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{r['size']:>6} {'on' if r['checkpointing'] else 'off':>13} {r['seconds']:>8.1f} "
                  f"{r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
