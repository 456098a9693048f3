"""Face masks for Face2QR (NeurIPS 2024, §3.1 IDRS and §3.2 IDSE): where the faces of a picture are, as a soft
pixel mask and as the set of a code's modules they cover, so reshuffling can pin those modules and the code loss
can go gently there.

Faces come from `detect`. Mask shapes come from a detection's box (an ellipse calibrated per detector, or that
ellipse's box) or from the convex hull of dense landmarks (insightface's 106 2-D points). A hair dome above and a
neck below can be added; the shape is then grown or shrunk and feathered outwards through a signed distance, and
the chosen faces are united. A module is a face module when the mask covers at least `threshold` of it (Face2QR's
IDRS takes modules whose mean mask value is 1: threshold 1.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..qr.code import QRCode
from ..qr.errors import QRInputError
from ..qr.optional import opencv
from ..qr.pixels import module_coverage, picture_modules, require_geometry, to_float_rgb
from .detect import SELECTIONS, FaceDetection, NoFaceError, find_faces, select_faces

SHAPES = ("ellipse", "hull", "box")
UNITS = ("face", "px")          # grow/feather in face heights or in pixels
HULL_MIN_POINTS = 20      # the 5 keypoints span eyes to mouth only: a hull of them is no face outline
NECK_HALF_WIDTH = 0.6     # of the face's half-width

TINT = np.array([1.0, 0.2, 0.6], dtype=np.float32)      # pixel mask in the preview
OUTLINE = np.array([1.0, 0.9, 0.1], dtype=np.float32)   # face modules
BOX_COLOUR = (0.1, 0.9, 0.3)


@dataclass(frozen=True)
class FaceMaskOptions:
    shape: str = "ellipse"     # SHAPES
    select: str = "largest"    # SELECTIONS
    grow: float = 0.0          # > 0 grows, < 0 shrinks, in `unit`
    feather: float = 0.0       # width of the soft edge outside the grown shape, in `unit`
    unit: str = "face"         # UNITS: face heights or pixels
    hair: float = 0.0          # hair dome above the face, in face heights
    neck: float = 0.0          # neck below the chin, in face heights

    def __post_init__(self):
        for name, value, allowed in (("shape", self.shape, SHAPES), ("select", self.select, SELECTIONS),
                                     ("unit", self.unit, UNITS)):
            if value not in allowed:
                raise QRInputError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.feather < 0 or self.hair < 0 or self.neck < 0:
            raise QRInputError("feather, hair and neck margins must be ≥ 0")


@dataclass
class FaceMaskResult:
    mask: np.ndarray                      # H×W float32 in [0, 1]
    detections: list[FaceDetection]       # every face found
    used: list[FaceDetection]             # the faces in the mask
    detector: str                         # the detector that ran
    notes: list[str] = field(default_factory=list)  # which detector ran and why; warnings
    coverage: np.ndarray | None = None    # (n, n) share of each module under the mask, with a code
    modules: np.ndarray | None = None     # (n, n) bool face modules, with a code
    module_mask: np.ndarray | None = None  # H×W float32, the face modules painted at the picture's pixels


# ----------------------------------------------------------------------------------------------- insightface

# ----------------------------------------------------------------------------------------------- OpenCV Haar

# ----------------------------------------------------------------------------------------------- detector choice

# ----------------------------------------------------------------------------------------------- masks

def _draw_shape(det: FaceDetection, height: int, width: int, options: FaceMaskOptions) -> np.ndarray:
    """H×W uint8 0/1: the face shape of one detection, with its hair dome and neck."""
    cv2 = opencv()
    sub = 4  # cv2's fixed-point shift: 1/16 px vertices
    one = 1 << sub

    def fix(v: float) -> int:
        return round(v * one)

    canvas = np.zeros((height, width), dtype=np.uint8)
    cx, cy, rx, ry = det.face_ellipse()
    points = det.landmarks
    if options.shape == "hull" and points is not None and len(points) >= HULL_MIN_POINTS:
        hull = cv2.convexHull(np.round(np.asarray(points) * one).astype(np.int32))
        cv2.fillConvexPoly(canvas, hull, 1, lineType=cv2.LINE_8, shift=sub)
    elif options.shape == "box":
        cv2.rectangle(canvas, (fix(cx - rx), fix(cy - ry)), (fix(cx + rx), fix(cy + ry)), 1, -1, shift=sub)
    else:
        cv2.ellipse(canvas, (fix(cx), fix(cy)), (fix(rx), fix(ry)), 0, 0, 360, 1, -1, shift=sub)
    face_h = 2 * ry
    if options.hair > 0:   # upper half of a wider, taller ellipse round the face centre
        axes = (fix(rx + options.hair * face_h / 2), fix(ry + options.hair * face_h))
        cv2.ellipse(canvas, (fix(cx), fix(cy)), axes, 0, 180, 360, 1, -1, shift=sub)
    if options.neck > 0:
        half = NECK_HALF_WIDTH * rx
        cv2.rectangle(canvas, (fix(cx - half), fix(cy)), (fix(cx + half), fix(cy + ry + options.neck * face_h)), 1,
                      -1, shift=sub)
    return canvas


def _grow_feather(shape: np.ndarray, grow_px: float, feather_px: float) -> np.ndarray:
    """Float mask: 1 within `grow_px` of the shape (inside it when negative), falling linearly to 0 over the next
    `feather_px`. Computed through a signed distance on the region that can change."""
    cv2 = opencv()
    ys, xs = np.nonzero(shape)
    out = np.zeros(shape.shape, dtype=np.float32)
    if ys.size == 0:
        return out
    if grow_px == 0 and feather_px <= 0:
        return shape.astype(np.float32)
    pad = int(math.ceil(max(grow_px, 0.0) + feather_px)) + 2
    y0, y1 = max(0, ys.min() - pad), min(shape.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(shape.shape[1], xs.max() + pad + 1)
    crop = shape[y0:y1, x0:x1]
    outside = cv2.distanceTransform((crop == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    inside = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # pixel centres are 1 apart and the edge runs between the last inside and the first outside pixel
    signed = np.where(crop > 0, 0.5 - inside, outside - 0.5)
    if feather_px > 0:
        soft = np.clip((grow_px + feather_px - signed) / feather_px, 0.0, 1.0)
    else:
        soft = (signed <= grow_px).astype(np.float32)
    out[y0:y1, x0:x1] = soft
    return out


def face_mask(detections: list[FaceDetection], height: int, width: int,
              options: FaceMaskOptions = FaceMaskOptions()) -> np.ndarray:
    """H×W float32 in [0, 1]: the union of the given faces' shapes, each grown and feathered in its own units."""
    out = np.zeros((height, width), dtype=np.float32)
    for det in detections:
        face_h = 2 * det.face_ellipse()[3]
        unit = face_h if options.unit == "face" else 1.0
        soft = _grow_feather(_draw_shape(det, height, width, options), options.grow * unit, options.feather * unit)
        np.maximum(out, soft, out=out)
    return out


# ----------------------------------------------------------------------------------------------- modules

def face_modules(mask: np.ndarray, qr: QRCode, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """((n, n) coverage, (n, n) bool face modules): a module is a face module when the picture-space mask, fitted
    to the code like its picture (`module_coverage`), covers at least `threshold` of it."""
    if not 0 < threshold <= 1:
        raise QRInputError(f"module threshold must be in (0, 1], got {threshold}")
    coverage = module_coverage(mask, require_geometry(qr), qr.size)
    return coverage, coverage >= threshold - 1e-6


def module_mask_image(modules: np.ndarray, qr: QRCode, shape: tuple[int, int]) -> np.ndarray:
    """H×W float32: 1 on the pixels of the picture that become face modules once it is fitted to the code."""
    row, col = picture_modules(shape, qr)
    inside = (row >= 0) & (col >= 0)
    return (inside & modules[np.where(inside, row, 0), np.where(inside, col, 0)]).astype(np.float32)


# ----------------------------------------------------------------------------------------------- preview

def preview(image, mask: np.ndarray, detections: list[FaceDetection], qr: QRCode | None = None,
            modules: np.ndarray | None = None) -> np.ndarray:
    """H×W×3: the picture with the mask tinted, the detections boxed (landmarks dotted), and with a code the
    module grid faintly drawn and the face modules outlined."""
    cv2 = opencv()
    img = to_float_rgb(image)
    alpha = 0.45 * mask[..., None]
    out = img * (1 - alpha) + TINT * alpha
    if qr is not None and modules is not None:
        row, col = picture_modules(img.shape[:2], qr)
        n = qr.size
        index = np.where((row >= 0) & (col >= 0), row * n + col, -1)
        face = np.concatenate([modules.ravel(), [False]])[index]        # index −1 reads the appended False
        edge_y = np.zeros(index.shape, dtype=bool)
        edge_x = np.zeros(index.shape, dtype=bool)
        edge_y[1:] = index[1:] != index[:-1]
        edge_x[:, 1:] = index[:, 1:] != index[:, :-1]
        grid = (edge_y | edge_x) & (index >= 0)
        near_face = face.copy()
        near_face[1:] |= face[:-1] & edge_y[1:]
        near_face[:, 1:] |= face[:, :-1] & edge_x[:, 1:]
        out[grid] = out[grid] * 0.7 + 0.3 * (1 - out[grid])           # faint, visible on dark and light
        outline = (edge_y | edge_x) & near_face
        out[outline] = OUTLINE
    out = np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32)
    thick = max(1, round(min(img.shape[:2]) / 256))
    for det in detections:
        x0, y0, x1, y1 = (round(v) for v in det.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, thick)
        for x, y in np.asarray(det.landmarks if det.landmarks is not None else np.empty((0, 2))):
            cv2.circle(out, (round(x), round(y)), thick, BOX_COLOUR, -1)
    return out


# ----------------------------------------------------------------------------------------------- all together

def make_face_mask(image, *, detector: str = "auto", face_analysis=None, insightface_roots: list | None = None,
                   provider: str = "CPU", options: FaceMaskOptions = FaceMaskOptions(), qr: QRCode | None = None,
                   module_threshold: float = 0.5, require_face: bool = False) -> FaceMaskResult:
    """Detect, select, draw; with a code also the face modules and their mask at the picture's pixels. No face:
    an empty mask and a warning in `notes`, or NoFaceError when `require_face`."""
    img = to_float_rgb(image)
    h, w = img.shape[:2]
    detections, ran, notice = find_faces(img, detector, face_analysis, insightface_roots, provider)
    notes = [notice]
    if not detections:
        warning = f"no face found by {ran}"
        if require_face:
            raise NoFaceError(f"{warning} in the {w}×{h} picture (require_face is on); try another detector, a "
                              f"larger face, or a frontal view")
        notes.append(f"warning: {warning}; the face mask is empty")
    used = select_faces(detections, options.select)
    if options.shape == "hull" and any(d.landmarks is None or len(d.landmarks) < HULL_MIN_POINTS for d in used):
        notes.append("hull needs dense landmarks (insightface's 106 points): faces without them are drawn as "
                     "ellipses")
    mask = face_mask(used, h, w, options)
    result = FaceMaskResult(mask=mask, detections=detections, used=used, detector=ran, notes=notes)
    if qr is not None:
        result.coverage, result.modules = face_modules(mask, qr, module_threshold)
        result.module_mask = module_mask_image(result.modules, qr, (h, w))
    return result
