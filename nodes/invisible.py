"""AQR_HideCode and AQR_RevealCode: a code hidden invisibly in a picture by a trained CNN, and read back from it
(`invisible.hide`). The weights are the pack's shipped ones or a .safetensors file in ComfyUI/models/aesthetic_qr/."""

import os

import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
from comfy_api.latest import io, ui

from ..invisible.attacks import ATTACKS
from ..invisible.hide import PSNR_RANGE, QUIET_ZONE, hide, reveal
from ..invisible.refine import STEPS
from ..invisible.weights import SHIPPED, load_codec
from ..qr import encode
from ..qr.render import picture_geometry
from .inputs import AQRNode, code_or_text
from .tensors import image_batch_to_numpy, numpy_to_image, per_image
from .types import QRCodeType

# trained codecs of one's own (scripts that call invisible.weights.save_codec); appended, so a folder from
# extra_model_paths.yaml comes first
WEIGHTS_FOLDER = "aesthetic_qr"
folder_paths.add_model_folder_path(WEIGHTS_FOLDER, os.path.join(folder_paths.models_dir, WEIGHTS_FOLDER))
SHIPPED_WEIGHTS = "shipped"
RESIDUAL_GAIN = 10  # the residual output: 0.5 + gain × residual


def weights_input() -> io.Combo.Input:
    files = [f for f in folder_paths.get_filename_list(WEIGHTS_FOLDER) if f.lower().endswith(".safetensors")]
    return io.Combo.Input("weights", options=[SHIPPED_WEIGHTS, *files], default=SHIPPED_WEIGHTS,
                          tooltip=f"The trained network that hides and reveals: 'shipped' ({SHIPPED.name}, comes with "
                                  f"the pack) or a .safetensors file in ComfyUI/models/{WEIGHTS_FOLDER}/. Hiding and "
                                  f"revealing need the same weights.")


def codec_for(weights: str):
    """The codec of a `weights_input` choice."""
    return load_codec(None if weights == SHIPPED_WEIGHTS else
                      folder_paths.get_full_path_or_raise(WEIGHTS_FOLDER, weights))


def interrupted() -> None:
    """ComfyUI's interrupt check, run by hide and reveal between tiles and between carrier shifts."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class AQRHideCode(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_HideCode",
            display_name="QR Hide Code (invisible)",
            category="Aesthetic QR/Invisible",
            description="Hide a QR code invisibly in a picture with a trained CNN: the code, with its quiet zone, is "
                        "centred over the picture as large as fits (whole pixels per module) and the network adds "
                        "a faint residual that carries it, scaled to the PSNR asked for. The result is checked "
                        "with the real codecs: where the payload does not read back after the attacks to survive, "
                        "the residual is refined on this picture (same PSNR) until it does. The picture keeps its "
                        "size. QR Reveal Code reads it back.",
            inputs=[
                io.Image.Input("image", tooltip="The picture, any size. Every image of a batch gets the code."),
                io.String.Input("text", default="", multiline=True,
                                tooltip="The message to hide (ignored when a QR_CODE is connected; level M)."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="The code to hide (its matrix and quiet zone; it is drawn over the whole "
                                         "picture, so its module size is chosen anew)."),
                io.Float.Input("psnr", default=38.0, min=PSNR_RANGE[0], max=PSNR_RANGE[1], step=0.5,
                               tooltip="PSNR of the result to the picture, in dB: higher = more invisible, less "
                                       "robust. 32 survives JPEG 75, blur σ 1 and half size."),
                weights_input(),
                io.String.Input("survive", optional=True, default="jpeg90",
                                tooltip="Comma-separated attacks the payload must read back after, checked with the "
                                        f"real codecs on the result, from: {', '.join(ATTACKS)} (the clean "
                                        f"picture is always checked). E.g. jpeg75,blur1,resize0.5 at 32 dB."),
                io.Int.Input("steps", optional=True, default=STEPS, min=0, max=500,
                             tooltip="Most refinement steps on each picture until it survives them (about 0.4 s "
                                     "each at 512²); it stops as soon as it does. 0: the encoder's residual alone."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The picture with the code hidden in it, its own "
                                                              "size (8-bit values, as saved)."),
                io.Image.Output(display_name="residual_x10",
                                tooltip=f"What was added, made visible: 0.5 + {RESIDUAL_GAIN} × the residual, "
                                        f"clipped."),
                QRCodeType.Output(display_name="qr_code",
                                  tooltip="The code as hidden, its geometry placed in the picture: for AQR_Verify "
                                          "on QR Reveal Code's image."),
                io.String.Output(display_name="report", tooltip="Per image: PSNR and SSIM to the picture, version, "
                                                                "level, module size, and which attacks it reads "
                                                                "back after."),
            ],
        )

    @classmethod
    def execute(cls, image, text, psnr, weights, survive="jpeg90", steps=STEPS, qr_code=None) -> io.NodeOutput:
        source = code_or_text(qr_code, text, "AQR_HideCode", module_px=None, border=QUIET_ZONE, multiple=1)
        pictures = image_batch_to_numpy(image)
        qr = source.qr or encode(source.text, version=source.version, ecl=source.ecl)
        qr = qr.with_geometry(picture_geometry(qr.size, source.border, pictures[0].shape[:2]))
        ticks = steps + 1   # per picture: the encoder's pass, then each refinement step
        bar = comfy.utils.ProgressBar(len(pictures) * ticks)
        hidden, lines = [], []
        codec = codec_for(weights)
        for i, picture in enumerate(pictures):
            def progress(done, _, first=i * ticks + 1):
                bar.update_absolute(first + done, len(pictures) * ticks)

            result = hide(picture, qr, psnr, codec, check=interrupted, survive=survive, steps=steps,
                          progress=progress)
            hidden.append(result)
            lines.append(f"PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.4f}, v{qr.version}-{qr.ecl}, "
                         f"{qr.geometry.module_px} px modules; {result.verdict}; {result.steps} refinement steps")
            bar.update_absolute((i + 1) * ticks, len(pictures) * ticks)
        out = numpy_to_image([h.image.astype(np.float32) / 255 for h in hidden])
        residual = numpy_to_image([np.clip(0.5 + RESIDUAL_GAIN * h.residual, 0, 1) for h in hidden])
        report = per_image(lines)
        return io.NodeOutput(out, residual, qr, report,
                             ui={**ui.PreviewImage(residual, cls=cls).as_dict(), "text": (report,)})


class AQRRevealCode(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_RevealCode",
            display_name="QR Reveal Code (invisible)",
            category="Aesthetic QR/Invisible",
            description="Read a code hidden by QR Hide Code: the network restores the code's image (black modules "
                        "on white), which zxing-cpp decodes; a cropped or moved picture is searched over the "
                        "carrier's shifts. Connect the restored image to AQR_Verify with QR Hide Code's qr_code.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The picture with the hidden code (every image of a batch is read)."),
                weights_input(),
                io.String.Input("expect", optional=True, default="",
                                tooltip="The payload it should carry (optional): the report says whether it "
                                        "matches."),
            ],
            outputs=[
                io.Image.Output(display_name="code_image",
                                tooltip="The restored code, black modules on white, the picture's size: for "
                                        "AQR_Verify."),
                io.String.Output(display_name="text", tooltip="What the (first) image decoded to; empty when "
                                                              "nothing decoded."),
                io.String.Output(display_name="report", tooltip="Per image: the decoded text, the carrier shift the "
                                                                "read needed, and the match with expect."),
            ],
        )

    @classmethod
    def execute(cls, image, weights, expect="") -> io.NodeOutput:
        pictures = image_batch_to_numpy(image)
        bar = comfy.utils.ProgressBar(len(pictures))
        codes, texts, lines = [], [], []
        codec = codec_for(weights)
        for i, picture in enumerate(pictures):
            found = reveal(picture, codec, check=interrupted)
            codes.append(np.repeat(found.code_image[..., None].astype(np.float32) / 255, 3, axis=-1))
            texts.append(found.text or "")
            line = "nothing decoded" if found.text is None else f"decoded {found.text!r}"
            if found.shift != (0, 0):
                line += f" at carrier shift {found.shift}"
            if expect:
                line += "; matches the expected text" if found.text == expect else f"; expected {expect!r}"
            lines.append(line)
            bar.update_absolute(i + 1, len(pictures))
        code_image = numpy_to_image(codes)
        report = per_image(lines)
        return io.NodeOutput(code_image, texts[0], report,
                             ui={**ui.PreviewImage(code_image, cls=cls).as_dict(), "text": (report,)})
