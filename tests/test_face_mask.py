"""Face detection and masks (face/): the Haar fallback on a real photograph, the pixel and module masks over a v5 code,
grow/feather/margins/selection, no-face handling, the insightface seam with stand-in Face objects, the antelopev2
folder checks, and insightface itself when it (and the models) are installed."""

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import antelopev2_standin
import cv2
import numpy as np
import pytest
from skimage import data

from aesthetic_qr.face import detect as qdetect
from aesthetic_qr.face import mask as qface
from aesthetic_qr.face.detect import (
    ANTELOPEV2_FILES,
    FaceDetection,
    FaceModelError,
    NoFaceError,
    antelopev2_dir,
    detect_haar,
    detect_insightface,
    detections_from_insightface,
    find_antelopev2,
    find_faces,
    select_faces,
)
from aesthetic_qr.face.mask import (
    FaceMaskOptions,
    face_mask,
    make_face_mask,
    module_mask_image,
    preview,
)
from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.pixels import module_coverage
from aesthetic_qr.qr.render import make_geometry, module_image

# The astronaut's face in scikit-image's 512×512 picture, read off the picture: hairline/bangs ≈ y 75, chin ≈ 172,
# cheeks ≈ x 185-262.
REFERENCE_FACE = (185, 75, 262, 172)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def reference_ellipse(shape=(512, 512)) -> np.ndarray:
    x0, y0, x1, y1 = REFERENCE_FACE
    out = np.zeros(shape, dtype=np.uint8)
    cv2.ellipse(out, (round((x0 + x1) / 2), round((y0 + y1) / 2)), (round((x1 - x0) / 2), round((y1 - y0) / 2)),
                0, 0, 360, 1, -1)
    return out > 0


def assert_on_the_face(modules: np.ndarray, qr) -> None:
    """The face modules include ≥ 95 % of those whose centre lies in the reference face ellipse, and none whose
    centre is more than two modules outside the reference box."""
    geo, n = qr.geometry, qr.size
    x0, y0, x1, y1 = REFERENCE_FACE
    centres = geo.origin[0] + (np.arange(n) + 0.5) * geo.module_px
    cx, cy = np.meshgrid(centres, centres)
    face = ((cx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((cy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1
    near = ((cx > x0 - 2 * geo.module_px) & (cx < x1 + 2 * geo.module_px)
            & (cy > y0 - 2 * geo.module_px) & (cy < y1 + 2 * geo.module_px))
    assert face.sum() > 40
    assert (modules & face).sum() / face.sum() >= 0.95, ((modules & face).sum(), face.sum())
    assert not (modules & ~near).any()


def code_over(size: int = 512, module_px: int = 11):
    """A v5 code whose geometry spans a size×size picture (45 modules with the quiet zone, centred)."""
    qr = encode("https://example.com/astronaut", version=5, ecl="M")
    return qr.with_geometry(make_geometry(qr.size, module_px, 4, multiple=size))


def extent(line: np.ndarray) -> int:
    """Pixels from the first to the last non-zero one of a mask row."""
    nz = np.nonzero(line)[0]
    return int(nz[-1] - nz[0] + 1)


def fake_face(box=(100.0, 80.0, 180.0, 180.0), score=0.9, source="insightface", landmarks=None):
    return FaceDetection(box=box, score=score, source=source, landmarks=landmarks)


def ring_landmarks(box, k=106) -> np.ndarray:
    """k points on the ellipse inscribed in box (a stand-in for insightface's 106-point outline)."""
    x0, y0, x1, y1 = box
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.stack([(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)], 1)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_result(astronaut):
    return make_face_mask(astronaut, detector="opencv_haar", qr=code_over())


# ----------------------------------------------------------------------------------------------- Haar on a photo

def test_haar_finds_the_astronauts_face(astronaut):
    found = detect_haar(astronaut)
    assert len(found) == 1, found
    assert found[0].source == "opencv_haar" and found[0].landmarks is None
    assert iou(found[0].box, REFERENCE_FACE) > 0.6, found[0].box


def test_haar_same_face_at_1024(astronaut):
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    t0 = time.perf_counter()
    found = detect_haar(big)
    assert time.perf_counter() - t0 < 2.0  # searched at 640 a side, ~0.15 s here
    assert len(found) == 1
    assert iou([v / 2 for v in found[0].box], REFERENCE_FACE) > 0.6, found[0].box


def test_pixel_mask_is_the_face(astronaut_result):
    ref = reference_ellipse()
    mask = astronaut_result.mask > 0.5
    assert astronaut_result.detector == "opencv_haar"
    assert "Haar" in astronaut_result.notes[0] and "chosen" in astronaut_result.notes[0]
    assert (mask & ref).sum() / ref.sum() > 0.95            # the whole face
    assert (mask & ~ref).sum() / mask.sum() < 0.25           # and little else (measured 0.14)
    assert set(np.unique(astronaut_result.mask)) <= {0.0, 1.0}  # no feather asked: a hard mask


def test_module_mask_covers_the_face_modules_of_a_v5_code(astronaut_result):
    qr = code_over()
    geo, n = qr.geometry, qr.size
    assert geo.image_size == (512, 512) and n == 37
    modules = astronaut_result.modules
    assert modules.shape == (n, n)
    assert_on_the_face(modules, qr)
    # the module rule and the drawn mask agree with module_coverage and the code's own rendering
    coverage = module_coverage(astronaut_result.mask, geo, n)
    np.testing.assert_allclose(astronaut_result.coverage, coverage)
    np.testing.assert_array_equal(modules, coverage >= 0.5)
    np.testing.assert_array_equal(astronaut_result.module_mask,
                                  module_image(modules.astype(np.float32), qr, geo, outside=0.0))


def test_module_threshold_orders_the_module_sets(astronaut):
    qr = code_over()
    sets = [make_face_mask(astronaut, detector="opencv_haar", qr=qr, module_threshold=t).modules
            for t in (1.0, 0.5, 0.1)]
    assert sets[0].sum() < sets[1].sum() < sets[2].sum()
    assert not (sets[0] & ~sets[1]).any() and not (sets[1] & ~sets[2]).any()
    with pytest.raises(QRInputError):
        make_face_mask(astronaut, detector="opencv_haar", qr=qr, module_threshold=0.0)


def test_module_mask_of_a_wider_picture_lands_where_reshuffle_reads_it(astronaut):
    """A 768×512 picture on a 512² code is cover-cropped (centre 512×512) by reshuffle; the module mask drawn
    back at 768×512 must give the same face modules when read the reshuffle way."""
    wide = np.full((512, 768, 3), 230, np.uint8)
    wide[:, 128:640] = astronaut
    qr = code_over()
    result = make_face_mask(wide, detector="opencv_haar", qr=qr)
    assert result.mask.shape == result.module_mask.shape == (512, 768)
    assert not result.module_mask[:, :128].any() and not result.module_mask[:, 640:].any()
    np.testing.assert_array_equal(module_coverage(result.module_mask, qr.geometry, qr.size) >= 0.5, result.modules)
    assert_on_the_face(result.modules, qr)   # the centre crop is the astronaut picture itself


def test_module_mask_of_a_scaled_picture():
    qr = code_over()
    modules = np.zeros((qr.size, qr.size), dtype=bool)
    modules[10:20, 5:9] = True
    drawn = module_mask_image(modules, qr, (1024, 1024))
    np.testing.assert_array_equal(module_coverage(drawn, qr.geometry, qr.size) >= 0.5, modules)
    assert drawn.sum() == modules.sum() * 22 * 22


# ----------------------------------------------------------------------------------------------- shape options

def test_grow_is_monotone_in_both_units():
    det = fake_face()
    for unit, values in (("face", (-0.1, 0.0, 0.05, 0.1, 0.3)), ("px", (-8, 0, 4, 10, 30))):
        masks = [face_mask([det], 300, 300, FaceMaskOptions(grow=g, unit=unit)) for g in values]
        areas = [m.sum() for m in masks]
        assert all(a < b for a, b in zip(areas, areas[1:])), (unit, areas)
        assert all(not (small > big).any() for small, big in zip(masks, masks[1:]))
    # 10 px of growth widens the 80 px wide ellipse by about 20 px
    plain = face_mask([det], 300, 300)
    grown = face_mask([det], 300, 300, FaceMaskOptions(grow=10, unit="px"))
    assert abs(extent(grown[130]) - extent(plain[130]) - 20) <= 2   # the row through the centre


def test_feather_gives_a_soft_edge_outside_the_shape():
    det = fake_face()
    hard = face_mask([det], 300, 300, FaceMaskOptions(grow=0.05))
    soft = face_mask([det], 300, 300, FaceMaskOptions(grow=0.05, feather=0.1))
    edge = (soft > 0) & (soft < 1)
    assert edge.sum() > 100 and ((soft > 0.01) & (soft < 0.99)).any()
    np.testing.assert_array_equal(soft == 1.0, hard == 1.0)   # the grown shape stays whole
    assert not (edge & (hard > 0)).any()                     # the ramp lies outside it
    # about 10 px (0.1 × the 100 px face) of ramp along the centre row, falling outwards
    row = soft[130, 140:]
    ramp = row[(row > 0) & (row < 1)]
    assert 8 <= ramp.size <= 11 and np.all(np.diff(ramp) < 0)


def test_hair_and_neck_margins():
    det = fake_face(box=(100.0, 100.0, 180.0, 200.0))
    base = face_mask([det], 400, 300)
    hair = face_mask([det], 400, 300, FaceMaskOptions(hair=0.3))
    neck = face_mask([det], 400, 300, FaceMaskOptions(neck=0.5))
    rows = [np.nonzero(m.any(1))[0] for m in (base, hair, neck)]
    assert rows[0][0] - rows[1][0] == pytest.approx(30, abs=2) and rows[1][-1] == rows[0][-1]
    assert rows[2][-1] - rows[0][-1] == pytest.approx(50, abs=2) and rows[2][0] == rows[0][0]
    assert not (base > hair).any() and not (base > neck).any()
    assert extent(neck[rows[2][-1]]) < 80 * 0.65   # a neck, narrower than the face


def test_shapes_ellipse_box_hull():
    box = (100.0, 80.0, 180.0, 180.0)
    ellipse = face_mask([fake_face(box)], 300, 300)
    rect = face_mask([fake_face(box)], 300, 300, FaceMaskOptions(shape="box"))
    assert not (ellipse > rect).any() and rect.sum() == pytest.approx(80 * 100, rel=0.03)
    assert ellipse.sum() == pytest.approx(np.pi * 40 * 50, rel=0.03)
    # the hull follows the landmarks, not the box
    inner = (115.0, 100.0, 165.0, 170.0)
    hull = face_mask([fake_face(box, landmarks=ring_landmarks(inner))], 300, 300, FaceMaskOptions(shape="hull"))
    assert hull.sum() == pytest.approx(np.pi * 25 * 35, rel=0.05)
    # 5 keypoints are no outline: the ellipse is drawn and the notes say so
    kps = ring_landmarks(inner, 5)
    np.testing.assert_array_equal(face_mask([fake_face(box, landmarks=kps)], 300, 300,
                                            FaceMaskOptions(shape="hull")), ellipse)


def test_haar_ellipse_is_calibrated_to_the_face():
    """The Haar box starts at the brows and ends above the chin: its face ellipse is shifted down and taller."""
    det = fake_face(box=(0.0, 0.0, 100.0, 100.0), source="opencv_haar")
    cx, cy, rx, ry = det.face_ellipse()
    assert cy > 50 and ry > 50 and rx < 50


def test_largest_or_all_faces():
    big, small = fake_face((20.0, 20.0, 120.0, 140.0)), fake_face((200.0, 40.0, 250.0, 100.0), score=0.99)
    assert select_faces([small, big], "largest") == [big]
    assert select_faces([small, big], "all") == [small, big]
    assert select_faces([], "largest") == []
    only_big = face_mask(select_faces([small, big], "largest"), 200, 300)
    both = face_mask(select_faces([small, big], "all"), 200, 300)
    assert only_big[70, 225] == 0 and both[70, 225] == 1 and both[80, 70] == only_big[80, 70] == 1


def test_two_real_faces_largest_and_all(astronaut):
    canvas = np.full((512, 832, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[96:416, 512:] = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    everyone = make_face_mask(canvas, detector="opencv_haar", options=FaceMaskOptions(select="all"))
    largest = make_face_mask(canvas, detector="opencv_haar")
    assert len(everyone.detections) == len(everyone.used) == 2
    assert len(largest.used) == 1 and iou(largest.used[0].box, REFERENCE_FACE) > 0.6
    assert everyone.mask[:, 512:].sum() > 1000 and largest.mask[:, 512:].sum() == 0


# ----------------------------------------------------------------------------------------------- no face, bad input

def test_no_face_gives_an_empty_mask_and_a_warning():
    result = make_face_mask(data.coffee(), detector="opencv_haar", qr=code_over())
    assert result.detections == [] and result.used == []
    assert not result.mask.any() and not result.modules.any() and not result.module_mask.any()
    assert any(n.startswith("warning: no face found by opencv_haar") for n in result.notes)


def test_no_face_is_an_error_when_required():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    with pytest.raises(NoFaceError, match="no face found by opencv_haar.*require_face"):
        make_face_mask(flat, detector="opencv_haar", require_face=True)
    assert isinstance(NoFaceError("x"), QRInputError)


@pytest.mark.parametrize("shape", [(64, 64, 2), (64, 64, 3, 1), (0, 64, 3)])
def test_wrong_image_shapes_are_clear_errors(shape):
    with pytest.raises(QRInputError, match="must be an H×W×3 picture"):
        make_face_mask(np.zeros(shape, np.float32), detector="opencv_haar")


def test_bad_options_are_errors():
    with pytest.raises(QRInputError, match="shape 'oval'"):
        FaceMaskOptions(shape="oval")
    with pytest.raises(QRInputError, match="feather"):
        FaceMaskOptions(feather=-1)
    with pytest.raises(QRInputError, match="detector 'mtcnn'"):
        find_faces(np.zeros((64, 64, 3), np.float32), "mtcnn")
    with pytest.raises(QRInputError, match="no pixel geometry"):
        make_face_mask(np.zeros((64, 64, 3), np.float32), detector="opencv_haar",
                       qr=encode("x", version=1))


def test_tiny_picture_has_no_face():
    assert detect_haar(np.zeros((10, 10, 3), np.uint8)) == []


def test_preview_marks_mask_boxes_and_face_modules(astronaut, astronaut_result):
    qr = code_over()
    out = preview(astronaut, astronaut_result.mask, astronaut_result.used, qr, astronaut_result.modules)
    assert out.shape == (512, 512, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    picture = astronaut.astype(np.float32) / 255
    changed = np.abs(out - picture).max(-1) > 0.02
    assert changed[astronaut_result.mask > 0].mean() > 0.95          # tinted
    yellow = np.all(np.abs(out - qface.OUTLINE) < 1e-6, axis=-1)
    assert yellow[astronaut_result.module_mask > 0].any() and yellow.sum() > 200  # face modules outlined
    assert not yellow[:, :150].any()                                 # only there
    plain = preview(astronaut, np.zeros((512, 512), np.float32), [])
    np.testing.assert_allclose(plain, picture, atol=1e-6)


# ----------------------------------------------------------------------------------------------- insightface seam

def insightface_like(box, score, kps=None, landmark_2d_106=None):
    """What insightface's Face offers (attribute access; absent fields read None)."""
    return SimpleNamespace(bbox=np.asarray(box, np.float32), det_score=np.float32(score), kps=kps,
                           landmark_2d_106=landmark_2d_106)


def test_insightface_detections_become_face_detections():
    box = (120.0, 60.0, 220.0, 190.0)
    dense = ring_landmarks((130, 80, 210, 185)).astype(np.float32)
    kps = np.array([[150, 110], [190, 110], [170, 135], [155, 160], [185, 160]], np.float32)
    faces = [insightface_like(box, 0.87, kps=kps, landmark_2d_106=dense), insightface_like(box, 0.6, kps=kps),
             insightface_like((0, 0, 10, 10), 0.5)]
    dets = detections_from_insightface(faces)
    assert [d.source for d in dets] == ["insightface"] * 3
    assert dets[0].box == box and dets[0].score == pytest.approx(0.87)
    assert dets[0].landmarks.shape == (106, 2)            # the dense outline wins over the 5 keypoints
    np.testing.assert_allclose(dets[1].landmarks, kps)    # 5 keypoints when that is all there is
    assert dets[2].landmarks is None
    # mapped back from a padded, scaled frame
    moved = detections_from_insightface(faces[:1], scale=2.0, offset=(50, 40))
    assert moved[0].box == ((120 - 50) / 2, (60 - 40) / 2, (220 - 50) / 2, (190 - 40) / 2)
    np.testing.assert_allclose(moved[0].landmarks, (dense - (50, 40)) / 2)
    # to masks: the hull follows the 106 points, the ellipse the box
    h, w = 256, 300
    hull = face_mask(dets[:1], h, w, FaceMaskOptions(shape="hull"))
    ellipse = face_mask(dets[:1], h, w)
    assert hull.sum() == pytest.approx(np.pi * 40 * 52.5, rel=0.05)
    assert ellipse.sum() == pytest.approx(np.pi * 50 * 65, rel=0.03)


class FakeFaceAnalysis:
    """Stands in for insightface's FaceAnalysis: records what it was given; finds the face only when the picture
    comes in at least `min_side` a side (as a frame-filling face escapes SCRFD until padded)."""

    def __init__(self, min_side=0):
        self.calls, self.min_side = [], min_side

    def get(self, img):
        self.calls.append(img)
        if min(img.shape[:2]) < self.min_side:
            return []
        h, w = img.shape[:2]
        return [insightface_like((w / 2 - 20, h / 2 - 25, w / 2 + 20, h / 2 + 25), 0.9)]


def test_detect_insightface_feeds_bgr_uint8_and_retries_padded():
    picture = np.zeros((100, 120, 3), np.uint8)
    picture[..., 0] = 255                                   # pure red RGB
    app = FakeFaceAnalysis()
    found = detect_insightface(app, picture)
    assert len(app.calls) == 1 and app.calls[0].dtype == np.uint8
    assert app.calls[0][0, 0].tolist() == [0, 0, 255]       # BGR, as insightface (cv2) expects
    assert found[0].box == (40, 25, 80, 75)
    app = FakeFaceAnalysis(min_side=150)
    found = detect_insightface(app, picture)
    assert [c.shape for c in app.calls] == [(100, 120, 3), (220, 240, 3)]   # half the longer side around it
    assert found[0].box == (40, 25, 80, 75)                 # back in the picture's pixels


def test_detector_choice_and_notice(astronaut):
    app = FakeFaceAnalysis()
    dets, ran, notice = find_faces(astronaut, "auto", face_analysis=app)
    assert ran == "insightface" and "connected face analysis" in notice and len(app.calls) == 1
    dets, ran, notice = find_faces(astronaut, "opencv_haar", face_analysis=app)
    assert ran == "opencv_haar" and "ignored" in notice and len(app.calls) == 1
    dets, ran, notice = find_faces(astronaut, "auto", insightface_roots=[])
    assert ran == "opencv_haar" and notice == ("face detector: OpenCV Haar cascade (fallback: no insightface model "
                                               "folder)")
    assert len(dets) == 1
    with pytest.raises(FaceModelError):
        find_faces(astronaut, "insightface", insightface_roots=[])


# ----------------------------------------------------------------------------------------------- model folder

def fill(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"onnx")


def test_antelopev2_missing_partial_nested(tmp_path, astronaut):
    root = tmp_path / "insightface"
    folder = root / "models" / "antelopev2"
    assert antelopev2_dir(root) == folder
    with pytest.raises(FaceModelError) as info:
        find_antelopev2([root])
    message = str(info.value)
    assert str(folder) in message and all(name in message for name in ANTELOPEV2_FILES)
    assert "never downloaded" in message and info.value.reason == f"antelopev2 models not found in {folder}"
    assert "the folder does not exist" in message
    folder.mkdir(parents=True)
    with pytest.raises(FaceModelError, match="none of them is there"):
        find_antelopev2([root])

    fill(folder, ANTELOPEV2_FILES[:3])
    with pytest.raises(FaceModelError, match=r"missing there: glintr100\.onnx, scrfd_10g_bnkps\.onnx\."):
        find_antelopev2([root])

    nested_root = tmp_path / "nested"
    fill(antelopev2_dir(nested_root) / "antelopev2", ANTELOPEV2_FILES)
    with pytest.raises(FaceModelError, match="one folder too deep") as info:
        find_antelopev2([nested_root])
    assert str(antelopev2_dir(nested_root) / "antelopev2") in str(info.value)
    assert f"up into {antelopev2_dir(nested_root)}" in str(info.value)

    # auto falls back, naming why in one line; insightface refuses with the whole message
    _, ran, notice = find_faces(astronaut, "auto", insightface_roots=[root])
    assert ran == "opencv_haar" and notice.endswith(f"(fallback: antelopev2 models not found in {folder})")
    assert "\n" not in notice
    with pytest.raises(FaceModelError, match="missing there"):
        make_face_mask(astronaut, detector="insightface", insightface_roots=[root])

    # the first complete root wins; the message names the first root's folder and the others looked at
    complete = tmp_path / "extra"
    fill(antelopev2_dir(complete), ANTELOPEV2_FILES)
    assert find_antelopev2([root, complete]) == antelopev2_dir(complete)
    with pytest.raises(FaceModelError, match="also looked under"):
        find_antelopev2([root, tmp_path / "empty"])


def test_insightface_not_installed_is_a_clear_error(tmp_path, monkeypatch):
    fill(antelopev2_dir(tmp_path), ANTELOPEV2_FILES)
    monkeypatch.setitem(sys.modules, "insightface", None)      # import insightface → ImportError
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    qdetect.load_face_analysis.cache_clear()
    with pytest.raises(FaceModelError, match="--no-deps insightface") as info:
        qdetect.load_face_analysis(str(antelopev2_dir(tmp_path)))
    assert info.value.reason == "insightface is not installed"
    _, ran, notice = find_faces(np.zeros((64, 64, 3), np.uint8), "auto", insightface_roots=[tmp_path])
    assert ran == "opencv_haar" and notice.endswith("(fallback: insightface is not installed)")


def test_unloadable_model_files_are_a_clear_error(tmp_path, monkeypatch):
    """Files that are there but do not load (here: insightface refuses them) name the folder; auto falls back."""
    fill(antelopev2_dir(tmp_path), ANTELOPEV2_FILES)

    class Refusing:
        def __init__(self, **kwargs):
            raise AssertionError("no detection model")

    monkeypatch.setitem(sys.modules, "insightface", SimpleNamespace())
    monkeypatch.setitem(sys.modules, "insightface.app", SimpleNamespace(FaceAnalysis=Refusing))
    qdetect.load_face_analysis.cache_clear()
    with pytest.raises(FaceModelError, match="could not load the antelopev2 files in .*AssertionError"):
        find_faces(np.zeros((64, 64, 3), np.uint8), "insightface", insightface_roots=[tmp_path])
    _, ran, notice = find_faces(np.zeros((64, 64, 3), np.uint8), "auto", insightface_roots=[tmp_path])
    assert ran == "opencv_haar" and "failed to load" in notice


def insightface_roots_here() -> list[str]:
    roots = [os.environ.get("AQR_INSIGHTFACE_ROOT", "")]
    if os.environ.get("COMFYUI_PATH"):
        roots.append(os.path.join(os.environ["COMFYUI_PATH"], "models", "insightface"))
    roots.append(os.path.expanduser("~/.insightface"))
    return [r for r in roots if r]


def test_insightface_antelopev2_finds_the_astronaut(astronaut):
    if importlib.util.find_spec("insightface") is None:
        pytest.skip("insightface is not installed (optional extra: see README, Face masks)")
    try:
        model_dir = find_antelopev2(insightface_roots_here())
    except FaceModelError as err:
        pytest.skip(f"antelopev2 models absent ({err.reason}); set AQR_INSIGHTFACE_ROOT to a folder holding "
                    f"models/antelopev2/")
    result = make_face_mask(astronaut, detector="insightface", insightface_roots=[model_dir.parent.parent],
                            options=FaceMaskOptions(shape="hull"), qr=code_over())
    assert result.detector == "insightface" and len(result.used) == 1
    face = result.used[0]
    assert iou(face.box, REFERENCE_FACE) > 0.5 and face.score > 0.5 and face.landmarks.shape == (106, 2)
    ref = reference_ellipse()
    assert ((result.mask > 0.5) & ref).sum() / ref.sum() > 0.7   # the hull stops at the brows


def test_insightface_loader_on_stand_in_models(tmp_path, astronaut):
    """insightface's real loading and detection code on constant-output ONNX stand-ins for the five files
    (tests/antelopev2_standin.py): checks our call into FaceAnalysis (folder as name, modules, providers, prepare)
    and the conversion of its Faces."""
    if importlib.util.find_spec("insightface") is None or importlib.util.find_spec("onnx") is None:
        pytest.skip("insightface and onnx are not installed (optional extra: see README, Face masks)")
    folder = antelopev2_standin.write(antelopev2_dir(tmp_path))

    qdetect.load_face_analysis.cache_clear()
    result = make_face_mask(astronaut, detector="insightface", insightface_roots=[tmp_path],
                            options=FaceMaskOptions(shape="hull"))
    qdetect.load_face_analysis.cache_clear()
    assert result.detector == "insightface" and str(folder) in result.notes[0]
    (face,) = result.used
    np.testing.assert_allclose(face.box, antelopev2_standin.FACE_IN_512, atol=0.5)
    assert face.score == pytest.approx(antelopev2_standin.SCORE) and face.landmarks.shape == (106, 2)
    assert result.mask.sum() > 0.5 * np.pi * 48 * 56


def test_instantid_style_face_analysis_input(tmp_path, astronaut):
    """The FACEANALYSIS object ComfyUI_InstantID's loader makes (every module, det_size 640, built by insightface
    from the models folder) works as the face_analysis input: the detections come from it, not from our loader."""
    if importlib.util.find_spec("insightface") is None or importlib.util.find_spec("onnx") is None:
        pytest.skip("insightface and onnx are not installed (optional extra: see README, Face masks)")
    from insightface.app import FaceAnalysis

    antelopev2_standin.write(antelopev2_dir(tmp_path))
    app = FaceAnalysis(name="antelopev2", root=str(tmp_path), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=0, det_size=(640, 640))
    qdetect.load_face_analysis.cache_clear()
    result = make_face_mask(astronaut, detector="auto", face_analysis=app, qr=code_over())
    assert qdetect.load_face_analysis.cache_info().currsize == 0  # our own loader never ran
    assert result.detector == "insightface"
    (face,) = result.used
    np.testing.assert_allclose(face.box, antelopev2_standin.FACE_IN_512, atol=0.5)
    assert result.module_mask is not None and result.module_mask.any()
