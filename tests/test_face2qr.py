"""The shipped Face2QR workflow (`workflows/api/face2qr_sdxl.json`) runs end to end in a real headless ComfyUI with
ComfyUI_InstantID loaded beside this pack, on random SDXL-family models written by `tests/tiny_sdxl.py`.

ComfyUI_InstantID comes from `../shared/third_party/ComfyUI_InstantID` beside the repo root (read-only: copied into
the server's custom_nodes folder). Without it, or without insightface / onnx / onnxruntime, the test skips, and
fails under AQR_REQUIRE_COMFYUI=1 (CI). InstantID's face analysis loads the antelopev2 stand-ins of
`tests/antelopev2_standin.py` from the server's `models/insightface/models/antelopev2`.

InstantID turns its keypoint drawings into tensors with `torchvision.transforms.v2.ToTensor`; torch 2.13 has no
CPU torchvision, so this server gets the harness's torchvision stub (tools/headless.py) with a working `ToTensor`
(PIL/numpy HWC uint8 -> float CHW in [0, 1], lists item by item), on its path only.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import time
import uuid
from pathlib import Path

import antelopev2_standin
import numpy as np
import pytest
import tiny_sd
import tiny_sdxl
from PIL import Image

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import module_means
from aesthetic_qr.qr.render import make_geometry
from aesthetic_qr.tools import headless

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parent.parent
INSTANTID_SOURCE = ROOT.parent / "shared" / "third_party" / "ComfyUI_InstantID"  # commit 1ef34ef, read-only
INSTANTID_NAME = "ComfyUI_InstantID"
TWIN = ROOT / "workflows" / "api" / "face2qr_sdxl.json"
ANTELOPEV2_FOLDER = "insightface/models/antelopev2"
SEED = 20260

_TO_TENSOR = '''

# ---- aesthetic-qr tests/test_face2qr.py: a working ToTensor for ComfyUI_InstantID's keypoint image -------------
def _aqr_to_tensor(pic):
    import numpy
    import torch

    if isinstance(pic, (list, tuple)):
        return type(pic)(_aqr_to_tensor(p) for p in pic)
    array = numpy.asarray(pic)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


class ToTensor:
    def __call__(self, pic):
        return _aqr_to_tensor(pic)


import importlib as _aqr_importlib  # noqa: E402

for _aqr_name in ("transforms", "transforms.v2"):
    _aqr_importlib.import_module(__name__ + "." + _aqr_name).ToTensor = ToTensor
'''


def _require(why: str):
    if os.environ.get("AQR_REQUIRE_COMFYUI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{why} (AQR_REQUIRE_COMFYUI=1)", pytrace=False)
    pytest.skip(why)


class InstantIDServer(headless.ComfyUIServer):
    """The test server plus a copy of ComfyUI_InstantID beside the pack, and torchvision with a real ToTensor."""

    def _layout(self) -> list[str]:
        cmd = super()._layout()
        target = self.workdir / "pack_custom_nodes" / INSTANTID_NAME
        if not target.exists():
            shutil.copytree(INSTANTID_SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            for path in [target, *target.rglob("*")]:  # the source is read-only; the copy must not be
                path.chmod(path.stat().st_mode | 0o200)
        return cmd

    def _env(self) -> dict[str, str]:
        env = super()._env()
        if importlib.util.find_spec("torchvision") is None:
            shim = self.workdir / "instantid_shims"
            (shim / "torchvision").mkdir(parents=True, exist_ok=True)
            (shim / "torchvision" / "__init__.py").write_text(headless._STUB_SOURCE + _TO_TENSOR)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
        return env


@pytest.fixture(scope="module")
def instantid_server(comfyui_found):
    if not (INSTANTID_SOURCE / "InstantID.py").is_file():
        _require(f"Face2QR: no ComfyUI_InstantID at {INSTANTID_SOURCE} (../shared/third_party/ComfyUI_InstantID "
                 f"beside the repo root {ROOT})")
    missing = [m for m in ("insightface", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        _require(f"Face2QR: ComfyUI_InstantID needs {', '.join(missing)} (insightface is installed --no-deps)")
    keep = os.environ.get("AQR_KEEP_COMFYUI_LOG", "").strip() not in ("", "0")
    threads = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": "1"}
    server = InstantIDServer(keep_workdir=keep, env=threads)
    try:
        server.start()
    except headless.ComfyUIStartError as exc:
        server.cleanup()
        pytest.fail(str(exc), pytrace=False)
    print(f"\n[comfyui+instantid] up at {server.base_url} in {server.startup_seconds:.1f} s (log {server.log_path})")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def sdxl_models(instantid_server):
    server = instantid_server
    started = time.monotonic()
    built = tiny_sdxl.build(server.comfyui_dir, server.models_dir, server.pack_link.parent / INSTANTID_NAME)
    antelopev2_standin.write(server.models_dir / ANTELOPEV2_FOLDER)
    print(f"\n[tiny sdxl] {built['detected']}: written in {time.monotonic() - started:.1f} s")
    return {"detected": built["detected"], **{role: p.name for role, p in built["paths"].items()}}


def shrunk(models: dict) -> dict:
    """The API twin on the random files, with tiny_sd's CPU settings, fresh file name prefixes and a seed of its
    own."""
    import json

    prompt = json.loads(TWIN.read_text())
    (apply_id,) = [i for i, e in prompt.items() if e["class_type"] == "ApplyInstantID"]
    instantid_cn = prompt[apply_id]["inputs"]["control_net"][0]
    qr_cn = [i for i, e in prompt.items() if e["class_type"] == "ControlNetLoader" and i != instantid_cn]
    inputs = {"CheckpointLoaderSimple": {"ckpt_name": models["checkpoint"]},
              "InstantIDModelLoader": {"instantid_file": models["instantid"]},
              instantid_cn: {"control_net_name": models["instantid_controlnet"]},
              **{i: {"control_net_name": models["qr_controlnet"]} for i in qr_cn}}
    return tiny_sd.for_random_models(prompt, inputs, seed=SEED)


def fixed_region(report: str) -> tuple[int, int]:
    """(face modules asked for, modules that could not be pinned) from AQR_Reshuffle's report."""
    import re

    m = re.search(r"^fixed region: all (\d+) modules honoured$", report, re.M)
    if m:
        return int(m.group(1)), 0
    m = re.search(r"^fixed region: (\d+) modules, (\d+) could not be honoured", report, re.M)
    assert m, report
    return int(m.group(1)), int(m.group(2))


def saved(client, result, node_id: str) -> np.ndarray:
    """The one picture a SaveImage node wrote, as float RGB in [0, 1]."""
    (ref,) = result.images(node_id)
    data = client.view(ref["filename"], ref["subfolder"], ref["type"])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) / 255


def upstream(prompt: dict, out: str) -> dict:
    """The nodes `out` depends on, itself included (copies)."""
    import json

    keep, todo = set(), [out]
    while todo:
        i = todo.pop()
        if i not in keep:
            keep.add(i)
            todo += [v[0] for v in prompt[i]["inputs"].values() if isinstance(v, list) and len(v) == 2
                     and isinstance(v[0], str)]
    return json.loads(json.dumps({i: prompt[i] for i in keep}))


def node(prompt: dict, kind: str, title: str | None = None) -> str:
    (found,) = [i for i, e in prompt.items() if e["class_type"] == kind
                and (title is None or e.get("_meta", {}).get("title") == title)]
    return found


def test_face2qr_sdxl_runs_end_to_end(instantid_server, sdxl_models):
    """Stage 1 (InstantID + QR ControlNet) → face mask from InstantID's analysis → IDRS reshuffle with the face
    fixed → halftone blueprint → stage 2 → IDSE with the face mask → Verify, every node executed, on random
    weights (the pictures are noise, so Verify is asked to report, not to pass)."""
    assert sdxl_models["detected"] == "Segmind_Vega"  # ComfyUI's own detection: an SDXL-family model
    client = instantid_server.client
    info = client.object_info()
    assert {"ApplyInstantID", "InstantIDModelLoader", "InstantIDFaceAnalysis"} <= set(info), \
        instantid_server.log_tail(60)
    assert instantid_server.pack_loaded, instantid_server.pack_import_error
    client.upload_image(ROOT / "assets" / "astronaut.jpg", name="astronaut.jpg")
    prompt = shrunk(sdxl_models)
    face, reshuffle = node(prompt, "AQR_FaceMask"), node(prompt, "AQR_Reshuffle")
    # read back what the graph does not save: the face's module mask and the reshuffled code with its target
    prompt["aqr_face_modules"] = {"class_type": "MaskToImage", "inputs": {"mask": [face, 1]}}
    for name, source in (("face_modules", ["aqr_face_modules", 0]), ("code", [reshuffle, 1]),
                         ("target", [reshuffle, 2])):
        prompt[f"aqr_save_{name}"] = {"class_type": "SaveImage", "inputs": {
            "images": source, "filename_prefix": f"aqr_test_face2qr_{name}_{uuid.uuid4().hex[:6]}"}}

    started = time.monotonic()
    result = client.run(prompt, timeout=900)
    seconds = time.monotonic() - started
    print(f"\n[face2qr_sdxl] ran in {seconds:.1f} s")
    assert result.status == "success"

    # every node ran (here, or for the other test when it ran first: then its loaders and InstantID come from
    # ComfyUI's cache; both samplers' seeds are this test's own)
    ran = [d["node"] for e, d in result.events if e == "executing" and d.get("node") is not None]
    assert set(prompt) <= set(ran) | set(result.cached), sorted(set(prompt) - set(ran) - set(result.cached))
    log = instantid_server.log_text()
    for problem in ("No face detected", "clip missing", "unet missing", "unet unexpected", "Missing VAE keys",
                    "missing controlnet keys", "leftover keys"):
        assert problem not in log, instantid_server.log_tail(80)  # every file loaded whole; InstantID saw a face

    # InstantID's apply node feeds both samplers' model and, through the QR ControlNets, their conditioning
    apply_id = node(prompt, "ApplyInstantID")
    samplers = [i for i, e in prompt.items() if e["class_type"] == "KSampler"]
    assert len(samplers) == 2
    for sampler in samplers:
        inputs = prompt[sampler]["inputs"]
        assert inputs["model"] == [apply_id, 0]
        for side, slot in (("positive", 1), ("negative", 2)):
            cn = inputs[side][0]
            assert prompt[cn]["class_type"] == "ControlNetApplyAdvanced"
            assert prompt[cn]["inputs"][side] == [apply_id, slot]
        assert sampler in ran and (apply_id in result.cached or ran.index(apply_id) < ran.index(sampler))

    # the face mask came from InstantID's antelopev2 analysis and found the stand-in's face
    assert prompt[face]["inputs"]["face_analysis"][0] == node(prompt, "InstantIDFaceAnalysis")
    face_report = "\n".join(result.outputs[face]["text"])
    assert "insightface" in face_report.splitlines()[0], face_report

    # IDRS: the face modules are pinned in the reshuffled code. Read in module space: the face's data modules are
    # the ones the report counts, and every one the report calls honoured has the picture's shade in the code.
    assert prompt[reshuffle]["inputs"]["fixed_mask"] == [face, 1]
    reshuffle_report = "\n".join(result.outputs[reshuffle]["text"])
    requested, unmet = fixed_region(reshuffle_report)
    assert requested > 0 and unmet < requested, reshuffle_report
    code = prompt[node(prompt, "AQR_Encode")]["inputs"]
    qr = encode(code["text"], version=code["version"], ecl=code["ecl"])  # function modules: the version's
    geometry = make_geometry(qr.size, code["module_px"], code["border"], 8)
    n = qr.size

    def modules(node_id: str) -> np.ndarray:
        return module_means(saved(client, result, node_id).mean(axis=2), geometry, n)

    face_modules = (modules("aqr_save_face_modules") > 0.5) & ~qr.function_mask
    code_dark, target_dark = modules("aqr_save_code") < 0.5, modules("aqr_save_target") < 0.5
    assert int(face_modules.sum()) == requested, reshuffle_report
    agree = int((code_dark == target_dark)[face_modules].sum())
    assert agree >= requested - unmet, (agree, reshuffle_report)
    print(f"face data modules {requested}: {agree} with the picture's shade ({unmet} could not be pinned)")

    # IDSE ran its two iterations on the stage-2 latent, with the face mask and the halftone blueprint
    refine = node(prompt, "AQR_LatentRefine")
    inputs = prompt[refine]["inputs"]
    assert inputs["method"] == "idse" and inputs["face_mask"] == [face, 0]
    assert prompt[inputs["blueprint"][0]]["class_type"] == "AQR_HalftoneBlueprint"
    refine_report = "\n".join(result.outputs[refine]["text"])
    assert refine_report.startswith("item 0: ") and ("2 iterations" in refine_report or "passed" in refine_report), \
        refine_report

    # Verify reported on the refined picture; both saves wrote one picture at the code's size
    verify = node(prompt, "AQR_Verify")
    verify_report = "\n".join(result.outputs[verify]["text"])
    assert verify_report.startswith(("PASS", "FAIL")), verify_report
    for save in [i for i, e in prompt.items() if e["class_type"] == "SaveImage"]:
        (ref,) = result.images(save)
        assert ref["filename"].startswith(prompt[save]["inputs"]["filename_prefix"])
        assert saved(client, result, save).shape[1::-1] == geometry.image_size  # 184 px: 45 modules of 4, widened
    print(face_report, reshuffle_report, refine_report, verify_report, sep="\n")


def test_instantid_attention_patches_reach_the_sampler(instantid_server, sdxl_models):
    """Stage 1 alone, with ApplyInstantIDAdvanced in place of ApplyInstantID: at the same weights (ip 0.8, ControlNet
    0.8, noise 0.35) the picture is the basic node's, pixel for pixel; with the ip weight at 0 (the ControlNet kept)
    it changes. So InstantID's attn2 patches on the model it returns are called by the sampler and change its
    prediction, not only its ControlNet."""
    client = instantid_server.client
    client.upload_image(ROOT / "assets" / "astronaut.jpg", name="astronaut.jpg")
    full = shrunk(sdxl_models)
    save = node(full, "SaveImage", "Save stage 1")
    stage1 = upstream(full, save)
    apply_id = node(stage1, "ApplyInstantID")
    pictures = {}
    for label, ip_weight, kind in (("basic", None, "ApplyInstantID"), ("same", 0.8, "ApplyInstantIDAdvanced"),
                                   ("no ip", 0.0, "ApplyInstantIDAdvanced")):
        prompt = upstream(stage1, save)
        inputs = prompt[apply_id]["inputs"]
        if ip_weight is not None:
            weight = inputs.pop("weight")
            inputs.update(ip_weight=ip_weight, cn_strength=weight, noise=0.35, combine_embeds="average")
        prompt[apply_id]["class_type"] = kind
        prompt[save]["inputs"]["filename_prefix"] = f"aqr_test_face2qr_ip_{uuid.uuid4().hex[:6]}"
        prompt[node(prompt, "KSampler")]["inputs"]["seed"] = SEED + 1  # never the other test's cached sampler
        result = client.run(prompt, timeout=600)
        assert result.status == "success"
        pictures[label] = saved(client, result, save)
    assert np.array_equal(pictures["basic"], pictures["same"])
    assert np.abs(pictures["basic"] - pictures["no ip"]).max() > 0
