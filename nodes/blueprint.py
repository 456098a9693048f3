"""AQR_HalftoneBlueprint: picture + code → Text2QR / Face2QR adaptive-halftone blueprint."""

from comfy_api.latest import io

from ..art.blueprint import halftone_blueprint
from .inputs import AQRNode
from .tensors import image_batch_to_numpy, mask_batch_to_numpy, numpy_to_image
from .types import QRCodeType


def _check_thresholds(tau_black, tau_white) -> str | None:
    if not (0.0 <= tau_black < tau_white <= 1.0):
        return (f"tau_black ({tau_black}) must be below tau_white ({tau_white}), both in 0-1: pixels between them "
                f"are pushed to the nearer one, so the band must not be empty or inverted")
    return None


class AQRHalftoneBlueprint(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_HalftoneBlueprint",
            display_name="QR Halftone Blueprint",
            category="Aesthetic QR/Blueprint",
            description="Blend a picture with a QR code as an adaptive halftone (Text2QR / Face2QR): the picture's "
                        "luminance is polarised so no pixel sits between the two thresholds, the centred core of "
                        "every module is set black or white to the code bit, function patterns are drawn whole "
                        "and the quiet zone white. Feed it to a QR ControlNet as a fine-grained blueprint. The "
                        "picture is cover-cropped (centred, aspect kept) to the code's size; one blueprint per "
                        "image in the batch.",
            inputs=[
                QRCodeType.Input("qr_code",
                                 tooltip="The code (from QR Encode or a reshuffle); its geometry sets the output "
                                         "size and module grid. Reshuffle it toward the picture first for a "
                                         "blueprint that fights the picture less."),
                io.Image.Input("image",
                               tooltip="The picture. Any size: it is centre-cropped to the code's aspect and "
                                       "resized to the code's image size."),
                io.Mask.Input("keep_mask", optional=True,
                              tooltip="Optional region to leave as the picture (no polarising, no module cores), "
                                      "e.g. a face mask; soft values blend. It is cropped and resized like the "
                                      "image. Finder, timing and alignment patterns and the quiet zone are still "
                                      "drawn over it."),
                io.Float.Input("core_ratio", default=0.333, min=0.05, max=1.0, step=0.01,
                               tooltip="Side of the black/white square at each module's centre, as a fraction of "
                                       "the module (rounded to whole pixels, at least 1). 1/3 is the usual halftone; "
                                       "larger reads more reliably but shows more code."),
                io.Float.Input("tau_black", default=0.3, min=0.0, max=1.0, step=0.01,
                               tooltip="Lower luminance threshold: picture pixels between the thresholds that are "
                                       "nearer this one are darkened to it (hue kept). Must be below tau_white."),
                io.Float.Input("tau_white", default=0.7, min=0.0, max=1.0, step=0.01,
                               tooltip="Upper luminance threshold: picture pixels between the thresholds that are "
                                       "nearer this one are lightened to it (hue kept). Must be above tau_black."),
            ],
            outputs=[
                io.Image.Output(display_name="blueprint",
                                tooltip="The halftone blueprint (RGB, dark = 0) at the code's image size, one per "
                                        "input image."),
            ],
        )

    @classmethod
    def validate_inputs(cls, tau_black=None, tau_white=None) -> bool | str:
        if tau_black is None or tau_white is None:  # linked inputs: checked at run time
            return True
        return _check_thresholds(tau_black, tau_white) or True

    @classmethod
    def execute(cls, qr_code, image, core_ratio, tau_black, tau_white, keep_mask=None) -> io.NodeOutput:
        problem = _check_thresholds(tau_black, tau_white)
        if problem:
            raise ValueError(f"AQR_HalftoneBlueprint: {problem}")
        pictures = image_batch_to_numpy(image)
        masks = None if keep_mask is None else mask_batch_to_numpy(keep_mask)
        out = [halftone_blueprint(pic, qr_code, core_ratio=core_ratio, tau_black=tau_black,
                                  tau_white=tau_white,
                                  keep_mask=None if not masks else masks[i % len(masks)])
               for i, pic in enumerate(pictures)]
        return io.NodeOutput(numpy_to_image(out))
