"""AQR_ScanGuidance (MODEL → MODEL): DiffQRCoder's scanning-robust perceptual guidance inside any ComfyUI sampler,
and AQR_GuidanceReport, which says at which steps it ran.

The hooks are `diffusion.hooks`; this node hands them ComfyUI's CFG, interrupt check and wrapper keys.
"""

from __future__ import annotations

import logging

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import torch
from comfy_api.latest import io

from ..diffusion.decoder import PRECISIONS
from ..diffusion.guidance import MODES, GuidanceConfig, ScanObjective
from ..diffusion.hooks import GuidanceLog, SamplerHost, install_guidance
from ..losses.srl import VARIANTS as SRL_VARIANTS
from ..losses.srl import srl_variant as srl_config
from .inputs import AQRNode, require_code_aspect, require_code_geometry, require_vae_weights
from .perceptual import VGG_FOLDER, vgg_choices, vgg_for_node
from .types import QRCodeType

GuidanceLogType = io.Custom("AQR_GUIDANCE_LOG")
COMFY_SAMPLER = SamplerHost(
    cfg_function=comfy.samplers.cfg_function,
    check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
    outer_sample=comfy.patcher_extension.WrappersMP.OUTER_SAMPLE,
    calc_cond_batch=comfy.patcher_extension.WrappersMP.CALC_COND_BATCH,
)
SRL_VARIANT_TOOLTIP = ("paper_margin: the paper's SRL (σ scaled with the module, mean over wrong modules) with a "
                       "margin: dark must read ≤ 0.45 and light ≥ 0.65. paper: threshold ½ (leaves modules grey). "
                       "public_code: DiffQRCoder's released code (that band, σ 1.5 px, mean over all modules).")


def error_budget_input() -> io.Float.Input:
    """The code loss's error-correction budget (`losses.budget`), shared by Scan Guidance and Latent Refine."""
    return io.Float.Input("error_budget", default=0.0, min=0.0, max=1.0, step=0.05, optional=True,
                          tooltip="Spend the error correction on the picture: per RS block, up to this share of "
                                  "the codewords it can correct may stay wrong (the costliest to fix), and their "
                                  "modules get no code-loss gradient. 0 = off (the papers' losses); 0.75 leaves a "
                                  "quarter of each block as spare for the camera, as AQR_Art does.")


class AQRScanGuidance(AQRNode):
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
                error_budget_input(),
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
                face_mask=None, face_code_weight=0.25, vgg_model="none", error_budget=0.0) -> io.NodeOutput:
        require_code_geometry("AQR_ScanGuidance", qr_code)
        if start_percent > end_percent:
            raise ValueError(f"AQR_ScanGuidance: start_percent ({start_percent}) is after end_percent "
                             f"({end_percent})")
        require_vae_weights("AQR_ScanGuidance", vae)
        require_code_aspect("AQR_ScanGuidance", qr_code, reference=reference, face_mask=face_mask)
        config = GuidanceConfig(code_scale=code_scale, perceptual_scale=perceptual_scale,
                                srl=srl_config(srl_variant, function_weight=function_weight, budget=error_budget),
                                face_code_weight=face_code_weight, gate=ecc_gate)
        with torch.inference_mode(False):  # everything the hooks capture must be an ordinary tensor
            ref = None if reference is None else reference.clone().movedim(-1, 1)[:, :3]
            mask = None if face_mask is None else face_mask.clone()
            vgg = vgg_for_node(vgg_model) if ref is not None and perceptual_scale > 0 else None
            objective = ScanObjective(qr_code, config, reference=ref, face_mask=mask, vgg=vgg)
        checkpointing = {"auto": None, "on": True, "off": False}[gradient_checkpointing]
        log = GuidanceLog()
        patched = install_guidance(model, vae, objective, mode, start_percent, end_percent, decoder_precision,
                                   checkpointing, log, COMFY_SAMPLER)
        logging.info("AQR_ScanGuidance: %s mode, λ_code %g, λ_perc %g, window %.2f–%.2f", mode, code_scale,
                     perceptual_scale, start_percent, end_percent)
        return io.NodeOutput(patched, log)


class AQRGuidanceReport(AQRNode):
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
        if not isinstance(guidance_log, GuidanceLog):
            raise ValueError(f"AQR_GuidanceReport: guidance_log must be AQR_ScanGuidance's guidance_log output, "
                             f"got {type(guidance_log).__name__}")
        report = guidance_log.summary()
        return io.NodeOutput(samples, report, ui={"text": (report,)})
