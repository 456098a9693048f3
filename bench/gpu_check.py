"""The project's GPU check: one script, ready for the day a GPU is lent, that never rots because CI runs its CPU mode.

    python bench/gpu_check.py                 # one CUDA GPU, random full-size SD1.5 weights, ≤ 10 minutes
    python bench/gpu_check.py --cpu --tiny    # the same checks on the tiny random model, on CPU (CI: < 1 minute)

It prints three tables and exits non-zero if any path errors:
1. per sampler step, unguided / x0 / xt guidance, and per refinement iteration, with peak memory, at 512² and 768²
   (`bench/bench_guidance.py`, one process per row so each peak is its own);
2. the decoder's compute paths (fp32, fp16, bf16 autocast) for x0 guidance and refinement at 512² (CUDA only:
   on a CPU every path is fp32);
3. both SD1.5 workflows (`diffqrcoder_sd15`, `qrmonster_baseline_sd15`) at their shipped settings in a headless
   ComfyUI, with only the model files swapped for random ones (the tiny mode also shrinks modules, steps and
   refinement iterations, as the tests do).
Random weights make noise, so nothing here is asked to scan: the check is that every path runs, and what it costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "bench_guidance.py"
WORKFLOWS = ("diffqrcoder_sd15", "qrmonster_baseline_sd15")
def bench_rows(model: str, sizes: list[int], modes: list[str], steps: int, device: str, precision: str) -> list[dict]:
    cmd = [sys.executable, str(BENCH), "--model", model, "--size", *map(str, sizes), "--modes", *modes,
           "--steps", str(steps), "--device", device, "--precision", precision, "--json"]
    if device == "cpu":  # one process for every row: CPU peaks are not what this check is for
        cmd.append("--in-process")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"bench_guidance ({precision}) failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def workflow_prompt(name: str, models: dict, tiny: bool) -> dict:
    """The workflow's API twin on the random model files (and, tiny, with the CPU settings the tests use)."""
    import tiny_sd

    prompt = json.loads((REPO / "workflows" / "api" / f"{name}.json").read_text())
    return tiny_sd.for_random_models(prompt, tiny_sd.sd15_inputs(models), prefix="aqr_gpu_check", shrink=tiny)


def run_workflows(model: str, tiny: bool, device: str) -> list[dict]:
    sys.path.insert(0, str(REPO / "tests"))
    import tiny_sd

    from aesthetic_qr.tools.headless import ComfyUIServer

    args = ["--cpu"] if device == "cpu" else []
    server = ComfyUIServer(extra_args=args, env={"OMP_NUM_THREADS": "1"} if device == "cpu" else {})
    rows = []
    try:
        server.start()
        paths = tiny_sd.build(server.comfyui_dir, server.models_dir, model)
        models = {k: p.name for k, p in paths.items()}
        for name in WORKFLOWS:
            started = time.monotonic()
            result = server.client.run(workflow_prompt(name, models, tiny), timeout=900, raise_on_error=False)
            rows.append({"workflow": name, "status": result.status, "seconds": time.monotonic() - started})
    finally:
        server.cleanup()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (default: CUDA)")
    ap.add_argument("--tiny", action="store_true", help="the tiny random model and CPU-sized settings")
    args = ap.parse_args()
    device, model = ("cpu" if args.cpu else "cuda"), ("tiny" if args.tiny else "full")
    sizes, steps = ([64], 2) if args.tiny else ([512, 768], 8)
    failures = []
    print(f"GPU check: {model} random SD1.5 weights on {device}")

    def attempt(what, fn):
        try:
            return fn()
        except Exception as exc:  # every path is tried; the exit code says whether any failed
            failures.append(f"{what}: {type(exc).__name__}: {exc}")
            return []

    rows = attempt("steps", lambda: bench_rows(model, sizes, ["none", "x0", "xt", "refine"], steps, device, "auto"))
    base = {r["size"]: r["ms_per_step"] for r in rows if r["mode"] == "none"}
    print(f"\n{'size':>6} {'mode':>7} {'ms/step':>9} {'× unguided':>10} {'ms/iter':>8} {'peak MB':>8}  device")
    for r in rows:
        step = r.get("ms_per_step")
        ratio = f"{step / base[r['size']]:.2f}" if step and base.get(r["size"]) else ""
        print(f"{r['size']:>6} {r['mode']:>7} {step or 0:>9.0f} {ratio:>10} {r.get('ms_per_iteration', 0):>8.0f} "
              f"{r['peak_mb']:>8.0f}  {r.get('gpu', 'CPU')}")
    if device == "cuda":
        print(f"\n{'precision':>9} {'size':>6} {'mode':>7} {'ms/step':>9} {'ms/iter':>8} {'peak MB':>8}")
    else:
        print("\n(fp16/bf16 autocast is CUDA-only: on a CPU every decoder path is fp32)")
    for precision in ("fp32", "fp16", "bf16") if device == "cuda" else ():
        for r in attempt(f"{precision} path", lambda p=precision: bench_rows(model, sizes[:1], ["x0", "refine"],
                                                                             steps, device, p)):
            print(f"{precision:>9} {r['size']:>6} {r['mode']:>7} {r.get('ms_per_step', 0):>9.0f} "
                  f"{r.get('ms_per_iteration', 0):>8.0f} {r['peak_mb']:>8.0f}")
    print(f"\n{'workflow':>24} {'status':>10} {'seconds':>8}")
    for r in attempt("workflows", lambda: run_workflows(model, args.tiny, device)):
        print(f"{r['workflow']:>24} {r['status']:>10} {r['seconds']:>8.1f}")
        if r["status"] != "success":
            failures.append(f"{r['workflow']}: {r['status']}")
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
