"""DiffQRCoder's scanning-robust guidance wired into a sampler's hooks (the maths is in `guidance`).

* a post-CFG function edits the denoised prediction x̂0 (every sampler derives its step from it);
* in ``xt`` mode a CALC_COND_BATCH wrapper runs the model's batched forward (UNet and ControlNets) with a graph,
  on ordinary clones of their weights (`frozen.plain_parameters`), redoes the guider's CFG (`cfg_result`), and
  back-propagates ∇_{x̂0} L to the noisy latent there, so no graph outlives the call; the post-CFG function
  applies the step, after checking that the sampler's x̂0 is the one the graph computed (else it falls back to
  ``x0`` for that step and says why);
* an OUTER_SAMPLE wrapper starts a new entry of the guidance log for every sampling run.
Hooks are closures (ModelPatcher.clone deep-copies bound methods with their objects, VAE included). The host's
own functions (its CFG, its interrupt check, its wrapper keys) come in a `SamplerHost`, so this module imports no
ComfyUI and runs under a fake host in the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .decoder import decoder_for
from .frozen import grad_mode, plain_parameters, reachable_modules
from .guidance import MODES, ScanObjective, stack_gradients, step_scale, x0_gradients

__all__ = ["GuidanceLog", "SamplerHost", "install_guidance"]


@dataclass(frozen=True)
class SamplerHost:
    """What the hooks need from the sampler that runs them (ComfyUI's, handed in by the node)."""

    cfg_function: Callable      # (model, cond, uncond, scale, x, timestep, model_options=, cond=, uncond=) → x̂0
    check_interrupt: Callable[[], None]
    outer_sample: str           # wrapper key around one whole sampling run
    calc_cond_batch: str        # wrapper key around one batched model forward


HOOK_KEY = "aesthetic_qr_scan_guidance"


class GuidanceLog:
    """What the hooks did, per sampling run: one event per model evaluation inside the run."""

    def __init__(self):
        self.runs: list[dict] = []
        self._lock = threading.Lock()

    def begin(self, sigmas: torch.Tensor) -> None:
        with self._lock:
            self.runs.append({"sigmas": [float(s) for s in sigmas.flatten()], "events": []})

    def record(self, sigma: float, status: str, **details) -> None:
        with self._lock:
            if not self.runs:
                self.runs.append({"sigmas": [], "events": []})
            run = self.runs[-1]
            sig = run["sigmas"][:-1]
            step = min(range(len(sig)), key=lambda i: abs(sig[i] - sigma)) if sig else len(run["events"])
            run["events"].append({"step": step, "sigma": sigma, "status": status, **details})

    def summary(self) -> str:
        if not self.runs:
            return "Scan guidance: no sampling run used the guided model yet."
        lines = []
        for k, run in enumerate(self.runs, 1):
            steps = max(len(run["sigmas"]) - 1, 0)
            by = {}
            for e in run["events"]:
                by.setdefault(e["status"], []).append(e["step"])
            lines.append(f"run {k}: {steps} steps, {len(run['events'])} model evaluations")
            for status in ("guided", "gated", "outside window", "x0 fallback"):
                if status in by:
                    lines.append(f"  {status} at steps {_ranges(by[status])}")
            for why in dict.fromkeys(e["why"] for e in run["events"] if e.get("why")):
                lines.append(f"  x0 fallback: {why}")
            guided = [e for e in run["events"] if e["status"] in ("guided", "x0 fallback")]
            if guided:
                first, last = guided[0], guided[-1]
                rms = [e["step_rms"] for e in guided]
                lines.append(f"  SRL {first['srl']:.4f} (step {first['step']}) → {last['srl']:.4f} "
                             f"(step {last['step']}); step RMS {min(rms):.3g}–{max(rms):.3g}")
        return "\n".join(lines)


def _ranges(steps: list[int]) -> str:
    steps = sorted(set(steps))
    out, start = [], None
    for i, s in enumerate(steps):
        start = s if start is None else start
        if i + 1 == len(steps) or steps[i + 1] != s + 1:
            out.append(str(start) if start == s else f"{start}–{s}")
            start = None
    return ", ".join(out)


def xt_obstacle(scale, conds, model_options) -> str | None:
    """Why the xt graph cannot reproduce this evaluation's CFG exactly, or None."""
    if scale is None or len(conds) != 2:
        return "the sampler's guider is not CFGGuider (DualCFGGuider or a custom guider)"
    if model_options.get("sampler_pre_cfg_function"):
        return ("pre-CFG functions are set (APG, TCFG, …): they may keep state between calls, so the xt graph does "
                "not run them a second time")
    return None


def cfg_result(host: SamplerHost, base_model, conds, out, x, timestep, scale, model_options):
    """What the host's cfg_function makes of the batched predictions `out`, as a differentiable function of them,
    with the model's sampler_cfg_function (RescaleCFG, …), which must be a pure function of its inputs. Post-CFG
    functions are left out: ours applies the step, and others (SAG, PAG) run the model again."""
    options = {k: v for k, v in model_options.items() if k != "sampler_post_cfg_function"}
    return host.cfg_function(base_model, out[0], out[1], scale, x, timestep, model_options=options,
                                       cond=conds[0], uncond=conds[1])


def same_prediction(graph_x0: torch.Tensor, sampler_x0: torch.Tensor) -> bool:
    """The x̂0 the xt graph computed is the one the sampler is about to use (no post-CFG node ran before ours)."""
    return graph_x0.shape == sampler_x0.shape and torch.allclose(graph_x0.float(), sampler_x0.float(),
                                                                 rtol=1e-3, atol=1e-4)


def install_guidance(model, vae, objective: ScanObjective, mode: str, start_percent: float, end_percent: float,
                     precision: str, checkpointing: bool | None, log: GuidanceLog, host: SamplerHost):
    """A clone of `model` with the guidance hooks; `checkpointing` None means on for CUDA, off elsewhere."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    vae_model = vae.first_stage_model
    state: dict = {}

    def window(base_model, sigma) -> bool:
        sampling = base_model.model_sampling
        hi, lo = sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent)
        return lo <= float(sigma.max()) <= hi

    def decoder(device):
        ckpt = device.type == "cuda" if checkpointing is None else checkpointing
        return decoder_for(vae_model, device, precision, ckpt)

    def outer_sample(executor, *args, **kwargs):
        log.begin(args[3])  # (noise, latent_image, sampler, sigmas, …)
        state.clear()
        state["cfg"] = getattr(executor.class_obj, "cfg", None)  # the CFGGuider's scale, for the xt graph
        try:
            return executor(*args, **kwargs)
        finally:
            state.clear()

    def calc_cond_batch(executor, base_model, conds, x, timestep, model_options):
        """xt mode: the batched forward with a graph, then ∇_x L through it (the CFG combination redone here)."""
        if not window(base_model, timestep):
            return executor(base_model, conds, x, timestep, model_options)
        why = xt_obstacle(state.get("cfg"), conds, model_options)
        if why:
            state["xt"] = {"input": x, "why": why}
            return executor(base_model, conds, x, timestep, model_options)
        host.check_interrupt()
        roots = (base_model, conds, model_options.get("transformer_options", {}))
        # allow_mutation…: the UNet adds ControlNet residuals in place (h += ctrl) to tensors the graph saved
        with grad_mode(), plain_parameters(reachable_modules(*roots)), \
                torch.autograd.graph.allow_mutation_on_saved_tensors():
            x_graph = x.detach().clone().requires_grad_(True)
            out = executor(base_model, conds, x_graph, timestep, model_options)
            state["xt"] = {"input": x, **xt_step(base_model, conds, out, x_graph, timestep, model_options)}
        return [o.detach() for o in out]

    def xt_step(base_model, conds, out, x_graph, timestep, model_options) -> dict:
        """∇_x L through the graph of `out`: {"grad", "items", "x0"}, or {"why"} when the CFG cannot be
        differentiated."""
        try:
            # the sigma as an ordinary tensor: CFG functions (RescaleCFG) divide by it, which autograd saves
            guided = cfg_result(host, base_model, conds, out, x_graph, timestep.clone(), state["cfg"], model_options)
        except Exception as exc:  # a CFG function that cannot run on graph tensors: this step falls back to x0
            return {"why": f"the model's CFG function failed on the graph ({type(exc).__name__}: {exc})"}
        predictions = [o for o in out if o is not None and o.requires_grad]
        if not guided.requires_grad or not predictions:
            return {"why": "the model's CFG function (sampler_cfg_function) is not differentiable"}
        items = x0_gradients(guided, base_model.process_latent_out, decoder(x_graph.device), objective)
        grad = stack_gradients(items, guided)
        grad_x = None
        if grad is not None:
            grad_x, *through = torch.autograd.grad(guided, [x_graph, *predictions], grad.to(guided.dtype),
                                                   allow_unused=True)
            if all(g is None for g in through):
                return {"why": "the model's CFG function (sampler_cfg_function) is not differentiable"}
        return {"grad": grad_x, "items": items, "x0": guided.detach()}

    def post_cfg(args):
        denoised, sigma, base_model = args["denoised"], args["sigma"], args["model"]
        s = float(sigma.max())
        if not window(base_model, sigma):
            log.record(s, "outside window")
            return denoised
        xt, why = state.pop("xt", None), None
        if mode == "xt":
            if xt is None or xt["input"] is not args["input"]:
                why = "the xt graph did not run for this evaluation (a node replaced or re-ran the model's forward)"
            elif xt.get("why"):
                why = xt["why"]
            elif not bool(torch.isfinite(denoised).all()):
                why = "the sampler's x̂0 is not finite"
            elif not same_prediction(xt["x0"], denoised):
                why = "a post-CFG node applied before this one changed x̂0 (apply it after Scan Guidance)"
        if mode == "xt" and why is None:
            grad, items = xt["grad"], xt["items"]
            status, kind = "guided", "xt"
        else:
            host.check_interrupt()
            with grad_mode():
                items = x0_gradients(denoised, base_model.process_latent_out, decoder(denoised.device), objective)
                grad = stack_gradients(items, denoised)
            status, kind = ("guided" if mode == "x0" else "x0 fallback"), "x0"
        if grad is None:
            log.record(s, "gated")
            return denoised
        delta = step_scale(sigma, kind).to(denoised) * grad.to(denoised)
        srl_now = max(it.parts["srl"] for it in items if not it.gated)
        log.record(s, status, srl=srl_now, gated_items=sum(it.gated for it in items),
                   step_rms=float(delta.float().pow(2).mean().sqrt()), why=why)
        return denoised - delta

    patched = model.clone()
    patched.set_model_sampler_post_cfg_function(post_cfg)
    patched.add_wrapper_with_key(host.outer_sample, HOOK_KEY, outer_sample)
    if mode == "xt":
        patched.add_wrapper_with_key(host.calc_cond_batch, HOOK_KEY, calc_cond_batch)
    return patched
