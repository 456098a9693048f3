"""AQR_Encode: text → blueprint image, function-pattern mask and the layout-aware QR_CODE object."""

import json

from comfy_api.latest import io, ui

from ..qr import encode
from ..qr.render import STYLES, module_image, render
from .inputs import AQRNode
from .tensors import numpy_to_image, numpy_to_mask
from .types import QRCodeType

SIZE_MULTIPLES = {"none": 1, "8 (SD latent)": 8, "64": 64}


class AQREncode(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_Encode",
            display_name="QR Encode (layout-aware)",
            category="Aesthetic QR/Blueprint",
            description="Encode a message as a QR Model 2 code and render it as a blueprint. The QR_CODE output "
                        "carries the layout (function patterns, which module holds which bit of which RS block) "
                        "and the pixel geometry, so downstream nodes never guess it from pixels.",
            inputs=[
                io.String.Input("text", multiline=True, default="https://github.com/aesthetic-qr",
                                tooltip="The message. Digits-only or upper-case alphanumeric text packs denser; "
                                        "anything else is stored as UTF-8 bytes."),
                io.Int.Input("version", default=0, min=0, max=40,
                             tooltip="QR version 1-40 (side = 17 + 4·version modules). 0 picks the smallest that "
                                     "fits; an explicit version that is too small is an error that names the "
                                     "smallest that fits."),
                io.Combo.Input("ecl", options=["L", "M", "Q", "H"], default="M",
                               tooltip="Error-correction level: L 7 %, M 15 %, Q 25 %, H 30 % of codewords "
                                       "recoverable. Higher survives more artistic damage but leaves fewer free "
                                       "modules for reshuffling."),
                io.Combo.Input("mask", options=["auto"] + [str(m) for m in range(8)], default="auto",
                               tooltip="Mask pattern 0-7; auto takes the one with the lowest standard penalty."),
                io.Int.Input("module_px", default=16, min=1, max=128,
                             tooltip="Pixels per module (an integer, so modules sit on an exact grid)."),
                io.Int.Input("border", default=4, min=0, max=32,
                             tooltip="Quiet zone around the code, in modules (the standard asks for 4)."),
                io.Combo.Input("style", options=list(STYLES), default="plain",
                               tooltip="plain: full squares. centre-square: only the centred third of each data "
                                       "module is black/white on grey (what QR Code Monster expects). dots: round "
                                       "dots. Finder, timing and alignment patterns are always drawn whole."),
                io.Combo.Input("size_multiple", options=list(SIZE_MULTIPLES), default="8 (SD latent)",
                               tooltip="Widen the quiet zone evenly so the image side is a multiple of this "
                                       "(8 for Stable Diffusion latents)."),
            ],
            outputs=[
                io.Image.Output(display_name="blueprint", tooltip="The rendered code (RGB, dark = 0)."),
                io.Mask.Output(display_name="function_mask",
                               tooltip="1 on finder, separator, timing, alignment, format, version modules."),
                QRCodeType.Output(display_name="qr_code",
                                  tooltip="The code with its layout and geometry, for reshuffle, losses, verify."),
                io.String.Output(display_name="info", tooltip="Version, level, mask, size and free bits as JSON."),
            ],
        )

    @classmethod
    def execute(cls, text, version, ecl, mask, module_px, border, style, size_multiple) -> io.NodeOutput:
        qr = encode(text, version=version or None, ecl=ecl, mask=None if mask == "auto" else int(mask))
        image, geo = render(qr, module_px=module_px, border=border, style=style,
                            multiple=SIZE_MULTIPLES[size_multiple])
        qr = qr.with_geometry(geo)
        function_mask = module_image(qr.function_mask.astype("float32"), qr, geo, outside=0.0)
        info = json.dumps(qr.summary(), ensure_ascii=False)
        blueprint = numpy_to_image([image])
        preview = ui.PreviewImage(blueprint, cls=cls).as_dict()  # the blueprint shown on the node
        return io.NodeOutput(blueprint, numpy_to_mask([function_mask]), qr, info, ui={**preview, "text": (info,)})
