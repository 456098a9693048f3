"""AQR_PickBest: of a batch of pictures of one code, keep the one that scans with the largest margin."""

from comfy_api.latest import io, ui

from ..scan.pick import rank, table
from .inputs import AQRNode, require_code_geometry
from .tensors import image_batch_to_numpy
from .types import QRCodeType
from .verify import pass_criteria, pass_inputs


class AQRPickBest(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_PickBest",
            display_name="QR Pick Best (of a batch)",
            category="Aesthetic QR/Verify",
            description="Verify every picture of a batch against the code (decoders, per-block RS margin, "
                        "optionally the camera suite) and keep the one that scans best: first the ones that pass, "
                        "then by decoders read, worst suite SSR and worst RS margin. Make a batch of 4–8 with any "
                        "sampler and keep the one that reads.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The candidates: a batch of pictures that should carry the code."),
                QRCodeType.Input("qr_code", tooltip="The code the pictures should carry (payload and geometry)."),
                *pass_inputs("each candidate", suite=True),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The best candidate."),
                io.Int.Output(display_name="index", tooltip="Its position in the batch (0 = first)."),
                io.Boolean.Output(display_name="pass", tooltip="Whether the best candidate passes."),
                io.String.Output(display_name="report", tooltip="One line per candidate: pass, decoders, RS "
                                                                "margin, suite SSR."),
            ],
        )

    @classmethod
    def execute(cls, image, qr_code, decoders, suite, min_ssr, margin) -> io.NodeOutput:
        require_code_geometry("AQR_PickBest", qr_code)
        criteria = pass_criteria(decoders, suite, min_ssr, margin, "AQR_PickBest")
        ranked = rank(image_batch_to_numpy(image), qr_code, **criteria)
        best = ranked[0]
        report = f"best: item {best.index} ({'PASS' if best.passed else 'FAIL'})\n{table(ranked)}"
        picked = image[best.index:best.index + 1]
        preview = ui.PreviewImage(picked, cls=cls).as_dict()
        return io.NodeOutput(picked, best.index, best.passed, report, ui={**preview, "text": (report,)})
