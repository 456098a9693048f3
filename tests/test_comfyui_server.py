"""The pack inside a real ComfyUI server (CPU, headless): registration, schema hygiene, and model-free graphs run
through the HTTP/websocket API. The server comes from the session fixture `comfyui` (tests/conftest.py)."""

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from aesthetic_qr.tools.headless import ExecutionError, PromptError, input_spec_options, with_defaults

pytestmark = pytest.mark.comfyui

PYTHON_MODULE = "custom_nodes.aesthetic-qr"


@pytest.fixture(scope="module")
def object_info(comfyui):
    return comfyui.client.object_info()


def decode_png(data: bytes) -> list[str]:
    image = Image.open(io.BytesIO(data)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(np.asarray(image))]


def encode_verify_prompt(text: str, prefix: str, **encode_inputs) -> dict:
    inputs = {"text": text, "version": 0, "ecl": "M", "mask": "auto", "module_px": 8, "border": 4,
              "style": "plain"}
    inputs.update(encode_inputs)
    return {
        "1": {"class_type": "AQR_Encode", "inputs": inputs},
        "2": {"class_type": "AQR_Verify", "inputs": {"image": ["1", 0], "qr_code": ["1", 2],
                                                     "expected_text": text, "suite": False,
                                                     "raise_on_failure": True}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 2], "filename_prefix": prefix + "_heatmap"}},
    }


def test_pack_imports(comfyui):
    assert not comfyui.pack_import_failed, f"ComfyUI could not import the pack:\n{comfyui.pack_import_error}"
    assert comfyui.pack_loaded, f"pack not in ComfyUI's import list; log tail:\n{comfyui.log_tail()}"


RECORDED = Path(__file__).resolve().parent / "fixtures" / "aqr_object_info.json"


def _input_contract(spec) -> dict:
    """What a workflow relies on for one input: its type, default and range (not its tooltip); choices apart."""
    kind, options = spec[0], input_spec_options(spec)
    return {"type": kind, **{k: options.get(k) for k in ("default", "min", "max") if k in options}}


def _choices(spec) -> list:
    return list(input_spec_options(spec).get("options") or [])


def test_nodes_keep_their_recorded_interface(object_info):
    """Every node, input and output recorded before the layout change (tests/fixtures/aqr_object_info.json) is
    still there with the same type, default and range, and every recorded choice still offered: workflows saved
    against it keep loading. New nodes, new optional inputs and new choices are allowed."""
    recorded = json.loads(RECORDED.read_text())
    problems = []
    for name, before in sorted(recorded.items()):
        now = object_info.get(name)
        if now is None:
            problems.append(f"{name}: missing")
            continue
        for key in ("category", "output", "output_name", "output_node"):
            if now.get(key) != before.get(key):
                problems.append(f"{name}.{key}: {before.get(key)!r} → {now.get(key)!r}")
        for section in ("required", "optional"):
            then, current = before["input"].get(section) or {}, now["input"].get(section) or {}
            for input_name, spec in then.items():
                if input_name not in current:
                    problems.append(f"{name}.{input_name} ({section}): missing")
                elif _input_contract(current[input_name]) != _input_contract(spec):
                    problems.append(f"{name}.{input_name}: {_input_contract(spec)} → "
                                    f"{_input_contract(current[input_name])}")
                elif set(_choices(spec)) - set(_choices(current[input_name])):
                    problems.append(f"{name}.{input_name}: choices {_choices(spec)} → "
                                    f"{_choices(current[input_name])} drops a saved value")
        added = set(now["input"].get("required") or {}) - set(before["input"].get("required") or {})
        if added:
            problems.append(f"{name}: new required inputs {sorted(added)} break saved workflows")
    assert not problems, "\n".join(problems)


def test_object_info_contract(object_info):
    ours = {name: info for name, info in object_info.items() if name.startswith("AQR_")}
    assert {"AQR_Encode", "AQR_Verify"} <= set(ours), sorted(ours)
    problems = []
    for name, info in sorted(ours.items()):
        if info.get("python_module") != PYTHON_MODULE:
            problems.append(f"{name}: python_module {info.get('python_module')!r}")
        if not str(info.get("description") or "").strip():
            problems.append(f"{name}: no description")
        for section in ("required", "optional"):
            for input_name, spec in (info.get("input", {}).get(section) or {}).items():
                if not str(input_spec_options(spec).get("tooltip") or "").strip():
                    problems.append(f"{name}.{input_name} ({section}): no tooltip")
    assert not problems, "\n".join(problems)
    assert ours["AQR_Verify"]["output_node"] is True
    assert ours["AQR_Encode"]["output"][:3] == ["IMAGE", "MASK", "QR_CODE"]
    assert ours["AQR_Verify"]["output"][:3] == ["BOOLEAN", "STRING", "IMAGE"]


def test_encode_verify_save_roundtrip(comfyui, object_info):
    client = comfyui.client
    text = f"https://example.com/aqr/{uuid.uuid4().hex[:12]}"
    prefix = "aqr_roundtrip_" + uuid.uuid4().hex[:6]
    result = client.run(with_defaults(object_info, encode_verify_prompt(text, prefix)), timeout=120)
    assert result.status == "success"

    images = result.images("3")
    assert len(images) == 1, result.outputs
    ref = images[0]
    png = client.view(ref["filename"], ref["subfolder"], ref["type"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert decode_png(png) == [text]

    heatmaps = result.images("4")
    assert len(heatmaps) == 1, result.outputs
    heat = Image.open(io.BytesIO(client.view(heatmaps[0]["filename"], heatmaps[0]["subfolder"],
                                             heatmaps[0]["type"])))
    assert heat.width > 0 and heat.height > 0


def test_verify_uploaded_image(comfyui, object_info, tmp_path):
    """A code made by another encoder (segno), uploaded and loaded with core's LoadImage, passes AQR_Verify."""
    segno = pytest.importorskip("segno")
    client = comfyui.client
    text = f"AQR UPLOAD {uuid.uuid4().hex[:8].upper()}"
    path = tmp_path / "segno_code.png"
    segno.make(text, error="q").save(str(path), scale=8, border=4)
    uploaded = client.upload_image(path, name=f"aqr_{uuid.uuid4().hex[:8]}.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "2": {"class_type": "AQR_Verify", "inputs": {"image": ["1", 0], "expected_text": text, "suite": False,
                                                     "raise_on_failure": True}},
    }
    result = client.run(with_defaults(object_info, prompt), timeout=120)
    assert result.status == "success"


def test_verify_raises_on_wrong_payload(comfyui, object_info):
    client = comfyui.client
    prompt = encode_verify_prompt("the real payload", "aqr_wrong")
    prompt["2"]["inputs"]["expected_text"] = "something else"
    with pytest.raises(ExecutionError) as info:
        client.run(with_defaults(object_info, prompt), timeout=120)
    assert info.value.data.get("node_type") == "AQR_Verify", info.value


def test_invalid_input_is_reported(comfyui, object_info):
    prompt = encode_verify_prompt("x", "aqr_invalid", version=41)
    with pytest.raises(PromptError) as info:
        comfyui.client.queue(with_defaults(object_info, prompt))
    assert "1" in info.value.node_errors, str(info.value)
    assert "version" in str(info.value)


def test_reshuffle_halftone_graph(comfyui, object_info, tmp_path):
    """Picture in (core LoadImage) → AQR_Reshuffle → AQR_HalftoneBlueprint → AQR_Verify with the suite → saved;
    the saved halftone decodes to the payload and the report shows the reshuffle worked."""
    from skimage import data

    client = comfyui.client
    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    uploaded = client.upload_image(path, name=f"aqr_astro_{uuid.uuid4().hex[:8]}.png")
    text = f"https://example.com/{uuid.uuid4().hex[:10]}"
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "2": {"class_type": "AQR_Encode", "inputs": {"text": text, "version": 5, "ecl": "M", "mask": "auto",
                                                     "module_px": 10, "border": 4, "style": "plain"}},
        "3": {"class_type": "AQR_Reshuffle", "inputs": {"image": ["1", 0], "qr_code": ["2", 2],
                                                        "priority": "artup", "mask_search": True}},
        "4": {"class_type": "AQR_HalftoneBlueprint", "inputs": {"qr_code": ["3", 0], "image": ["1", 0],
                                                                "core_ratio": 0.4}},
        "5": {"class_type": "AQR_Verify", "inputs": {"image": ["4", 0], "qr_code": ["3", 0], "suite": True,
                                                     "min_ssr": 0.5, "raise_on_failure": True}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "aqr_halftone"}},
    }
    result = client.run(with_defaults(object_info, prompt), timeout=180)
    assert result.status == "success"
    ref = result.images("6")[0]
    assert decode_png(client.view(ref["filename"], ref["subfolder"], ref["type"])) == [text]
    report = result.outputs["3"]["text"][0]
    assert "pinned" in report and "impossible" in report
    verify_text = result.outputs["5"]["text"][0]
    assert verify_text.startswith("PASS") and "suite SSR" in verify_text


def test_model_free_picture_pipelines(comfyui, object_info, tmp_path):
    """Picture in → AQR_ARTUP (and, in the same graph, AQR_MarkerHarmonize → AQR_PixelRefine) → scan-probability
    heatmap → AQR_Verify → saved; the saved ARTUP picture decodes to the payload."""
    from skimage import data

    client = comfyui.client
    path = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    uploaded = client.upload_image(path, name=f"aqr_coffee_{uuid.uuid4().hex[:8]}.png")
    text = f"https://example.com/{uuid.uuid4().hex[:8]}"
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "2": {"class_type": "AQR_Encode", "inputs": {"text": text, "version": 3, "ecl": "M", "mask": "auto",
                                                     "module_px": 8, "border": 4, "style": "plain"}},
        "3": {"class_type": "AQR_ARTUP", "inputs": {"image": ["1", 0], "qr_code": ["2", 2],
                                                    "verify_suite": False}},
        "4": {"class_type": "AQR_ScanProbability", "inputs": {"image": ["3", 0], "qr_code": ["3", 1]}},
        "5": {"class_type": "AQR_Verify", "inputs": {"image": ["3", 0], "qr_code": ["3", 1],
                                                     "raise_on_failure": True}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "aqr_artup"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "aqr_scanprob"}},
        "8": {"class_type": "AQR_Reshuffle", "inputs": {"image": ["1", 0], "qr_code": ["2", 2]}},
        "9": {"class_type": "AQR_PixelRefine", "inputs": {"image": ["1", 0], "qr_code": ["8", 0],
                                                          "iterations": 40, "check_every": 20}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "aqr_pixel"}},
        "11": {"class_type": "AQR_MarkerHarmonize", "inputs": {"image": ["1", 0], "qr_code": ["8", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "aqr_markers"}},
    }
    result = client.run(with_defaults(object_info, prompt), timeout=300)
    assert result.status == "success"
    ref = result.images("6")[0]
    assert decode_png(client.view(ref["filename"], ref["subfolder"], ref["type"])) == [text]
    assert result.outputs["5"]["text"][0].startswith("PASS")
    for node in ("7", "10", "12"):
        assert len(result.images(node)) == 1, (node, result.outputs)
    assert "steps in" in result.outputs["9"]["text"][0]


@pytest.mark.parametrize("node, name, value, message", [
    ("2", "min_ssr", "nan", "AQR_Verify: min_ssr must be a finite number"),
    ("2", "decoders", "zbar",
     "AQR_Verify: decoders must be one of 'zxing + wechat', 'zxing', 'wechat', 'zxing + wechat + zbar'; got 'zbar'"),
    ("1", "size_multiple", "7", "AQR_Encode: size_multiple must be one of"),
])
def test_bad_api_values_are_one_line_naming_the_input(comfyui, object_info, node, name, value, message):
    """Over the HTTP API as a script sends them: a NaN float and unknown combo values are refused with one line that
    names the node and the input (by the node, or by ComfyUI's own validation where it checks the value first) —
    never a KeyError from inside, never a PASS."""
    prompt = encode_verify_prompt("bad values", "aqr_bad_" + name)
    prompt[node]["inputs"][name] = value
    try:
        comfyui.client.run(with_defaults(object_info, prompt), timeout=120)
    except ExecutionError as err:
        text = str(err.data.get("exception_message", err))
        assert message in text and "\n" not in text.strip(), text
        assert err.data.get("exception_type") not in ("KeyError", "builtins.KeyError"), err.data
    except PromptError as err:  # ComfyUI validated the value itself (newer versions check combos)
        assert name in str(err) and value in str(err), str(err)
    else:
        pytest.fail(f"{name}={value!r} ran")
