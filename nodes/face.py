"""AQR_FaceMask: where the faces are, as a pixel mask and as the modules of a code they cover (Face2QR's face
region), with insightface antelopev2 or OpenCV's Haar cascade."""

import logging
import os

import folder_paths
import numpy as np
from comfy_api.latest import io, ui

from ..face.detect import (
    DETECTORS,
    PROVIDERS,
    SELECTIONS,
    FaceModelError,
)
from ..face.mask import (
    SHAPES,
    FaceMaskOptions,
    make_face_mask,
    preview,
)
from .inputs import AQRNode
from .tensors import image_batch_to_numpy, numpy_to_image, numpy_to_mask, per_image
from .types import QRCodeType

# ComfyUI_InstantID's loader output (an insightface FaceAnalysis); core's FACE_ANALYSIS is another type.
FaceAnalysisType = io.Custom("FACEANALYSIS")

# InstantID, IPAdapter-plus and PuLID read models/insightface; registered (appended, so a folder from
# extra_model_paths.yaml comes first) so extra_model_paths.yaml can move it.
INSIGHTFACE_FOLDER = "insightface"
folder_paths.add_model_folder_path(INSIGHTFACE_FOLDER, os.path.join(folder_paths.models_dir, "insightface"))

UNIT_CHOICES = {"face heights": "face", "pixels": "px"}

log = logging.getLogger(__name__)


class AQRFaceMask(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_FaceMask",
            display_name="QR Face Mask",
            category="Aesthetic QR/Blueprint",
            description="Find the faces of a picture and mask them, in pixels and as the modules of a code they "
                        "cover, so reshuffling pins those modules (Face2QR's IDRS), blueprints leave the face "
                        "alone and ControlNet can be weaker there. insightface antelopev2 (Face2QR's choice) "
                        "when its five model files are in models/insightface/models/antelopev2/, otherwise "
                        "OpenCV's Haar cascade; nothing is ever downloaded.",
            inputs=[
                io.Image.Input("image", tooltip="The picture (every image of a batch gets its own mask)."),
                io.Combo.Input("detector", options=list(DETECTORS), default="auto",
                               tooltip="auto: insightface when a face_analysis is connected or the antelopev2 "
                                       "files are installed, else OpenCV's Haar cascade (the report says which "
                                       "ran and why). insightface: fail with the folder to fill instead of "
                                       "falling back. opencv_haar: the cascade only (frontal faces, profile "
                                       "when none; no landmarks)."),
                FaceAnalysisType.Input("face_analysis", optional=True,
                                       tooltip="ComfyUI_InstantID's 'InstantID Face Analysis' output: used instead "
                                               "of loading antelopev2 a second time."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="Code whose modules the face covers (its geometry; the picture is fitted "
                                         "to it as reshuffle does). Without it the module mask is empty."),
                io.Combo.Input("provider", options=list(PROVIDERS), default="CPU",
                               tooltip="onnxruntime device for antelopev2 loaded here (CUDA needs "
                                       "onnxruntime-gpu; it falls back to CPU). Ignored for a connected "
                                       "face_analysis and for the Haar cascade."),
                io.Combo.Input("shape", options=list(SHAPES), default="ellipse",
                               tooltip="ellipse: the face's ellipse from the detection box. hull: convex hull of "
                                       "insightface's 106 landmarks (brows to chin; the ellipse where there are "
                                       "none). box: the ellipse's bounding box."),
                io.Combo.Input("faces", options=list(SELECTIONS), default="largest",
                               tooltip="Mask the largest face only, or every face found."),
                io.Float.Input("grow", default=0.0, min=-512.0, max=512.0, step=0.01,
                               tooltip="Grow (> 0) or shrink (< 0) the shape, in the unit below."),
                io.Float.Input("feather", default=0.05, min=0.0, max=512.0, step=0.01,
                               tooltip="Soft edge outside the grown shape, falling from 1 to 0 over this width "
                                       "(unit below). 0: a hard edge."),
                io.Combo.Input("unit", options=list(UNIT_CHOICES), default="face heights",
                               tooltip="Unit of grow and feather: each face's own height (scales with the "
                                       "face), or pixels."),
                io.Float.Input("hair_margin", default=0.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Add a dome over the head reaching this many face heights above the "
                                       "face (hair)."),
                io.Float.Input("neck_margin", default=0.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Add the neck down to this many face heights below the chin."),
                io.Float.Input("module_threshold", default=0.5, min=0.01, max=1.0, step=0.01,
                               tooltip="A module is a face module when the mask covers at least this share of "
                                       "it. 1.0 is Face2QR's rule (the module wholly inside the face)."),
                io.Boolean.Input("require_face", default=False,
                                 tooltip="Stop the workflow with an error when an image has no face; off gives "
                                         "an empty mask and a warning."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Face mask at the picture's pixels (soft edge "
                                                            "with feather)."),
                io.Mask.Output(display_name="module_mask",
                               tooltip="The face modules of the code, drawn at the picture's pixels (empty "
                                       "without a QR_CODE)."),
                io.Image.Output(display_name="preview",
                                tooltip="The picture with the mask tinted, the faces boxed, and with a code the "
                                        "module grid and the face modules outlined."),
                io.Int.Output(display_name="faces_found", tooltip="Faces the detector found, over the batch."),
                io.String.Output(display_name="report",
                                 tooltip="Which detector ran and why, faces, boxes, face modules, warnings."),
            ],
        )

    @classmethod
    def execute(cls, image, detector, provider, shape, faces, grow, feather, unit, hair_margin, neck_margin,
                module_threshold, require_face, face_analysis=None, qr_code=None) -> io.NodeOutput:
        pictures = image_batch_to_numpy(image)
        if not pictures:
            raise ValueError("AQR_FaceMask: the IMAGE batch is empty")
        try:
            options = FaceMaskOptions(shape=shape, select=faces, grow=grow, feather=feather, unit=UNIT_CHOICES[unit],
                                      hair=hair_margin, neck=neck_margin)
            results = [make_face_mask(p, detector=detector, face_analysis=face_analysis, provider=provider,
                                      insightface_roots=folder_paths.get_folder_paths(INSIGHTFACE_FOLDER),
                                      options=options, qr=qr_code, module_threshold=module_threshold,
                                      require_face=require_face) for p in pictures]
        except FaceModelError as err:
            raise RuntimeError(f"AQR_FaceMask: {err}") from None
        notes = list(dict.fromkeys(n for r in results for n in r.notes))   # once for the batch
        for note in notes:
            (log.warning if note.startswith("warning") else log.info)("AQR_FaceMask: %s", note)
        lines = []
        for r in results:
            boxes = ", ".join("(" + ", ".join(f"{v:.0f}" for v in d.box) + f") score {d.score:.2f}" for d in r.used)
            line = f"{len(r.detections)} face(s) found, {len(r.used)} masked{': ' + boxes if boxes else ''}"
            if r.modules is not None:
                line += f"; {int(r.modules.sum())} face modules of {r.modules.size}"
            lines.append(line)
        missing = [] if qr_code is not None else ["no QR_CODE connected: the module mask is empty"]
        report = "\n".join([*notes, per_image(lines), *missing])
        module_masks = [r.module_mask if r.module_mask is not None else np.zeros_like(r.mask) for r in results]
        previews = numpy_to_image([preview(p, r.mask, r.used, qr_code, r.modules) for p, r in zip(pictures, results)])
        return io.NodeOutput(numpy_to_mask([r.mask for r in results]), numpy_to_mask(module_masks), previews,
                             sum(len(r.detections) for r in results), report,
                             ui={**ui.PreviewImage(previews, cls=cls).as_dict(), "text": (report,)})
