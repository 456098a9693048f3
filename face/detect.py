"""Face detection for Face2QR's steps, with two detectors imported on first use so the pack loads without them:

* insightface `FaceAnalysis` with the antelopev2 models (Face2QR's choice), run by onnxruntime. The five .onnx
  files come from the user (insightface's own download URL is dead and nothing here downloads): `find_antelopev2`
  checks them before insightface is touched and names the folder and the files, including the common nested
  `antelopev2/antelopev2/` left by unzipping inside the folder. A `FaceAnalysis` already loaded elsewhere
  (ComfyUI_InstantID's FACEANALYSIS) can be passed instead.
* OpenCV's frontal-face Haar cascade (alt2: no false faces on the scikit-image pictures, where the default one
  finds faces on coins and the moon), with the profile cascade and its mirror image when no frontal face is
  found. The cascade files ship in the 4.x `opencv-contrib-python-headless` wheel the pack pins (5.x dropped
  them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ..qr.errors import QRInputError
from ..qr.optional import opencv
from ..qr.pixels import to_float_rgb, to_uint8

__all__ = ["ANTELOPEV2_FILES", "DETECTORS", "PROVIDERS", "SELECTIONS", "FaceDetection", "FaceModelError", "NoFaceError",
           "antelopev2_dir", "detect_haar", "detect_insightface", "detections_from_insightface", "find_antelopev2",
           "find_faces", "load_face_analysis", "select_faces"]

DETECTORS = ("auto", "insightface", "opencv_haar")
PROVIDERS = ("CPU", "CUDA")
SELECTIONS = ("largest", "all")

ANTELOPEV2 = "antelopev2"
ANTELOPEV2_FILES = ("1k3d68.onnx", "2d106det.onnx", "genderage.onnx", "glintr100.onnx", "scrfd_10g_bnkps.onnx")
INSIGHTFACE_MODULES = ["detection", "landmark_2d_106"]  # all the mask needs; recognition (glintr100) is not loaded
INSIGHTFACE_DET_SIZE = (640, 640)
INSIGHTFACE_INSTALL = ("pip install onnxruntime onnx scipy scikit-image tqdm requests && "
                       "pip install --no-deps insightface")

HAAR_FRONTAL = "haarcascade_frontalface_alt2.xml"
HAAR_PROFILE = "haarcascade_profileface.xml"
HAAR_MAX_SIDE = 640       # larger pictures are searched at this size (the box is scaled back)
HAAR_MIN_FACE = 1 / 16    # of the shorter side; a smaller face spans under 3 modules of a v5 code
HAAR_MIN_PX = 24          # the cascades' own window
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBOURS = 5
OVERLAP_IOU = 0.3         # profile hits overlapping a kept one this much are the same face

# The face (forehead to chin, cheek to cheek) relative to a detector's box, in box units: (centre shift down,
# half-width, half-height). insightface's SCRFD box is the face; the Haar box starts at the brows and stops above
# the chin and is wider than the cheeks (fitted on scikit-image's astronaut).
BOX_TO_FACE = {"insightface": (0.0, 0.5, 0.5), "opencv_haar": (0.08, 0.45, 0.56)}


class FaceModelError(RuntimeError):
    """A detector cannot run (package or model files missing). `reason` is a short form for one-line notices."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class NoFaceError(QRInputError):
    pass


@dataclass(frozen=True)
class FaceDetection:
    box: tuple[float, float, float, float]   # x0, y0, x1, y1 in pixels of the picture
    score: float                              # insightface: det_score 0..1; Haar: merged neighbour windows
    source: str                               # "insightface" | "opencv_haar"
    landmarks: np.ndarray | None = None       # (k, 2) x, y in pixels (insightface: 106 points, else 5)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def face_ellipse(self) -> tuple[float, float, float, float]:
        """(cx, cy, rx, ry) of the face, calibrated for the detector that found it."""
        x0, y0, x1, y1 = self.box
        shift, ax, ay = BOX_TO_FACE.get(self.source, (0.0, 0.5, 0.5))
        w, h = x1 - x0, y1 - y0
        return (x0 + x1) / 2, (y0 + y1) / 2 + shift * h, ax * w, ay * h


# ------------------------------------------------------------------------------------ insightface

def antelopev2_dir(root: str | os.PathLike) -> Path:
    """Where insightface looks for antelopev2 under `root` (it appends models/<name>)."""
    return Path(root).expanduser() / "models" / ANTELOPEV2


def find_antelopev2(roots: list[str | os.PathLike]) -> Path:
    """The antelopev2 folder of the first root that holds all five files; otherwise a FaceModelError that names
    the first root's folder, the files missing there, and a nested antelopev2/antelopev2/ where there is one."""
    if not roots:
        raise FaceModelError("no insightface model folder is configured", "no insightface model folder")
    for root in roots:
        if all((antelopev2_dir(root) / f).is_file() for f in ANTELOPEV2_FILES):
            return antelopev2_dir(root)
    for root in roots:
        folder = antelopev2_dir(root)
        nested = folder / ANTELOPEV2
        if any((nested / f).is_file() for f in ANTELOPEV2_FILES):
            raise FaceModelError(f"the antelopev2 files are one folder too deep: move the .onnx files from {nested} "
                                 f"up into {folder} (unzipping antelopev2.zip inside antelopev2/ makes this nested "
                                 f"folder)", f"antelopev2 files nested one folder too deep in {nested}")
    folder = antelopev2_dir(roots[0])
    missing = [f for f in ANTELOPEV2_FILES if not (folder / f).is_file()]
    elsewhere = f" (also looked under {', '.join(str(antelopev2_dir(r)) for r in roots[1:])})" if roots[1:] else ""
    state = ("the folder does not exist" if not folder.is_dir() else "none of them is there"
             if len(missing) == len(ANTELOPEV2_FILES) else f"missing there: {', '.join(missing)}")
    raise FaceModelError(f"insightface antelopev2 models not found: put {', '.join(ANTELOPEV2_FILES)} in {folder}"
                         f"{elsewhere}; {state}. They are the files ComfyUI_InstantID uses and are never "
                         f"downloaded automatically",
                         f"antelopev2 models not found in {folder}")


@cache
def load_face_analysis(model_dir: str, provider: str = "CPU"):
    """insightface FaceAnalysis on one antelopev2 folder (checked by `find_antelopev2`), detection and 106-point
    landmarks only. The folder is passed as the model name: insightface ≥ 2 takes a folder as is and 0.7 joins it
    onto its root, which leaves an absolute path unchanged, so neither version can reach for a download."""
    if provider not in PROVIDERS:
        raise QRInputError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    try:
        from insightface.app import FaceAnalysis
    except Exception as err:  # ImportError, or a broken onnxruntime / onnx underneath
        raise FaceModelError(f"insightface is not usable ({type(err).__name__}: {err}); install it without its "
                             f"opencv-python dependency, which would replace the pack's OpenCV: "
                             f"`{INSIGHTFACE_INSTALL}`", "insightface is not installed") from None
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "CUDA" else ["CPUExecutionProvider"]
    try:
        app = FaceAnalysis(name=str(Path(model_dir).resolve()), root=str(Path(model_dir).parent.parent),
                           providers=providers, allowed_modules=INSIGHTFACE_MODULES)
        app.prepare(ctx_id=0 if provider == "CUDA" else -1, det_size=INSIGHTFACE_DET_SIZE)
    except Exception as err:  # a truncated download, another model under the same names, an onnxruntime error
        raise FaceModelError(f"insightface could not load the antelopev2 files in {model_dir} "
                             f"({type(err).__name__}: {err}); replace them with complete copies",
                             f"antelopev2 in {model_dir} failed to load") from None
    return app


def detections_from_insightface(faces, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)
                                ) -> list[FaceDetection]:
    """FaceDetections from insightface Face objects (.bbox, .det_score, and .landmark_2d_106 or .kps), with
    coordinates mapped back by (x − offset) / scale."""
    ox, oy = offset
    out = []
    for face in faces:
        bbox = getattr(face, "bbox", None)
        if bbox is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in np.asarray(bbox, dtype=np.float64).ravel()[:4])
        points = getattr(face, "landmark_2d_106", None)
        if points is None:
            points = getattr(face, "kps", None)
        if points is not None:
            points = (np.asarray(points, dtype=np.float64).reshape(-1, 2) - (ox, oy)) / scale
        score = getattr(face, "det_score", None)
        out.append(FaceDetection(box=((x0 - ox) / scale, (y0 - oy) / scale, (x1 - ox) / scale, (y1 - oy) / scale),
                                 score=float(score) if score is not None else 1.0, source="insightface",
                                 landmarks=points))
    return out


def detect_insightface(app, image) -> list[FaceDetection]:
    """Faces by a prepared FaceAnalysis. A face that fills the frame can escape SCRFD at its input size (why
    InstantID retries at smaller sizes); here the picture is retried once inside a grey border of half its size,
    which works with every insightface version and leaves the shared object's settings alone."""
    cv2 = opencv()
    bgr = np.ascontiguousarray(cv2.cvtColor(to_uint8(to_float_rgb(image)), cv2.COLOR_RGB2BGR))
    found = detections_from_insightface(app.get(bgr))
    if not found:
        h, w = bgr.shape[:2]
        pad = max(h, w) // 2
        padded = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        found = detections_from_insightface(app.get(padded), offset=(pad, pad))
    return found


# ------------------------------------------------------------------------------------ OpenCV Haar

@cache
def _cascade(name: str):
    cv2 = opencv()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or not folder:
        raise FaceModelError(f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 dropped them): install "
                             f"`opencv-contrib-python-headless<5`", "OpenCV has no Haar cascades")
    classifier = cv2.CascadeClassifier(os.path.join(folder, name))
    if classifier.empty():
        raise FaceModelError(f"OpenCV's {name} is missing from {folder}: reinstall "
                             f"`opencv-contrib-python-headless<5`", f"{name} missing")
    return classifier


def _run_cascade(name: str, gray: np.ndarray, min_side: int) -> list[tuple[tuple[float, ...], float]]:
    boxes, neighbours = _cascade(name).detectMultiScale2(gray, scaleFactor=HAAR_SCALE_FACTOR,
                                                         minNeighbors=HAAR_MIN_NEIGHBOURS,
                                                         minSize=(min_side, min_side))
    return [((float(x), float(y), float(x + w), float(y + h)), float(n))
            for (x, y, w, h), n in zip(np.reshape(boxes, (-1, 4)), np.ravel(neighbours))]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_haar(image) -> list[FaceDetection]:
    """Faces by OpenCV's frontal cascade on the equalised grey picture (at most HAAR_MAX_SIDE a side); only when
    it finds none, the profile cascade looks at the picture and its mirror image (it knows one direction)."""
    cv2 = opencv()
    gray = cv2.cvtColor(to_uint8(to_float_rgb(image)), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = min(1.0, HAAR_MAX_SIDE / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(HAAR_MIN_PX, round(min(gray.shape) * HAAR_MIN_FACE))
    if min(gray.shape) < min_side:
        return []
    found = _run_cascade(HAAR_FRONTAL, gray, min_side)
    if not found:
        gw = gray.shape[1]
        mirrored = [((gw - x1, y0, gw - x0, y1), n)
                    for (x0, y0, x1, y1), n in _run_cascade(HAAR_PROFILE, np.ascontiguousarray(gray[:, ::-1]),
                                                            min_side)]
        for box, n in sorted(_run_cascade(HAAR_PROFILE, gray, min_side) + mirrored, key=lambda d: -d[1]):
            if all(_iou(box, kept) < OVERLAP_IOU for kept, _ in found):
                found.append((box, n))
    return [FaceDetection(box=tuple(v / scale for v in box), score=n, source="opencv_haar") for box, n in found]


# -------------------------------------------------------------------------------- detector choice

def find_faces(image, detector: str = "auto", face_analysis=None, insightface_roots: list | None = None,
               provider: str = "CPU") -> tuple[list[FaceDetection], str, str]:
    """(detections, detector that ran, one-line notice saying which and why).

    auto: a connected FaceAnalysis, else antelopev2 from `insightface_roots` when insightface and the five files
    are there, else the Haar cascade. insightface: the same without the fallback (its FaceModelError propagates).
    opencv_haar: the cascade, whatever else is connected."""
    if detector not in DETECTORS:
        raise QRInputError(f"detector {detector!r} is not one of {', '.join(DETECTORS)}")
    if detector == "opencv_haar":
        ignored = " (the face_analysis input is ignored)" if face_analysis is not None else ""
        return detect_haar(image), "opencv_haar", f"face detector: OpenCV Haar cascade, as chosen{ignored}"
    if face_analysis is not None:
        return (detect_insightface(face_analysis, image), "insightface",
                "face detector: insightface from the connected face analysis")
    try:
        model_dir = find_antelopev2(list(insightface_roots or []))
        app = load_face_analysis(str(model_dir), provider)
    except FaceModelError as err:
        if detector == "insightface":
            raise
        return detect_haar(image), "opencv_haar", f"face detector: OpenCV Haar cascade (fallback: {err.reason})"
    return (detect_insightface(app, image), "insightface",
            f"face detector: insightface antelopev2 from {model_dir} on {provider}")


def select_faces(detections: list[FaceDetection], select: str = "largest") -> list[FaceDetection]:
    if select not in SELECTIONS:
        raise QRInputError(f"select {select!r} is not one of {', '.join(SELECTIONS)}")
    if select == "largest" and detections:
        return [max(detections, key=lambda d: d.area)]
    return list(detections)
