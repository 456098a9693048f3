"""AQR_Reshuffle: rearrange a code's free bits so its modules follow a picture (QArt / ARTUP / Face2QR IDRS)."""

import json

import comfy.utils
from comfy_api.latest import io

from ..art.follow import PRIORITY_MODES, follow_picture
from ..qr.pixels import require_same_aspect
from ..qr.render import STYLES, module_image, render
from .inputs import AQRNode, code_or_text
from .tensors import image_batch_to_numpy, mask_batch_to_numpy, numpy_to_image
from .types import QRCodeType

TEXT_MODE_GEOMETRY = {"module_px": 16, "border": 4, "multiple": 8}  # also for a connected code without geometry


class AQRReshuffle(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_Reshuffle",
            display_name="QR Reshuffle to Picture",
            category="Aesthetic QR/Blueprint",
            description="Keep the message, change the code: the bits after the message (and, in URL-fragment "
                        "mode, extra digits) are rearranged by GF(2) elimination over each Reed-Solomon block so "
                        "that as many modules as possible take the picture's dark/light value, most important "
                        "modules first. The result decodes to the same payload with every decoder.",
            inputs=[
                io.Image.Input("image", tooltip="Target picture (the first image of a batch); any size, it is "
                                                 "cover-fitted to the code's geometry."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="Code to reshuffle (text, minimum version, level, geometry). Without it "
                                         "the text below is encoded at 16 px/module with a 4-module border."),
                io.String.Input("text", optional=True, default="", multiline=True,
                                tooltip="Message to encode when no QR_CODE is connected."),
                io.Combo.Input("ecl", options=["from code", "L", "M", "Q", "H"], default="from code",
                               tooltip="Error-correction level. Lower levels leave more free modules to follow "
                                       "the picture; 'from code' keeps the connected code's level (M for text)."),
                io.Boolean.Input("mask_search", default=True,
                                 tooltip="Try all eight masks and keep the one whose result matches the picture "
                                         "best; off keeps the code's mask."),
                io.Int.Input("extra_versions", default=0, min=0, max=10,
                             tooltip="Also try this many larger versions: more free bits, more matching "
                                     "modules, smaller modules."),
                io.Combo.Input("priority", options=list(PRIORITY_MODES) + ["map"], default="qart",
                               tooltip="Which modules get the picture's value first. qart: local contrast. "
                                       "artup: 0.67 edges + 0.23 saliency + 0.10 centre. uniform: no "
                                       "preference. map: the priority_map mask input."),
                io.Mask.Input("priority_map", optional=True,
                              tooltip="With priority = map: brighter = more important (picture space)."),
                io.Mask.Input("fixed_mask", optional=True,
                              tooltip="Region that must keep the picture's values (e.g. a face, Face2QR's "
                                      "IDRS): pinned first, up to the free capacity; the report says how many "
                                      "could not be."),
                io.Mask.Input("dont_care_mask", optional=True,
                              tooltip="Region whose modules may take any value (e.g. covered later by a logo): "
                                      "no free bits are spent there."),
                io.Boolean.Input("dither", default=False,
                                 tooltip="Error-diffusion dithering of the target in module space (gradients "
                                         "become module patterns)."),
                io.Boolean.Input("url_fragment", default=False,
                                 tooltip="For http(s) URLs only: append '#' and digits that fill the code, "
                                         "which are free too (QArt). The decoded text changes; the page a "
                                         "browser opens does not. The bits after the message are already free, "
                                         "so this mode rarely gains anything (bench: a few bits fewer); it is "
                                         "here for QArt parity."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="Tie-break order among equal "
                                                                                "priorities."),
                io.Combo.Input("style", options=list(STYLES), default="plain",
                               tooltip="How to draw the blueprint output (see QR Encode)."),
            ],
            outputs=[
                QRCodeType.Output(display_name="qr_code", tooltip="The reshuffled code (same payload, new "
                                                                  "matrix, geometry attached)."),
                io.Image.Output(display_name="blueprint", tooltip="The reshuffled code rendered."),
                io.Image.Output(display_name="target", tooltip="The picture's module-level dark/light target."),
                io.String.Output(display_name="report", tooltip="Requested, pinned, impossible modules per "
                                                                "block, and the masks/versions tried."),
            ],
        )

    @classmethod
    def execute(cls, image, ecl, mask_search, extra_versions, priority, dither, url_fragment, seed, style,
                qr_code=None, text="", priority_map=None, fixed_mask=None, dont_care_mask=None) -> io.NodeOutput:
        picture = image_batch_to_numpy(image)[0]
        source = code_or_text(qr_code, text, "AQR_Reshuffle", ecl=ecl, **TEXT_MODE_GEOMETRY)
        kept_mask = source.qr.mask if source.qr is not None else 0
        settings = {"text": source.text, "version": source.version, "ecl": source.ecl,
                    "mask": None if mask_search else kept_mask, **source.geometry()}
        if priority == "map" and priority_map is None:
            raise ValueError("AQR_Reshuffle: priority is 'map' but no priority_map mask is connected")
        masks = {"priority_map": priority_map if priority == "map" else None, "fixed_mask": fixed_mask,
                 "dont_care_mask": dont_care_mask}
        planes = {}
        for name, mask in masks.items():  # picture-space masks: fitted like the picture, so never stretched
            if mask is not None:
                planes[name] = mask_batch_to_numpy(mask)[0]
                require_same_aspect(*planes[name].shape, picture.shape[1::-1], what=name, of="the image")
        prio = planes.get("priority_map", priority)
        fixed, dont_care = planes.get("fixed_mask"), planes.get("dont_care_mask")
        bar = comfy.utils.ProgressBar(8 * (extra_versions + 1) if mask_search else extra_versions + 1)
        result = follow_picture(picture=picture, extra_versions=extra_versions, priority=prio, dither=dither,
                                fixed=fixed, dont_care=dont_care, url_fragment=url_fragment, seed=seed,
                                progress=lambda done, total: bar.update_absolute(done, total), **settings)
        geo = result.qr.geometry
        blueprint, _ = render(result.qr, geo.module_px, geo.border, style, multiple=source.multiple)
        target = module_image(1.0 - result.target.astype("float32"), result.qr, geo)[..., None].repeat(3, -1)
        best = {k: v for k, v in result.qr.summary().items() if k in ("text", "version", "ecl", "mask")}
        report = (f"{json.dumps(best, ensure_ascii=False)}\n{result.report.to_text()}\n"
                  f"tried {len(result.candidates)} (version, mask) candidates")
        return io.NodeOutput(result.qr, numpy_to_image([blueprint]), numpy_to_image([target]), report,
                             ui={"text": (report,)})
