"""AQR_ScanGuidance (MODEL → MODEL): DiffQRCoder's scanning-robust perceptual guidance inside any ComfyUI sampler,
and AQR_GuidanceReport, which says at which steps it ran.

The maths is in `losses.guidance`; this module wires it into ComfyUI's sampling hooks:
* a post-CFG function edits the denoised prediction x̂0 (every sampler derives its step from it);
* in ``xt`` mode a CALC_COND_BATCH wrapper runs the model's batched forward (UNet and ControlNets) with a graph,
  on ordinary clones of their weights (`losses.frozen.plain_parameters`), redoes the guider's CFG (`cfg_result`),
  and back-propagates ∇_{x̂0} L to the noisy latent there, so no graph outlives the call; the post-CFG function
  applies the step, after checking that the sampler's x̂0 is the one the graph computed (else it falls back to
  ``x0`` for that step and says why);
* an OUTER_SAMPLE wrapper starts a new entry of the guidance log for every sampling run.
Hooks are closures (ModelPatcher.clone deep-copies bound methods with their objects, VAE included).
"""

from __future__ import annotations

import logging
import threading

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import torch
from comfy_api.latest import io

from ..losses.decoder import PRECISIONS, decoder_for
from ..losses.frozen import grad_mode, plain_parameters, reachable_modules
from ..losses.guidance import MODES, GuidanceConfig, ScanObjective, stack_gradients, step_scale, x0_gradients
from ..losses.srl import VARIANTS as SRL_VARIANTS
from ..losses.srl import srl_variant as srl_config
from .perceptual import VGG_FOLDER, vgg_choices, vgg_for_node
from .types import QRCodeType

GuidanceLogType = io.Custom("AQR_GUIDANCE_LOG")
HOOK_KEY = "aesthetic_qr_scan_guidance"
SRL_VARIANT_TOOLTIP = ("paper_margin: the paper's SRL (σ scaled with the module, mean over wrong modules) with a "
                       "margin: dark must read ≤ 0.45 and light ≥ 0.65. paper: threshold ½ (leaves modules grey). "
                       "public_code: DiffQRCoder's released code (that band, σ 1.5 px, mean over all modules).")


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


def cfg_result(base_model, conds, out, x, timestep, scale, model_options):
    """What ComfyUI's cfg_function makes of the batched predictions `out`, as a differentiable function of them,
    with the model's sampler_cfg_function (RescaleCFG, …), which must be a pure function of its inputs. Post-CFG
    functions are left out: ours applies the step, and others (SAG, PAG) run the model again."""
    options = {k: v for k, v in model_options.items() if k != "sampler_post_cfg_function"}
    return comfy.samplers.cfg_function(base_model, out[0], out[1], scale, x, timestep, model_options=options,
                                       cond=conds[0], uncond=conds[1])


def same_prediction(graph_x0: torch.Tensor, sampler_x0: torch.Tensor) -> bool:
    """The x̂0 the xt graph computed is the one the sampler is about to use (no post-CFG node ran before ours)."""
    return graph_x0.shape == sampler_x0.shape and torch.allclose(graph_x0.float(), sampler_x0.float(),
                                                                 rtol=1e-3, atol=1e-4)


def install_guidance(model, vae, objective: ScanObjective, mode: str, start_percent: float, end_percent: float,
                     precision: str, checkpointing: bool | None, log: GuidanceLog):
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
        comfy.model_management.throw_exception_if_processing_interrupted()
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
            guided = cfg_result(base_model, conds, out, x_graph, timestep.clone(), state["cfg"], model_options)
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
            comfy.model_management.throw_exception_if_processing_interrupted()
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
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, HOOK_KEY, outer_sample)
    if mode == "xt":
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, HOOK_KEY, calc_cond_batch)
    return patched


class AQRScanGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_ScanGuidance",
            display_name="QR Scan Guidance (SRPG)",
            category="Aesthetic QR/Diffusion",
            description="Steer any sampler towards a picture that scans: at every step inside the window, the "
                        "predicted image is decoded and DiffQRCoder's scanning-robust loss against the target "
                        "code (plus fidelity to an optional reference picture) pushes the prediction. Connect the "
                        "MODEL output to KSampler / SamplerCustom; chain AQR_GuidanceReport after the sampler to "
                        "see at which steps it ran.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model to guide (SD1.5, SDXL, … with any "
                                                "ControlNet applied to the conditioning)."),
                io.Vae.Input("vae", tooltip="The VAE that decodes this model's latents (a private fp32 copy of its "
                                            "decoder is made once and cached)."),
                QRCodeType.Input("qr_code", tooltip="The target code ỹ, usually the reshuffled one that follows "
                                                    "the stage-1 picture (AQR_Reshuffle). The latent must be its "
                                                    "blueprint's size or a uniform scale of it."),
                io.Combo.Input("mode", options=list(MODES), default="x0",
                               tooltip="x0: gradient through the VAE decoder only (cheap, any GPU). xt: the "
                                       "paper's SRPG, gradient through the UNet and ControlNet as well (exact, "
                                       "about 2–3× an unguided step, more memory)."),
                io.Float.Input("code_scale", default=500.0, min=0.0, max=100000.0, step=10.0,
                               tooltip="λ1, weight of the scanning-robust loss (DiffQRCoder: 500)."),
                io.Float.Input("perceptual_scale", default=2.0, min=0.0, max=1000.0, step=0.1,
                               tooltip="λ2, weight of staying close to the reference picture (DiffQRCoder: 2; "
                                       "paper 3). Needs the reference input."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Guide from this point of the schedule (0 = first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Guide until this point of the schedule (1 = last step)."),
                io.Boolean.Input("ecc_gate", default=True,
                                 tooltip="Skip a step when the predicted picture already reads with every error-"
                                         "correction block within capacity (paper, Appendix C)."),
                io.Combo.Input("srl_variant", options=list(SRL_VARIANTS), default="paper_margin",
                               tooltip=SRL_VARIANT_TOOLTIP),
                io.Float.Input("function_weight", default=1.0, min=0.0, max=20.0, step=0.5,
                               tooltip="Extra weight on finder/timing/format modules (1 = paper; 4 helps "
                                       "detection)."),
                io.Combo.Input("decoder_precision", options=list(PRECISIONS), default="auto",
                               tooltip="Autocast of the guidance decoder on CUDA: auto = bf16 where supported, "
                                       "else fp16. CPU always runs fp32."),
                io.Combo.Input("gradient_checkpointing", options=["auto", "on", "off"], default="auto",
                               tooltip="Recompute decoder blocks in the backward pass: much less memory, ~30 % "
                                       "slower. auto = on for CUDA."),
                io.Image.Input("reference", optional=True,
                               tooltip="Picture to stay close to (stage-1 image in DiffQRCoder), any size with the "
                                       "code's aspect ratio."),
                io.Mask.Input("face_mask", optional=True,
                              tooltip="Region to protect (AQR_FaceMask): its modules get face_code_weight in the "
                                      "code loss."),
                io.Float.Input("face_code_weight", default=0.25, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="Code-loss weight on masked modules (1 = no protection)."),
                io.Combo.Input("vgg_model", options=vgg_choices(), default="none", optional=True,
                               tooltip=f"VGG16 weights in ComfyUI/models/{VGG_FOLDER}/ for DiffQRCoder's "
                                       f"perceptual term; none uses SSIM + L2."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The guided model: use it in the sampler."),
                GuidanceLogType.Output(display_name="guidance_log",
                                       tooltip="Connect to AQR_GuidanceReport to see which steps were guided."),
            ],
        )

    @classmethod
    def execute(cls, model, vae, qr_code, mode, code_scale, perceptual_scale, start_percent, end_percent, ecc_gate,
                srl_variant, function_weight, decoder_precision, gradient_checkpointing, reference=None,
                face_mask=None, face_code_weight=0.25, vgg_model="none") -> io.NodeOutput:
        if qr_code.geometry is None:
            raise ValueError("AQR_ScanGuidance: the QR_CODE has no geometry; take it from AQR_Encode or "
                             "AQR_Reshuffle")
        if start_percent > end_percent:
            raise ValueError(f"AQR_ScanGuidance: start_percent ({start_percent}) is after end_percent "
                             f"({end_percent})")
        if getattr(vae, "first_stage_model", None) is None:
            raise ValueError("AQR_ScanGuidance: this VAE has no weights (the checkpoint holds no VAE?): load one "
                             "with VAELoader")
        config = GuidanceConfig(code_scale=code_scale, perceptual_scale=perceptual_scale,
                                srl=srl_config(srl_variant, function_weight=function_weight),
                                face_code_weight=face_code_weight, gate=ecc_gate)
        with torch.inference_mode(False):  # everything the hooks capture must be an ordinary tensor
            ref = None if reference is None else reference.clone().movedim(-1, 1)[:, :3]
            mask = None if face_mask is None else face_mask.clone()
            vgg = vgg_for_node(vgg_model) if ref is not None and perceptual_scale > 0 else None
            objective = ScanObjective(qr_code, config, reference=ref, face_mask=mask, vgg=vgg)
        checkpointing = {"auto": None, "on": True, "off": False}[gradient_checkpointing]
        log = GuidanceLog()
        patched = install_guidance(model, vae, objective, mode, start_percent, end_percent, decoder_precision,
                                   checkpointing, log)
        logging.info("AQR_ScanGuidance: %s mode, λ_code %g, λ_perc %g, window %.2f–%.2f", mode, code_scale,
                     perceptual_scale, start_percent, end_percent)
        return io.NodeOutput(patched, log)


class AQRGuidanceReport(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_GuidanceReport",
            display_name="QR Guidance Report",
            category="Aesthetic QR/Diffusion",
            description="After sampling, report at which steps AQR_ScanGuidance guided, was gated (the prediction "
                        "already read) or was outside its window, and how the scanning-robust loss moved. The "
                        "latent passes through unchanged.",
            inputs=[
                GuidanceLogType.Input("guidance_log", tooltip="From AQR_ScanGuidance."),
                io.Latent.Input("samples", tooltip="The sampler's output (so this runs after sampling); passed "
                                                   "through unchanged."),
            ],
            outputs=[
                io.Latent.Output(display_name="samples", tooltip="The same latent."),
                io.String.Output(display_name="report", tooltip="Steps guided / gated / outside the window."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, guidance_log, samples) -> io.NodeOutput:
        report = guidance_log.summary()
        return io.NodeOutput(samples, report, ui={"text": (report,)})
