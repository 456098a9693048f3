"""AQR_PixelRefine: model-free picture → scannable picture, by optimising pixels against the scanning-robust loss
under simulated camera degradations until the verifier's camera suite passes."""

import comfy.utils
import numpy as np
from comfy_api.latest import io

from ..art.pixel_refine import PixelRefineConfig, pixel_refine
from ..qr.pixels import to_uint8
from .inputs import AQRNode, require_code_geometry
from .perceptual import VGG_FOLDER, vgg_choices, vgg_for_node
from .tensors import image_batch_to_numpy, numpy_to_image
from .types import QRCodeType


class AQRPixelRefine(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_PixelRefine",
            display_name="QR Pixel Refine (picture → scannable)",
            category="Aesthetic QR/Refine",
            description="Fuse a picture with a code without any diffusion model: the code's markers are "
                        "harmonised, then the picture's luminance is optimised (colours kept) against DiffQRCoder's "
                        "scanning-robust loss averaged over random blur, downscaling, exposure and noise, plus "
                        "fidelity to the picture. Every few steps the camera suite runs; it stops as soon as "
                        "every decoder reaches the target scan success rate.",
            inputs=[
                io.Image.Input("image", tooltip="The picture (each image of a batch is refined); cover-fitted to "
                                                "the code's geometry."),
                QRCodeType.Input("qr_code", tooltip="The code to embed, ideally reshuffled to this picture "
                                                    "(AQR_Reshuffle) so fewer modules must change."),
                io.Int.Input("iterations", default=400, min=1, max=5000,
                             tooltip="Most Adam steps; it usually stops earlier, when the suite passes."),
                io.Float.Input("lr", default=0.01, min=0.0001, max=0.5, step=0.001,
                               tooltip="Adam learning rate on the luminance (0..1)."),
                io.Float.Input("fidelity_weight", default=0.5, min=0.0, max=100.0, step=0.05,
                               tooltip="Weight of staying close to the picture (SSIM + L2, or VGG features "
                                       "when a VGG model is chosen). Higher = prettier, slower to scan."),
                io.Int.Input("eot_samples", default=2, min=1, max=16,
                             tooltip="Random camera degradations averaged per step (robustness vs speed)."),
                io.Float.Input("target_ssr", default=0.95, min=0.0, max=1.0, step=0.01,
                               tooltip="Stop when every decoder reads at least this share of the camera views."),
                io.Int.Input("check_every", default=25, min=1, max=1000,
                             tooltip="Run the camera suite every this many steps (each check ~0.25 s)."),
                io.Float.Input("marker_lambda", default=0.8, min=0.0, max=1.0, step=0.05,
                               tooltip="Face2QR marker harmonisation strength for finder/alignment patterns "
                                       "(0 = untouched, 1 = pure black/white)."),
                io.Combo.Input("vgg_model", options=vgg_choices(),
                               default="none",
                               tooltip=f"Optional VGG16 weights (torchvision's vgg16-397923af.pth) in "
                                       f"ComfyUI/models/{VGG_FOLDER}/ for a perceptual fidelity term; none uses "
                                       f"SSIM + L2."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the random degradations."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The refined picture (the most robust iterate)."),
                io.String.Output(display_name="report", tooltip="Steps run, SSR per check, and the final "
                                                                "verification with the full suite."),
            ],
        )

    @classmethod
    def execute(cls, image, qr_code, iterations, lr, fidelity_weight, eot_samples, target_ssr, check_every,
                marker_lambda, vgg_model, seed) -> io.NodeOutput:
        require_code_geometry("AQR_PixelRefine", qr_code)
        vgg = vgg_for_node(vgg_model)
        cfg = PixelRefineConfig(iterations=iterations, lr=lr, fidelity_weight=fidelity_weight,
                                eot_samples=eot_samples, target_ssr=target_ssr, check_every=check_every,
                                marker_lambda=marker_lambda, seed=seed)
        pictures = image_batch_to_numpy(image)
        bar = comfy.utils.ProgressBar(iterations * len(pictures))
        outputs, reports = [], []
        for i, picture in enumerate(pictures):
            def tick(step, total, preview, offset=i * iterations):
                shown = None if preview is None else ("JPEG", _to_pil(preview), 512)
                bar.update_absolute(offset + step, iterations * len(pictures), shown)

            result = pixel_refine(picture, qr_code, cfg, vgg=vgg, progress=tick)
            outputs.append(result.image)
            steps = ", ".join(f"{h['iteration']}: " + "/".join(f"{100 * v:.0f}%" for v in h["ssr"].values())
                              for h in result.history)
            reports.append(f"{result.iterations} steps in {result.seconds:.1f} s "
                           f"({'target reached' if result.stopped_early else 'best iterate kept'}); camera SSR "
                           f"per check: {steps}\n{result.report.to_text()}")
        report = "\n\n".join(reports)
        return io.NodeOutput(numpy_to_image(outputs), report, ui={"text": (report,)})


def _to_pil(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(to_uint8(array))
