"""AQR_Art: the picture kept as far as verified robustness allows (`art.fidelity`): ARTUP's stages plus the
error-correction budget spent on the picture, drawn inside the picture at its own size and framing."""

import json

import comfy.model_management
import comfy.utils
from comfy_api.latest import io, ui

from ..art.fidelity import ArtConfig, art
from ..art.texture import FUNCTION_STYLES, STRIPS
from .inputs import AQRNode, code_or_text
from .tensors import image_batch_to_numpy, numpy_to_image, per_image
from .types import QRCodeType
from .verify import DECODER_CHOICES, DECODERS_TOOLTIP, chosen_decoders

DEFAULTS = ArtConfig()
LEVEL_CHOICES = {"M, Q, H": ("M", "Q", "H"), "M": ("M",), "Q": ("Q",), "H": ("H",)}


class AQRArt(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_Art",
            display_name="QR Art (keep the picture, still scan)",
            category="Aesthetic QR/Generate",
            description="Draw a code into the picture that keeps as much of it as verified robustness allows: "
                        "ARTUP's reshuffle and per-module luminance, plus the error-correction budget — in every "
                        "Reed-Solomon block the codewords that would cost the picture most are left as the "
                        "picture, keeping a spare for the camera. Every result is verified (both decoders, the "
                        "58-view camera suite); the least robust level that passes is kept. The picture keeps its "
                        "size and framing: the code sits inside it, and every pixel outside the code is untouched.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The picture, any size. Every image of a batch gets its own code."),
                io.String.Input("text", default="", multiline=True,
                                tooltip="The message to encode (ignored when a QR_CODE is connected)."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="Take the message from this code (its text; version, level and "
                                         "geometry are chosen anew for the picture)."),
                io.Combo.Input("error_correction", options=list(LEVEL_CHOICES), default="M, Q, H",
                               tooltip="Levels to try: a higher level gives more codewords to spend on the "
                                       "picture but fewer free bits to reshuffle; 'M, Q, H' keeps whichever "
                                       "passes with the picture best kept."),
                io.Int.Input("robustness", default=DEFAULTS.robustness, min=0, max=len(DEFAULTS.levels) - 1,
                             tooltip="The robustness level to start from (0 = the least robust; the search "
                                     "climbs until the camera suite passes). Higher starts more robust and "
                                     "keeps less of the picture; the top level spends no budget (ARTUP)."),
                io.Boolean.Input("budget", default=DEFAULTS.budget,
                                 tooltip="Spend the error-correction budget on the picture (off: every module "
                                         "is forced, as ARTUP does)."),
                io.Float.Input("code_scale", default=DEFAULTS.code_scale, min=0.2, max=1.0, step=0.05,
                               tooltip="Share of the picture's shorter side the code and its strip take (1 = as "
                                       "large as fits)."),
                io.Float.Input("camera_ssr", default=DEFAULTS.camera_ssr, min=0.5, max=1.0, step=0.01,
                               tooltip="Share of camera views each decoder must read for a pass."),
                io.Float.Input("max_seconds", default=0.0, min=0.0, max=600.0, step=1.0,
                               tooltip="Start no new robustness level after this many seconds (0 = no limit); "
                                       "the best attempt so far is returned and its pass says whether it "
                                       "passed."),
                io.Combo.Input("function_style", options=list(FUNCTION_STYLES), default=DEFAULTS.function_style,
                               optional=True,
                               tooltip="How the finders, alignment and format modules and the light strip are "
                                       "drawn, the first style tried at each level: picture = the picture's own "
                                       "texture squeezed dark (≤ 0.3) or light (≥ 0.55), the timing patterns left "
                                       "as the picture; firm = squeezed harder (0.2 / 0.65); crisp = black and "
                                       "white, timing patterns too. If the camera suite refuses picture, firm is "
                                       "tried at the same level before the level rises; crisp is tried only when "
                                       "chosen here."),
                io.Combo.Input("strip", options=list(STRIPS), default=DEFAULTS.strip, optional=True,
                               tooltip="Where the one-module light strip around the code is drawn: finders = "
                                       "only beside the three finders, which need it (the rest of the edge stays "
                                       "the picture); full = all the way round."),
                io.Combo.Input("decoders", options=list(DECODER_CHOICES), default="zxing + wechat", optional=True,
                               tooltip="The decoders that must read the payload, clean and over the camera suite, "
                                       "for a level to pass; more decoders climb to a more robust level." +
                                       DECODERS_TOOLTIP),
                io.Int.Input("polish_iterations", default=DEFAULTS.polish_iterations, min=0, max=500, optional=True,
                             tooltip="Iterations of the SSIM polish: once a level passes, the forced data modules "
                                     "get back the picture's texture where a scanner's blurred sample does not "
                                     "see it, and the result is verified again; kept only if it still passes "
                                     "(0 = no polish)."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The picture with the code drawn in, its own size."),
                QRCodeType.Output(display_name="qr_code", tooltip="The code drawn into the (first) image, its "
                                                                  "geometry placed in the picture: for AQR_Verify."),
                io.Boolean.Output(display_name="pass", tooltip="Whether every image passed the verification."),
                io.String.Output(display_name="report", tooltip="Per image: pass, SSIM to the picture, SSR per "
                                                                "decoder, level, codewords spent per block."),
            ],
        )

    @classmethod
    def execute(cls, image, text, error_correction, robustness, budget, code_scale, camera_ssr, max_seconds,
                qr_code=None, function_style=DEFAULTS.function_style, strip=DEFAULTS.strip,
                decoders="zxing + wechat", polish_iterations=DEFAULTS.polish_iterations) -> io.NodeOutput:
        source = code_or_text(qr_code, text, "AQR_Art", module_px=None, border=1, multiple=1)
        config = ArtConfig(ecls=LEVEL_CHOICES[error_correction], robustness=robustness, budget=budget,
                           code_scale=code_scale, camera_ssr=camera_ssr, max_seconds=max_seconds or None,
                           function_style=function_style, strip=strip,
                           decoders=chosen_decoders(decoders, "AQR_Art"), polish_iterations=polish_iterations)
        pictures = image_batch_to_numpy(image)
        bar = comfy.utils.ProgressBar(len(pictures))
        images, lines, codes, passed = [], [], [], True
        for i, picture in enumerate(pictures):
            def tick(done, total, i=i):
                comfy.model_management.throw_exception_if_processing_interrupted()
                bar.update_absolute(i + done / max(total, 1), len(pictures))

            result = art(picture, source.text, config, progress=tick)
            images.append(result.image.astype("float32") / 255.0)
            codes.append(result.qr)
            passed &= result.passed
            summary = {k: v for k, v in result.to_json().items() if k not in ("attempts", "failures")}
            lines.append(json.dumps(summary))
            bar.update_absolute(i + 1, len(pictures))
        out = numpy_to_image(images)
        report = per_image(lines)
        preview = ui.PreviewImage(out, cls=cls).as_dict()
        return io.NodeOutput(out, codes[0], passed, report, ui={**preview, "text": (report,)})
