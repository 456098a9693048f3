"""AQR_Verify: decode images with real decoders, optionally through the simulated-camera suite; preview the
per-module error heatmap and show the report."""

from comfy_api.latest import io, ui

from ..qr.errors import QRInputError
from ..scan.decoders import require_optional
from ..scan.report import VERDICT_KEY, verify_image
from .inputs import AQRNode
from .tensors import image_batch_to_numpy, numpy_to_image, per_image
from .types import QRCodeType

DECODER_CHOICES = {"zxing + wechat": ("zxing", "wechat"), "zxing": ("zxing",), "wechat": ("wechat",),
                   "zxing + wechat + zbar": ("zxing", "wechat", "zbar")}
DECODERS_TOOLTIP = " zbar is a third, independent decoder: install the zbar library and `pip install pyzbar` first."


def chosen_decoders(choice: str, node: str) -> tuple[str, ...]:
    """The decoders of a `decoders` choice; an optional one that is not installed is a one-line error (a missing
    zxing or WeChat shows in the report instead, as before)."""
    names = DECODER_CHOICES[choice]
    try:
        require_optional(names)
    except QRInputError as e:
        raise ValueError(f"{node}: {e}; or choose 'zxing + wechat'") from None
    return names


def pass_inputs(what: str, suite: bool) -> list:
    """The inputs that say what passing means — decoders, camera suite, its SSR, the RS margin — for nodes that
    judge `what` ("each candidate", "each attempt")."""
    return [
        io.Combo.Input("decoders", options=list(DECODER_CHOICES), default="zxing + wechat",
                       tooltip=f"Which decoders must read the payload in {what} for a pass." + DECODERS_TOOLTIP),
        io.Boolean.Input("suite", default=suite,
                         tooltip=f"Also require the simulated-camera suite for {what} (about a second each); off "
                                 f"judges the clean picture only."),
        io.Float.Input("min_ssr", default=0.95, min=0.0, max=1.0, step=0.01,
                       tooltip="With the suite on, each decoder's share of camera views that must read."),
        io.Int.Input("margin", default=1, min=0, max=30,
                     tooltip="Spare codewords every RS block must keep beyond what it corrects, for a pass (the "
                             "camera adds errors the clean picture does not show)."),
    ]


def pass_criteria(decoders: str, suite: bool, min_ssr: float, margin: int, node: str) -> dict:
    """`pass_inputs`' values as `scan.pick.judge`'s keyword arguments."""
    return {"decoders": chosen_decoders(decoders, node), "suite": suite, "min_ssr": min_ssr, "margin": margin}


class AQRVerify(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_Verify",
            display_name="QR Verify (decoders + camera suite)",
            category="Aesthetic QR/Verify",
            description="Scan each image with zxing-cpp and OpenCV's WeChat decoder and check the payload. With a "
                        "QR_CODE connected it also reads every module as a scanner would and counts codeword "
                        "errors per Reed-Solomon block (heatmap: green read right, red wrong). The suite "
                        "re-scans blurred, downscaled, JPEG-compressed, rotated and tilted copies and reports "
                        "the scan success rate (SSR) per decoder.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The picture(s) to scan; every image in the batch is checked."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="The code the image should carry: gives the expected payload and the "
                                         "module geometry for the per-block error analysis and heatmap."),
                io.String.Input("expected_text", optional=True, default="",
                                tooltip="Expected payload. Leave empty to use the QR_CODE's text."),
                io.Combo.Input("decoders", options=list(DECODER_CHOICES), default="zxing + wechat",
                               tooltip="Which decoders must read the payload for a pass." + DECODERS_TOOLTIP),
                io.Boolean.Input("suite", default=False,
                                 tooltip="Also run the simulated-camera suite (about 60 degraded views: blur, "
                                         "downscale, JPEG, brightness, noise, rotation, tilt, occlusion and "
                                         "qr-verify's 37 presets). Takes about a second per image."),
                io.Float.Input("min_ssr", default=0.9, min=0.0, max=1.0, step=0.01,
                               tooltip="With the suite on, each decoder must succeed on at least this share "
                                       "of the views to pass."),
                io.Boolean.Input("raise_on_failure", default=False,
                                 tooltip="Stop the workflow with an error when any image fails (for batch "
                                         "pipelines that must never save an unscannable code)."),
            ],
            outputs=[
                io.Boolean.Output(display_name="pass", tooltip="True when every image passed."),
                io.String.Output(display_name="report", tooltip="What each decoder read, per-block errors, SSR."),
                io.Image.Output(display_name="heatmap",
                                tooltip="Per-module read errors over the picture (the image itself when no "
                                        "QR_CODE geometry is connected)."),
            ],
        )

    @classmethod
    def execute(cls, image, decoders, suite, min_ssr, raise_on_failure, qr_code=None,
                expected_text="") -> io.NodeOutput:
        expected = expected_text or (qr_code.text if qr_code is not None else None)
        if expected is None:
            raise ValueError("AQR_Verify: connect a QR_CODE or type the expected text")
        names = chosen_decoders(decoders, "AQR_Verify")
        reports, heatmaps = [], []
        for picture in image_batch_to_numpy(image):
            rep = verify_image(picture, expected, qr_code, suite=suite, decoders=names,
                               min_ssr=min_ssr)
            reports.append(rep)
            heat = rep.analysis.heatmap if rep.analysis is not None else None
            heatmaps.append(heat if heat is not None else picture)
        passed = all(r.passed for r in reports)
        text = per_image([r.to_text() for r in reports], "\n\n")
        if raise_on_failure and not passed:
            raise RuntimeError(f"AQR_Verify: the code does not scan reliably\n{text}")
        heat = numpy_to_image(heatmaps)
        preview = ui.PreviewImage(heat, cls=cls).as_dict()
        verdict = {"pass": passed, "images": [r.verdict() for r in reports]}
        return io.NodeOutput(passed, text, heat, ui={**preview, "text": (text,), VERDICT_KEY: (verdict,)})
