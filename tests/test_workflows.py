"""The shipped workflows (workflows/*.json): valid against a real ComfyUI, API twins up to date, the CPU ones run
and scan, the SD1.5 GPU ones run on CPU with a random tiny SD1.5-architecture model (tests/tiny_sd.py), the GPU ones
and invisible_qr_cpu are what scripts/author_workflows.py writes, `aesthetic-qr run-workflow` works against a
headless server; and the UI→API and API→UI converters on small graphs.

Every workflow in workflows/ is picked up. Third-party node types (not on the test server) are checked against
tests/fixtures/third_party_object_info.json; record a new pack's definitions there."""

import importlib.util
import io
import json
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
import tiny_sd
from PIL import Image

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import make_geometry
from aesthetic_qr.scan.decoders import decode
from aesthetic_qr.tools.workflow import (
    ASSETS_DIR,
    WorkflowError,
    api_to_ui,
    bundled_inputs,
    load_json,
    prompt_differences,
    recorded_definitions,
    types_match,
    ui_to_api,
    validate,
    widgets,
)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
RECORDED = Path(__file__).resolve().parent / "fixtures" / "third_party_object_info.json"
CPU_WORKFLOWS = ["art_cpu", "artup_cpu", "pixel_srl_cpu", "invisible_qr_cpu"]
# run here on a random tiny SD1.5
SD15_WORKFLOWS = ["diffqrcoder_sd15", "diffqrcoder_sd15_until_scans", "qrmonster_baseline_sd15"]
# face2qr: validated against recorded InstantID nodes only
GPU_WORKFLOWS = SD15_WORKFLOWS + ["face2qr_sdxl", "face2qr_sdxl_until_scans"]
AUTHORED = GPU_WORKFLOWS + ["invisible_qr_cpu"]  # written by scripts/author_workflows.py
MODEL_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".sft", ".onnx", ".gguf"}
NOT_FOUND = " (neither on the test ComfyUI nor recorded in tests/fixtures/third_party_object_info.json)"


def ui(name: str) -> dict:
    return load_json(ROOT / "workflows" / f"{name}.json")


def twin(name: str) -> dict:
    return load_json(ROOT / "workflows" / "api" / f"{name}.json")


@pytest.fixture(scope="module")
def object_info(comfyui):
    """The server's node definitions plus the recorded third-party ones (the server's win)."""
    return {**recorded_definitions(RECORDED), **comfyui.client.object_info()}


def test_workflows_are_shipped():
    assert set(CPU_WORKFLOWS + GPU_WORKFLOWS) <= set(WORKFLOWS)


# ---- every workflow --------------------------------------------------------------------------------------------

@pytest.mark.comfyui
@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_valid(name, object_info):
    """Node types exist, links type-check, widget values suit their inputs, required inputs are fed; pictures it
    loads by name ship in assets/ (run-workflow uploads them); its note names every model file and third-party
    pack it needs; a thumbnail sits next to it."""
    workflow = ui(name)
    report = validate(workflow, object_info, missing_hint=NOT_FOUND)
    assert report.ok, f"{name}:\n  " + "\n  ".join(report.errors)

    notes = "\n".join(str(v) for n in workflow["nodes"] if n["type"] in ("Note", "MarkdownNote")
                      for v in n.get("widgets_values") or [])
    assert notes.strip(), f"{name}: no Note node listing models and node packs"
    for line in report.missing_files:
        value = line.rsplit(" = ", 1)[1].strip("'\"")
        if Path(value).suffix.lower() in MODEL_SUFFIXES:
            assert Path(value).name in notes, f"{name}: its note does not name the model file {value}"
        else:
            assert (ASSETS_DIR / value).is_file(), f"{name}: loads {value}, which is not in assets/"
    recorded = recorded_definitions(RECORDED)
    for node in workflow["nodes"]:
        if node["type"] in recorded:
            pack = recorded[node["type"]]["python_module"].removeprefix("custom_nodes.")
            assert pack in notes, f"{name}: uses {node['type']} but its note does not name the pack {pack}"
    thumb = ROOT / "workflows" / f"{name}.jpg"
    assert thumb.is_file(), f"{name}: no thumbnail {thumb.name}"
    assert 128 <= max(Image.open(thumb).size) <= 1024


@pytest.mark.comfyui
@pytest.mark.parametrize("name", WORKFLOWS)
def test_api_twin_is_the_conversion(name, object_info):
    path = ROOT / "workflows" / "api" / f"{name}.json"
    assert path.is_file(), f"no API twin {path.relative_to(ROOT)}: run scripts/workflow_twins.py {name}"
    differences = prompt_differences(twin(name), ui_to_api(ui(name), object_info))
    assert not differences, f"{name}: stale twin (run scripts/workflow_twins.py {name}):\n  " + \
        "\n  ".join(differences)


def reconciled_outputs(saved: list[dict], info: dict) -> list[tuple]:
    """(name, type, links) of a node's outputs after the frontend (1.32.9 and 1.49.6 alike) loads it: position by
    position the definition's name and type win over the saved ones, an output only the definition has is created
    unconnected, a saved one the definition lacks is kept."""
    names = info.get("output_name") or info.get("output") or []
    defined = [(name, "COMBO" if isinstance(kind, list) else kind)
               for kind, name in zip(info.get("output") or [], names)]
    out = []
    for i in range(max(len(saved), len(defined))):
        slot = saved[i] if i < len(saved) else {}
        name, kind = defined[i] if i < len(defined) else (slot.get("name"), slot.get("type"))
        out.append((name, kind, slot.get("links") or []))
    return out


@pytest.mark.comfyui
@pytest.mark.parametrize("name", WORKFLOWS)
def test_outputs_are_what_the_frontend_saves(name, object_info):
    """Loading the workflow in the frontend changes no node's outputs, so it is what the frontend saves back (on
    ComfyUI 0.33 SaveImage and PreviewImage have an `images` output); an output this server's definition lacks
    (0.3.75's SaveImage) is kept unconnected."""
    for node in ui(name)["nodes"]:
        info = object_info.get(node["type"])
        if info is None:  # Note, Reroute, ...
            continue
        saved = [(o.get("name"), o.get("type"), o.get("links") or []) for o in node.get("outputs") or []]
        assert saved == reconciled_outputs(node.get("outputs") or [], info), \
            f"{name}: node {node['id']} ({node['type']}): outputs {saved} are not its definition's"
        extra = saved[len(info.get("output") or []):]
        assert not any(links for _, _, links in extra), f"{name}: node {node['id']} links an output it lacks here"


# ---- the CPU workflows run and scan ----------------------------------------------------------------------------

def scans(image: Image.Image, text: str) -> bool:
    return decode(np.asarray(image, dtype=np.float32) / 255, ("zxing",), expected=text)["zxing"].match


def payload(prompt: dict) -> str:
    (text,) = [e["inputs"]["text"] for e in prompt.values() if e["class_type"] in ("AQR_Encode", "AQR_Art")]
    return text


@pytest.mark.comfyui
@pytest.mark.parametrize("name", CPU_WORKFLOWS)
def test_cpu_workflow_runs_and_scans(name, comfyui, object_info):
    client = comfyui.client
    prompt = twin(name)
    for path in bundled_inputs(prompt, object_info):
        client.upload_image(path, name=path.name)
    prefix = f"aqr_test_{name}_{uuid.uuid4().hex[:6]}"
    for entry in prompt.values():
        if entry["class_type"] == "SaveImage":
            entry["inputs"]["filename_prefix"] = prefix
    result = client.run(prompt, timeout=300)
    assert result.status == "success"
    (verify,) = [i for i, e in prompt.items() if e["class_type"] == "AQR_Verify"]
    assert result.outputs[verify]["text"][0].startswith("PASS"), result.outputs[verify]
    verified = prompt[verify]["inputs"]["image"]
    saves = [i for i, e in prompt.items() if e["class_type"] == "SaveImage"]
    assert [s for s in saves if prompt[s]["inputs"]["images"] == verified], "no Save writes the verified picture"
    for save in saves:
        (ref,) = result.images(save)
        image = Image.open(io.BytesIO(client.view(ref["filename"], ref["subfolder"], ref["type"]))).convert("RGB")
        if prompt[save]["inputs"]["images"] == verified:
            assert scans(image, payload(prompt))
        else:  # invisible_qr_cpu's hidden picture: the loaded picture's size, and nothing a scanner reads
            (loaded,) = [e["inputs"]["image"] for e in prompt.values() if e["class_type"] == "LoadImage"]
            assert image.size == Image.open(ASSETS_DIR / loaded).size and not scans(image, payload(prompt))


@pytest.mark.comfyui
@pytest.mark.parametrize("name", AUTHORED)
def test_authored_workflow_is_what_its_script_writes(name, object_info):
    """The GPU workflows and invisible_qr_cpu are authored in scripts/author_workflows.py: the shipped JSON is
    what it writes."""
    spec = importlib.util.spec_from_file_location("author_workflows", ROOT / "scripts" / "author_workflows.py")
    author = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(author)
    assert ui(name) == author.build(name, object_info), f"{name}: run scripts/author_workflows.py {name}"


# ---- the SD1.5 GPU workflows run on CPU with a random tiny model -------------------------------------------------

def shrunk(name: str, models: dict) -> dict:
    """The workflow's API twin on the tiny model files, with tiny_sd's CPU settings, fresh file name prefixes and a
    seed of its own."""
    return tiny_sd.for_random_models(twin(name), tiny_sd.sd15_inputs(models), seed=zlib.crc32(name.encode()))


def code_side(prompt: dict) -> int:
    (code,) = [e["inputs"] for e in prompt.values() if e["class_type"] == "AQR_Encode"]
    qr = encode(code["text"], version=code["version"], ecl=code["ecl"],
                mask=None if code["mask"] == "auto" else int(code["mask"]))
    multiple = {"none": 1, "64": 64}.get(code["size_multiple"], 8)
    width, height = make_geometry(qr.size, code["module_px"], code["border"], multiple).image_size
    assert width == height
    return width


@pytest.mark.comfyui
@pytest.mark.parametrize("name", SD15_WORKFLOWS)
def test_sd15_workflow_runs_on_a_random_tiny_model(name, comfyui, tiny_models):
    """The shipped graph itself (its API twin, only files and sizes swapped) runs end to end: every node executes,
    each Save writes one picture at the code's size, Verify reports (noise does not scan, so no pass is asked);
    in DiffQRCoder the guidance ran on every stage-2 step through the model's graph (xt) and the refinement ran."""
    client = comfyui.client
    prompt = shrunk(name, tiny_models)
    side = code_side(prompt)
    assert side == 152  # version 3: (29 + 2·4) modules · 4 px = 148, widened to the 8-pixel latent grid
    started = time.monotonic()
    result = client.run(prompt, timeout=600)
    seconds = time.monotonic() - started
    assert result.status == "success"
    print(f"\n[{name}] ran in {seconds:.1f} s")
    executed = {k for k, v in result.outputs.items() if v}
    saves = [i for i, e in prompt.items() if e["class_type"] == "SaveImage"]
    assert len(saves) == (2 if name.startswith("diffqrcoder_sd15") else 1)
    for save in saves:
        assert save in executed
        (ref,) = result.images(save)
        image = Image.open(io.BytesIO(client.view(ref["filename"], ref["subfolder"], ref["type"])))
        assert image.size == (side, side)
        assert ref["filename"].startswith(prompt[save]["inputs"]["filename_prefix"])
    (verify,) = [i for i, e in prompt.items() if e["class_type"] == "AQR_Verify"]
    assert result.outputs[verify]["text"][0].startswith(("PASS", "FAIL"))
    if name.startswith("diffqrcoder_sd15"):
        (report,) = [i for i, e in prompt.items() if e["class_type"] == "AQR_GuidanceReport"]
        text = "\n".join(result.outputs[report]["text"])
        assert "run 1: 2 steps" in text and "guided at steps 0–1" in text, text
        assert "x0 fallback" not in text, text  # xt: the gradient came through the UNet and ControlNet
        (refine,) = [i for i, e in prompt.items() if e["class_type"] == "AQR_LatentRefine"]
        text = "\n".join(result.outputs[refine]["text"])
        assert "2 iterations" in text or "passed" in text, text
    if name.endswith("_until_scans"):  # noise never verifies: both attempts ran and reported
        (loop,) = [i for i, e in prompt.items() if e["class_type"] == "AQR_ScanSampler"]
        text = "\n".join(result.outputs[loop]["text"])
        assert text.startswith("FAIL after 2 attempts") and "attempt 2: seed" in text, text


# ---- aesthetic-qr run-workflow ---------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aesthetic_qr.tools.cli", "run-workflow", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.comfyui
def test_run_workflow_cli(comfyui, tmp_path):
    """The named workflow runs on the given server; --set by title and by id are applied (the saved code carries
    the new payload, the file the new prefix); the verify report is printed; exit 0, and 1 when Verify fails."""
    text = f"https://example.com/run-workflow/{uuid.uuid4().hex[:8]}"
    prefix = f"aqr_cli_{uuid.uuid4().hex[:6]}"
    save = next(i for i, e in twin("artup_cpu").items() if e["class_type"] == "SaveImage")
    proc = run_cli("artup_cpu", "--server", comfyui.base_url, "--out", str(tmp_path), "--json",
                   "--set", f"Code.text={text}", "--set", f"{save}.filename_prefix={prefix}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["pass"] is True and result["status"] == "success"
    assert [v["report"].splitlines()[0] for v in result["verify"]] == [f"PASS: expected {text!r}"]
    (out,) = result["outputs"]
    assert Path(out).parent == tmp_path and Path(out).name.startswith(prefix)
    assert scans(Image.open(out).convert("RGB"), text)
    assert "running:" in proc.stderr  # progress from the websocket

    proc = run_cli("artup_cpu", "--server", comfyui.base_url, "--out", str(tmp_path), "--set", f"Code.text={text}",
                   "--set", f"{save}.filename_prefix={prefix}", "--set", "Verify.expected_text=something else")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # only Verify runs again: the rest is cached
    assert "FAIL: expected 'something else'" in proc.stdout and "FAIL: artup_cpu in" in proc.stdout


@pytest.mark.comfyui
@pytest.mark.parametrize("override, message", [
    ("Nowhere.text=x", "matches no node"),
    ("Code.colour=red", "has no input 'colour'"),
    ("Code.version=99", "version"),  # queued, refused by ComfyUI's validation (node_errors)
])
def test_run_workflow_bad_input_exits_2(comfyui, override, message):
    proc = run_cli("artup_cpu", "--server", comfyui.base_url, "--set", override)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_run_workflow_unknown_name_or_server_exits_2(tmp_path):
    proc = run_cli("no_such_workflow")
    assert proc.returncode == 2 and "artup_cpu" in proc.stderr
    proc = run_cli("artup_cpu", "--server", "http://127.0.0.1:9")
    assert proc.returncode == 2 and "no ComfyUI answers" in proc.stderr


# ---- the converter on small hand-written graphs ----------------------------------------------------------------

def _node(class_type, required=None, optional=None, output=(), **extra):
    return {"input": {"required": required or {}, "optional": optional or {}},
            "input_order": {"required": list(required or {}), "optional": list(optional or {})},
            "output": list(output), "output_name": list(output), "display_name": f"{class_type} title", **extra}


INFO = {
    "Src": _node("Src", {"count": ["INT", {"default": 1, "min": 1, "max": 8}]}, output=["IMAGE", "MASK"]),
    "Mid": _node("Mid", {"image": ["IMAGE"], "strength": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}],
                         "seed": ["INT", {"default": 0, "min": 0, "max": 99}],
                         "mode": [["a", "b"], {"default": "a"}], "ckpt": [[]]},
                 {"mask": ["MASK"], "label": ["STRING", {"default": "", "forceInput": True}]}, output=["IMAGE"]),
    "Sink": _node("Sink", {"images": ["IMAGE"], "prefix": ["STRING", {"default": "x"}]}),
    "Load": _node("Load", {"image": [["a.png"], {"image_upload": True}]}, output=["IMAGE", "MASK"]),
    "Seeded": _node("Seeded", {"noise": ["INT", {"control_after_generate": True}],
                               "seed": ["INT", {"control_after_generate": False}],
                               "pick": ["COMBO", {"options": ["x", "y"], "control_after_generate": True}],
                               "flag": ["BOOLEAN", {"default": True}]}),
}


def graph(nodes: list[dict], links: list[list]) -> dict:
    """A UI workflow: nodes as (id, type, widgets_values, inputs, outputs, extra) dicts, links as 0.4 arrays."""
    for node in nodes:
        node.setdefault("mode", 0)
        node.setdefault("inputs", [])
        node.setdefault("outputs", [])
    for lid, src, sslot, dst, dslot, kind in links:
        source = next(n for n in nodes if n["id"] == src)
        target = next(n for n in nodes if n["id"] == dst)
        while len(source["outputs"]) <= sslot:
            source["outputs"].append({"name": "out", "type": kind, "links": []})
        source["outputs"][sslot]["links"].append(lid)
        target["inputs"][dslot]["link"] = lid
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": max([x[0] for x in links], default=0),
            "nodes": nodes, "links": links, "groups": [], "version": 0.4}


def sockets(*pairs):
    return [{"name": name, "type": kind, "link": None} for name, kind in pairs]


def chain(mid_mode=0, via_reroute=False):
    """Src -> [Reroute ->] Mid -> Sink, Src.MASK -> Mid.mask."""
    nodes = [
        {"id": 1, "type": "Src", "widgets_values": [3]},
        {"id": 2, "type": "Mid", "mode": mid_mode, "widgets_values": [0.25, 7, "fixed", "b", "m.safetensors"],
         "inputs": sockets(("image", "IMAGE"), ("mask", "MASK"), ("label", "STRING"))},
        {"id": 3, "type": "Sink", "title": "Out", "widgets_values": ["p"], "inputs": sockets(("images", "IMAGE"))},
        {"id": 4, "type": "Note", "widgets_values": ["hello"]},
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 1, 1, 2, 1, "MASK"]]
    if via_reroute:
        nodes.append({"id": 5, "type": "Reroute", "inputs": sockets(("", "*"))})
        links = [[1, 1, 0, 5, 0, "IMAGE"], [4, 5, 0, 2, 0, "IMAGE"]] + links[1:]
    return graph(nodes, links)


def test_widget_order_follows_the_frontend():
    assert [w.name for w in widgets(INFO["Mid"])] == ["strength", "seed", "control_after_generate", "mode", "ckpt"]
    assert [w.name for w in widgets(INFO["Load"])] == ["image", "upload"]
    assert [(w.name, w.sent) for w in widgets(INFO["Seeded"])] == [
        ("noise", True), ("control_after_generate", False), ("seed", True), ("pick", True),
        ("control_after_generate", False), ("control_filter_list", False), ("flag", True)]


def test_convert_chain_with_reroute_and_note():
    prompt = ui_to_api(chain(via_reroute=True), INFO)
    assert prompt == {
        "1": {"inputs": {"count": 3}, "class_type": "Src", "_meta": {"title": "Src title"}},
        "2": {"inputs": {"strength": 0.25, "seed": 7, "mode": "b", "ckpt": "m.safetensors", "image": ["1", 0],
                         "mask": ["1", 1]}, "class_type": "Mid", "_meta": {"title": "Mid title"}},
        "3": {"inputs": {"prefix": "p", "images": ["2", 0]}, "class_type": "Sink", "_meta": {"title": "Out"}},
    }
    assert prompt == ui_to_api(chain(), INFO)


def test_bypassed_node_is_wired_through_and_muted_node_dropped():
    bypassed = ui_to_api(chain(mid_mode=4), INFO)
    assert set(bypassed) == {"1", "3"} and bypassed["3"]["inputs"]["images"] == ["1", 0]
    muted = ui_to_api(chain(mid_mode=2), INFO)
    assert set(muted) == {"1", "3"} and "images" not in muted["3"]["inputs"]
    report = validate(chain(mid_mode=2), INFO)
    assert report.errors == ["node 3 (Out): required input 'images' is not connected"]


def test_primitive_and_linked_widget_and_upload_and_control():
    nodes = [
        {"id": 1, "type": "Load", "widgets_values": ["a.png", "image"]},
        {"id": 2, "type": "PrimitiveNode", "widgets_values": ["from-primitive"],
         "outputs": [{"name": "STRING", "type": "STRING", "links": [], "widget": {"name": "prefix"}}]},
        {"id": 3, "type": "Sink", "widgets_values": ["stale"],
         "inputs": sockets(("images", "IMAGE")) + [{"name": "prefix", "type": "STRING", "widget": {"name": "prefix"},
                                                    "link": None}]},
        {"id": 4, "type": "Seeded", "widgets_values": [5, "randomize", 6, "y", "fixed", "", False]},
    ]
    workflow = graph(nodes, [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "STRING"]])
    prompt = ui_to_api(workflow, INFO)
    assert prompt["1"]["inputs"] == {"image": "a.png"}
    assert prompt["3"]["inputs"] == {"prefix": "from-primitive", "images": ["1", 0]}
    assert prompt["4"]["inputs"] == {"noise": 5, "seed": 6, "pick": "y", "flag": False}
    assert validate(workflow, INFO, prompt).ok


def test_validator_findings():
    good = chain()
    report = validate(good, INFO, ui_to_api(good, INFO))
    assert report.ok and report.missing_files == ["node 2 (Mid).ckpt = 'm.safetensors'"]

    bad = chain()
    bad["links"][2][5] = "IMAGE"
    bad["links"][2][2] = 0  # Src.IMAGE into Mid.mask
    bad["nodes"][0]["outputs"][0]["links"].append(3)
    bad["nodes"][0]["outputs"][1]["links"].remove(3)
    mid = bad["nodes"][1]
    mid["widgets_values"] = [1.5, 7, "often", "c", "m.safetensors"]
    bad["nodes"].append({"id": 9, "type": "Unknown", "mode": 0, "inputs": [], "outputs": []})
    assert validate(bad, INFO, missing_hint=" (not recorded)").errors == [
        "node 9 (Unknown): type 'Unknown' is unknown (not recorded)", "last_node_id 4 is below the largest node id"]
    bad["nodes"].pop()
    assert validate(bad, INFO).errors == [
        "link 3: node 1 (Src) output 0 (IMAGE) cannot feed node 2 (Mid).mask (MASK)",
        "node 2 (Mid).strength = 1.5 is outside [0.0, 1.0]",
        "node 2 (Mid).control_after_generate = 'often' is not one of fixed, increment, decrement, randomize",
        "node 2 (Mid).mode = 'c' is not one of 'a', 'b'",
    ]

    stale = ui_to_api(good, INFO)
    stale["3"]["inputs"]["prefix"] = "old"
    assert validate(good, INFO, stale).errors == ["API twin: node 3.prefix: twin 'old', conversion 'p'"]


def test_types_match_like_litegraph():
    assert types_match("IMAGE", "IMAGE") and types_match("image", "IMAGE")
    assert types_match("*", "MODEL") and types_match("LATENT", "*")
    assert types_match("IMAGE,MASK", "MASK") and not types_match("IMAGE", "MASK")
    assert types_match(["a", "b"], "COMBO") and not types_match("STRING", ["a", "b"])


INFO_NUM = {**INFO, "Num": _node("Num", {"value": ["FLOAT", {"default": 0.0}]}, output=["FLOAT"])}


def authored_prompt() -> dict:
    return {
        "1": {"inputs": {"count": 2}, "class_type": "Src", "_meta": {"title": "Source"}},
        "5": {"inputs": {"value": 0.75}, "class_type": "Num", "_meta": {"title": "Num title"}},
        "2": {"inputs": {"strength": ["5", 0], "seed": 9, "mode": "b", "ckpt": "m.safetensors", "image": ["1", 0],
                         "mask": ["1", 1]}, "class_type": "Mid", "_meta": {"title": "Mid title"}},
        "3": {"inputs": {"prefix": "p", "images": ["2", 0]}, "class_type": "Sink", "_meta": {"title": "Out"}},
        "4": {"inputs": {"image": "a.png"}, "class_type": "Load", "_meta": {"title": "Load title"}},
        "6": {"inputs": {"noise": 5, "seed": 6, "pick": "y", "flag": False}, "class_type": "Seeded",
              "_meta": {"title": "Seeded title"}},
    }


def test_api_to_ui_round_trips_and_lays_out_in_columns():
    prompt = authored_prompt()
    workflow = api_to_ui(prompt, INFO_NUM, [("Read me", "models: none")])
    assert ui_to_api(workflow, INFO_NUM) == prompt
    assert validate(workflow, INFO_NUM, prompt).ok
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert nodes[1].get("title") == "Source" and "title" not in nodes[2]  # the display name is not repeated
    assert nodes[2]["widgets_values"] == [0.5, 9, "fixed", "b", "m.safetensors"]  # a linked widget keeps its default
    assert {"name": "strength", "type": "FLOAT", "link": 2, "widget": {"name": "strength"}} in nodes[2]["inputs"]
    assert nodes[4]["widgets_values"] == ["a.png", "image"]
    assert nodes[6]["widgets_values"] == [5, "fixed", 6, "y", "fixed", "", False]
    x = {i: n["pos"][0] for i, n in nodes.items()}
    assert x[1] == x[5] == x[4] == x[6] < x[2] < x[3]  # a column per step along the links
    (note,) = [n for n in workflow["nodes"] if n["type"] == "Note"]
    assert note["id"] == 7 and note["widgets_values"] == ["models: none"] and note["title"] == "Read me"
    assert note["pos"][1] + note["size"][1] < min(n["pos"][1] for n in nodes.values() if n is not note)
    assert workflow["last_node_id"] == 7 and workflow["last_link_id"] == len(workflow["links"]) == 4


def test_api_to_ui_refuses_broken_prompts():
    missing = authored_prompt()
    missing["3"]["inputs"]["images"] = ["9", 0]
    with pytest.raises(WorkflowError, match="missing node 9"):
        api_to_ui(missing, INFO_NUM)
    loop = authored_prompt()
    loop["1"] = {"inputs": {"strength": ["2", 0]}, "class_type": "Num", "_meta": {}}
    loop["5"]["inputs"]["value"] = ["1", 0]
    with pytest.raises(WorkflowError, match="loop"):
        api_to_ui(loop, INFO_NUM)
    unknown = authored_prompt()
    unknown["1"]["class_type"] = "Nope"
    with pytest.raises(WorkflowError, match="Nope"):
        api_to_ui(unknown, INFO_NUM)
