"""AQR_FaceMask inside a real ComfyUI server (CPU, headless): the Haar path on an uploaded photograph through
core nodes, insightface without its models failing (or, on auto, falling back) with the folder named, and
insightface's own code on stand-in models written into the server's models folder for one test."""

import importlib.util
import io
import shutil
import uuid

import antelopev2_standin
import numpy as np
import pytest
from PIL import Image
from skimage import data

from aesthetic_qr.tools.headless import ExecutionError, with_defaults

pytestmark = pytest.mark.comfyui

# The astronaut's face in scikit-image's 512×512 picture (tests/test_face_mask.py)
REFERENCE_FACE = (185, 75, 262, 172)
ANTELOPEV2_FOLDER = "insightface/models/antelopev2"


@pytest.fixture(scope="module")
def object_info(comfyui):
    return comfyui.client.object_info()


@pytest.fixture(scope="module")
def astronaut_upload(comfyui, tmp_path_factory):
    path = tmp_path_factory.mktemp("face") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return comfyui.client.upload_image(path, name=f"aqr_face_{uuid.uuid4().hex[:8]}.png")["name"]


def face_prompt(image_name: str, detector: str, prefix: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        # 37 + 8 modules × 11 px = 495, widened to 512 by the size multiple: the code spans the picture
        "2": {"class_type": "AQR_Encode", "inputs": {"text": "https://example.com/face", "version": 5, "ecl": "M",
                                                     "module_px": 11, "border": 4, "size_multiple": "64"}},
        "3": {"class_type": "AQR_FaceMask", "inputs": {"image": ["1", 0], "qr_code": ["2", 2], "detector": detector,
                                                       "grow": 0.0, "feather": 0.0}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix}},
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 1]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix + "_modules"}},
    }


def saved_gray(client, result, node: str) -> np.ndarray:
    (ref,) = result.images(node)
    return np.asarray(Image.open(io.BytesIO(client.view(ref["filename"], ref["subfolder"], ref["type"]))).convert("L"))


def test_face_mask_schema(object_info):
    info = object_info["AQR_FaceMask"]
    assert info["output"] == ["MASK", "MASK", "IMAGE", "INT", "STRING"]
    assert info["input"]["optional"]["face_analysis"][0] == "FACEANALYSIS"   # InstantID's loader output
    assert info["input"]["optional"]["qr_code"][0] == "QR_CODE"
    assert info["input"]["required"]["detector"][1]["options"] == ["auto", "insightface", "opencv_haar"]


def test_haar_face_mask_graph(comfyui, object_info, astronaut_upload):
    """LoadImage → AQR_Encode (v5 over the whole picture) → AQR_FaceMask (Haar) → MaskToImage → SaveImage: the
    saved mask is the face, the module mask is whole modules on the face, the report says which detector ran."""
    client = comfyui.client
    prefix = "aqr_face_" + uuid.uuid4().hex[:6]
    result = client.run(with_defaults(object_info, face_prompt(astronaut_upload, "opencv_haar", prefix)), timeout=120)
    assert result.status == "success"

    mask = saved_gray(client, result, "5") > 127
    assert mask.shape == (512, 512)
    x0, y0, x1, y1 = REFERENCE_FACE
    yy, xx = np.mgrid[:512, :512]
    face = ((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1
    assert (mask & face).sum() / face.sum() > 0.95 and (mask & ~face).sum() / mask.sum() < 0.25
    ys, xs = np.nonzero(mask)
    assert x0 - 10 < xs.mean() < x1 + 10 and y0 - 10 < ys.mean() < y1 + 10

    modules = saved_gray(client, result, "7") > 127
    cells = modules[52:52 + 37 * 11, 52:52 + 37 * 11].reshape(37, 11, 37, 11)
    assert np.all(cells.all(axis=(1, 3)) == cells.any(axis=(1, 3)))        # whole 11 px modules
    assert not modules[:52].any() and not modules[:, :52].any()            # none in the quiet zone
    assert (modules & face).sum() / face.sum() > 0.9 and (modules & ~face).sum() / modules.sum() < 0.35

    report = result.outputs["3"]["text"][0]
    assert "OpenCV Haar cascade, as chosen" in report and "1 face(s) found, 1 masked" in report
    assert "face modules of 1369" in report
    assert len(result.outputs["3"]["images"]) == 1                        # the preview


def test_insightface_without_models_names_the_folder(comfyui, object_info, astronaut_upload):
    client = comfyui.client
    prompt = with_defaults(object_info, face_prompt(astronaut_upload, "insightface", "aqr_face_missing"))
    with pytest.raises(ExecutionError) as info:
        client.run(prompt, timeout=120)
    error = info.value.data
    assert error.get("node_type") == "AQR_FaceMask", error
    message = error.get("exception_message", "")
    assert message.startswith("AQR_FaceMask: insightface antelopev2 models not found"), message
    assert f"models/{ANTELOPEV2_FOLDER}" in message and "scrfd_10g_bnkps.onnx" in message

    prompt = with_defaults(object_info, face_prompt(astronaut_upload, "auto", "aqr_face_auto"))
    result = client.run(prompt, timeout=120)
    report = result.outputs["3"]["text"][0]
    assert report.splitlines()[0].startswith("face detector: OpenCV Haar cascade (fallback: antelopev2 models not "
                                             "found in ")
    assert ANTELOPEV2_FOLDER in report.splitlines()[0]


def test_insightface_graph_on_stand_in_models(comfyui, object_info, astronaut_upload):
    """insightface mode in the real server, with constant-output stand-ins for the five antelopev2 files in the
    server's own models/insightface folder: insightface's loader and detector run inside ComfyUI, and the saved
    mask covers the face the stand-in detector reports. Runs after the test above, which needs that folder empty;
    the stand-ins are removed afterwards."""
    if importlib.util.find_spec("insightface") is None or importlib.util.find_spec("onnx") is None:
        pytest.skip("insightface and onnx are not installed (optional extra: see README, Face masks)")
    folder = antelopev2_standin.write(comfyui.models_dir / ANTELOPEV2_FOLDER)
    try:
        client = comfyui.client
        prefix = "aqr_face_if_" + uuid.uuid4().hex[:6]
        result = client.run(with_defaults(object_info, face_prompt(astronaut_upload, "insightface", prefix)),
                            timeout=300)
    finally:
        shutil.rmtree(folder.parent.parent)
    report = result.outputs["3"]["text"][0]
    first = report.splitlines()[0]
    assert "insightface" in first and ANTELOPEV2_FOLDER in first, report
    assert "1 face(s) found, 1 masked" in report, report
    mask = saved_gray(client, result, "5") > 127
    x0, y0, x1, y1 = antelopev2_standin.FACE_IN_512
    box = np.zeros_like(mask)
    box[y0:y1, x0:x1] = True
    assert (mask & box).sum() / mask.sum() > 0.8 and mask.sum() > 0.5 * (x1 - x0) * (y1 - y0) * np.pi / 4
