"""AQR_ScanSampler: sample with ComfyUI's own sampling, verify, and on failure try again — next seed, stronger scan
guidance, then refinement of the best latent — until an attempt verifies (`diffusion.scan_sampler`)."""

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io, ui

from ..diffusion.decoder import decoder_for
from ..diffusion.guidance import GuidanceConfig, ScanObjective
from ..diffusion.hooks import GuidanceLog, install_guidance
from ..diffusion.latent_refine import LatentRefineConfig, refine_latent
from ..diffusion.scan_sampler import POLICIES, plans, sample_until_scans
from ..scan.pick import judge
from .guidance import COMFY_SAMPLER
from .inputs import AQRNode, require_code_geometry, require_vae_weights
from .tensors import image_batch_to_numpy, numpy_to_image
from .types import QRCodeType
from .verify import pass_criteria, pass_inputs


class AQRScanSampler(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_ScanSampler",
            display_name="QR Scan Sampler (generate until it scans)",
            category="Aesthetic QR/Diffusion",
            description="A KSampler that checks its result: each attempt samples with ComfyUI's own sampling, "
                        "decodes the picture and verifies it against the code (decoders, RS margin, optionally "
                        "the camera suite). On failure the policy changes one thing — the next seed, then scan "
                        "guidance of growing strength, then refinement of the best latent — until an attempt "
                        "verifies or the attempts run out. Returns the best attempt and a report of every one.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (with any ControlNet in the conditioning)."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning, as for KSampler."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, as for KSampler."),
                io.Latent.Input("latent_image", tooltip="The latent to denoise: one image, the code's blueprint "
                                                        "size (or a uniform scale of it)."),
                io.Vae.Input("vae", tooltip="Decodes each attempt for verification (and refines, if the policy "
                                            "does)."),
                QRCodeType.Input("qr_code", tooltip="The code every attempt must carry."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The first attempt's seed; later attempts count up from it."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps per attempt."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS),
                               tooltip="The sampling algorithm."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS),
                               tooltip="The noise schedule."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the latent is replaced by noise (1 = all)."),
                io.Int.Input("attempts", default=4, min=1, max=64,
                             tooltip="The most attempts to make; the loop stops at the first that verifies."),
                io.Combo.Input("policy", options=list(POLICIES), default=POLICIES[0],
                               tooltip="What changes after a failed attempt: 'seeds' only; 'seeds, then "
                                       "guidance' (two plain seeds, then scan guidance doubling each time); "
                                       "'seeds, guidance, then refine' also refines the best latent at the "
                                       "last attempt."),
                io.Float.Input("guidance_scale", default=500.0, min=0.0, max=100000.0, step=10.0,
                               tooltip="Scan guidance's code_scale (λ1, DiffQRCoder 500) at the first guided "
                                       "attempt; doubled at each later one."),
                *pass_inputs("each attempt", suite=False),
                io.Int.Input("refine_iterations", default=100, min=1, max=2000,
                             tooltip="Iterations of the refinement attempt (SR-MPGD; stops when it verifies)."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The best attempt's latent."),
                io.Image.Output(display_name="image", tooltip="The best attempt, decoded."),
                io.Boolean.Output(display_name="pass", tooltip="Whether the best attempt verifies."),
                io.String.Output(display_name="report", tooltip="One line per attempt: seed, what changed, "
                                                                "verdict."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, qr_code, seed, steps, cfg, sampler_name,
                scheduler, denoise, attempts, policy, guidance_scale, decoders, suite, min_ssr, margin,
                refine_iterations) -> io.NodeOutput:
        require_code_geometry("AQR_ScanSampler", qr_code)
        require_vae_weights("AQR_ScanSampler", vae)
        if latent_image["samples"].dim() != 4 or latent_image["samples"].shape[0] != 1:
            raise ValueError(f"AQR_ScanSampler: one image latent at a time, got shape "
                             f"{tuple(latent_image['samples'].shape)} (for a batch, use a KSampler and "
                             f"AQR_PickBest)")
        try:
            attempt_plans = plans(policy, attempts, seed, guidance_scale)
        except ValueError as err:
            raise ValueError(f"AQR_ScanSampler: {err}") from None
        total = len(attempt_plans) * steps
        bar = comfy.utils.ProgressBar(total)
        previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        done = {"attempts": 0}

        def sample(plan):
            guided = model
            if plan.guidance > 0:
                with torch.inference_mode(False):
                    objective = ScanObjective(qr_code, GuidanceConfig(code_scale=plan.guidance))
                guided = install_guidance(model, vae, objective, "x0", 0.0, 1.0, "auto", None, GuidanceLog(),
                                          COMFY_SAMPLER)
            latent = comfy.sample.fix_empty_latent_channels(guided, latent_image["samples"])
            noise = comfy.sample.prepare_noise(latent, plan.seed, latent_image.get("batch_index"))
            offset = done["attempts"] * steps

            def callback(step, x0, x, total_steps):
                shown = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer else None
                bar.update_absolute(offset + min(step + 1, steps), total, shown)

            return comfy.sample.sample(guided, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                       latent, denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                                       callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                                       seed=plan.seed)

        def decode(latent):
            return image_batch_to_numpy(vae.decode(latent))[0]

        criteria = pass_criteria(decoders, suite, min_ssr, margin, "AQR_ScanSampler")

        def check(image, number):
            return judge(image, number, qr_code, **criteria)

        def refine(latent):
            device = vae.device
            with torch.inference_mode(False):
                decoder = decoder_for(vae.first_stage_model, device, "auto", device.type == "cuda")
                config = LatentRefineConfig(iterations=refine_iterations, margin=margin,
                                            decoders=criteria["decoders"])
                result = refine_latent(latent.clone().to(device), decoder, qr_code, config,
                                       progress=lambda *_: comfy.model_management.
                                       throw_exception_if_processing_interrupted())
            return result.latent.to(latent.device, latent.dtype)

        def progress(number, count):
            done["attempts"] = number
            bar.update_absolute(number * steps, total)

        result = sample_until_scans(attempt_plans, sample=sample, decode=decode, check=check, refine=refine,
                                    check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
                                    progress=progress)
        report = result.report()
        out = {**latent_image, "samples": result.latent}
        image = numpy_to_image([result.image])
        preview = ui.PreviewImage(image, cls=cls).as_dict()
        return io.NodeOutput(out, image, result.passed, report, ui={**preview, "text": (report,)})
