"""AQR_LatentRefine (LATENT → LATENT, IMAGE): SR-MPGD / IDSE refinement of a finished latent through the VAE
decoder until the verifier passes (the loop is `diffusion.latent_refine`)."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
import torch
from comfy_api.latest import io
from PIL import Image

from ..diffusion.decoder import decoder_for
from ..diffusion.guidance import batch_item
from ..diffusion.latent_refine import DEFAULTS, METHODS, LatentRefineConfig, idse_start, refine_latent
from ..losses.adaptive import AdaptiveConfig
from ..losses.srl import VARIANTS as SRL_VARIANTS
from ..losses.srl import srl_variant as srl_config
from ..qr.pixels import to_uint8
from .guidance import SRL_VARIANT_TOOLTIP, error_budget_input
from .inputs import AQRNode, require_code_aspect, require_code_geometry, require_vae_weights
from .perceptual import VGG_FOLDER, vgg_choices, vgg_for_node
from .tensors import image_batch_to_numpy, numpy_to_image
from .types import QRCodeType


def _channels_first(image: torch.Tensor | None, device) -> torch.Tensor | None:
    """IMAGE 1×H×W×C → an ordinary 1×3×H×W tensor (call outside inference mode)."""
    return None if image is None else image.clone().movedim(-1, 1)[:, :3].to(device)


class AQRLatentRefine(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_LatentRefine",
            display_name="QR Latent Refine (SR-MPGD / IDSE)",
            category="Aesthetic QR/Diffusion",
            description="Polish a sampled latent until its picture scans: gradient steps on the latent through the "
                        "VAE decoder against a scanning-robust code loss plus fidelity to the start picture. "
                        "sr_mpgd = DiffQRCoder's post-processing; idse = Face2QR's stage 3 (marker harmonisation, "
                        "adaptive code loss gentle on the face, content loss). Stops as soon as every decoder "
                        "reads and every error-correction block keeps the margin; otherwise returns the best "
                        "iterate.",
            inputs=[
                io.Latent.Input("samples", tooltip="The sampler's output latent (each item of a batch is refined)."),
                io.Vae.Input("vae", tooltip="The VAE of the model that made the latent."),
                QRCodeType.Input("qr_code", tooltip="The code the picture must carry (the one the ControlNet and "
                                                    "guidance used)."),
                io.Combo.Input("method", options=list(METHODS), default="sr_mpgd",
                               tooltip="sr_mpgd: plain gradient descent on SRL + λ·LPIPS (DiffQRCoder). idse: Adam "
                                       "on Face2QR's adaptive code loss + content loss, after marker "
                                       "harmonisation."),
                io.Int.Input("iterations", default=0, min=0, max=5000,
                             tooltip=f"Most steps; 0 = the method's default (sr_mpgd "
                                     f"{DEFAULTS['sr_mpgd']['iterations']}, idse {DEFAULTS['idse']['iterations']})."),
                io.Float.Input("step", default=0.0, min=0.0, max=1e8, step=0.0001,
                               tooltip=f"sr_mpgd: γ of z ← z − γ∇ (default {DEFAULTS['sr_mpgd']['step']:g}); "
                                       f"idse: Adam learning rate (default {DEFAULTS['idse']['step']:g}). "
                                       f"0 = default."),
                io.Float.Input("fidelity_weight", default=-1.0, min=-1.0, max=1000.0, step=0.001,
                               tooltip=f"Weight of staying close to the start picture (sr_mpgd λ "
                                       f"{DEFAULTS['sr_mpgd']['fidelity_weight']:g}, idse "
                                       f"{DEFAULTS['idse']['fidelity_weight']:g}); −1 = default."),
                io.Int.Input("check_every", default=10, min=1, max=500,
                             tooltip="Run the decoders and module analysis every this many steps (~10–30 ms "
                                     "each); the first passing check stops the loop."),
                io.Combo.Input("srl_variant", options=list(SRL_VARIANTS), default="paper_margin",
                               tooltip="sr_mpgd's code loss. " + SRL_VARIANT_TOOLTIP),
                io.Int.Input("margin", default=1, min=0, max=50,
                             tooltip="Spare codeword corrections every RS block must keep to pass (0 = just "
                                     "decodable)."),
                io.Float.Input("marker_lambda", default=0.8, min=0.0, max=1.0, step=0.05,
                               tooltip="idse: Face2QR marker harmonisation λ applied to the start picture."),
                io.Image.Input("reference", optional=True,
                               tooltip="Picture to stay close to (default: the decoded start latent)."),
                io.Image.Input("blueprint", optional=True,
                               tooltip="idse: the target blueprint I_b (AQR_HalftoneBlueprint); default the plain "
                                       "code."),
                io.Mask.Input("face_mask", optional=True,
                              tooltip="idse: the face region (AQR_FaceMask); its modules get σ_f / w_f."),
                io.Combo.Input("vgg_model", options=vgg_choices(), default="none", optional=True,
                               tooltip=f"Weights in ComfyUI/models/{VGG_FOLDER}/: VGG16 for sr_mpgd's LPIPS, "
                                       f"VGG19 for idse's content loss; none uses SSIM + L2."),
                error_budget_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="samples", tooltip="The refined latent (the best iterate)."),
                io.Image.Output(display_name="image", tooltip="Its decoded picture."),
                io.String.Output(display_name="report", tooltip="Iterations, worst-block margin, errors per block, "
                                                                "decoders that read."),
            ],
        )

    @classmethod
    def execute(cls, samples, vae, qr_code, method, iterations, step, fidelity_weight, check_every, srl_variant,
                margin, marker_lambda, reference=None, blueprint=None, face_mask=None,
                vgg_model="none", error_budget=0.0) -> io.NodeOutput:
        require_code_geometry("AQR_LatentRefine", qr_code)
        require_vae_weights("AQR_LatentRefine", vae)
        require_code_aspect("AQR_LatentRefine", qr_code, reference=reference, blueprint=blueprint,
                            face_mask=face_mask)
        latents = samples["samples"]
        if latents.dim() != 4:
            raise ValueError(f"AQR_LatentRefine: expected an image latent [batch, channels, h, w], got "
                             f"{tuple(latents.shape)} (video latents are not supported)")
        t = qr_code.correctable()   # the budget never eats the margin the stop rule asks for
        budget = min(error_budget, max(0, t - margin) / t) if t else 0.0
        config = LatentRefineConfig(method=method, iterations=iterations or None, step=step or None,
                                    fidelity_weight=None if fidelity_weight < 0 else fidelity_weight,
                                    check_every=check_every, margin=margin,
                                    srl=srl_config(srl_variant, budget=budget), adaptive=AdaptiveConfig(budget=budget))
        total = int(config.resolved("iterations"))
        bar = comfy.utils.ProgressBar(total * latents.shape[0])
        device = vae.device
        with torch.inference_mode(False):  # ordinary copies of everything the gradient touches
            decoder = decoder_for(vae.first_stage_model, device, "auto", device.type == "cuda")
            vgg = vgg_for_node(vgg_model, "vgg16" if method == "sr_mpgd" else "vgg19")
            vgg = None if vgg is None else vgg.to(device)
        out_latents, images, reports = [], [], []
        for i in range(latents.shape[0]):
            z0, ref = latents[i:i + 1], batch_item(reference, i)
            if method == "idse":  # ComfyUI's own decode/encode, in its inference mode
                harmonised = idse_start(image_batch_to_numpy(vae.decode(z0))[0], qr_code, marker_lambda)
                z0 = vae.encode(numpy_to_image([harmonised]))
                ref = numpy_to_image([harmonised]) if ref is None else ref

            def tick(it, n, preview, offset=i * total):
                comfy.model_management.throw_exception_if_processing_interrupted()
                shown = None if preview is None else ("JPEG", Image.fromarray(to_uint8(preview)), 512)
                bar.update_absolute(offset + it, total * latents.shape[0], shown)

            with torch.inference_mode(False):
                face = batch_item(face_mask, i)
                result = refine_latent(z0.clone().to(device), decoder, qr_code, config,
                                       reference=_channels_first(ref, device),
                                       blueprint=_channels_first(batch_item(blueprint, i), device),
                                       face=None if face is None else face[0].clone().to(device), vgg=vgg,
                                       progress=tick)
            out_latents.append(result.latent.to(latents.device, latents.dtype))
            images.append(result.image)
            reports.append(f"item {i}: {result.summary()}")
        report = "\n".join(reports)
        out = dict(samples, samples=torch.cat(out_latents))
        return io.NodeOutput(out, numpy_to_image(images), report, ui={"text": (report,)})
