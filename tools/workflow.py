"""ComfyUI workflows without the browser: UI-format JSON (what "Save" writes, what the template browser loads) to
the API-format prompt that ``POST /prompt`` takes, and a validator of UI workflows against ``/object_info``.

Core has no server-side converter (the frontend's ``graphToPrompt`` does it), so this module re-implements the
frontend's rules (ComfyUI frontend 1.32, ``executionUtil.ts``, ``litegraphService.ts``, ``widgets.ts``):

* a node's widgets are its INT / FLOAT / STRING / BOOLEAN / COMBO inputs in ``input_order`` (required, then
  optional), except ``forceInput`` ones; ``widgets_values`` is positional over them;
* an INT input with ``control_after_generate`` (or named ``seed`` / ``noise_seed`` unless it says
  ``control_after_generate: false``) is followed by its control widget ("fixed", "randomize", ...), a COMBO with it
  by a control and a filter widget; an ``image_upload`` combo adds an ``upload`` button widget after all inputs.
  These companions are saved in ``widgets_values`` but never sent;
* a link into an input overrides the widget value; Reroute passes links through; a PrimitiveNode's value is
  copied into the widget it feeds; Note / MarkdownNote are ignored;
* muted nodes (mode 2) are dropped with every input that links to them; bypassed nodes (mode 4) are dropped and
  each link through one is rewired to the bypassed node's input of the same type (same slot first);
* ``_meta.title`` is the node's title, else the node's display name.

Workflows in the 0.4 format (links as arrays) and the 1.0 format (links as objects) are read; subgraphs and group
nodes are refused with a clear error. ``api_to_ui`` goes the other way, for workflows written in code
(``scripts/author_workflows.py``): its output converts back to the same prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}  # frontend-only: never in a prompt
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "MARKDOWN", "COLOR", "TEXTAREA"}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
MUTED, BYPASSED = 2, 4
# Combo values with these suffixes name files (models, input pictures) a test server may not have.
FILE_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".sft", ".onnx", ".gguf",
                 ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mp4", ".webm"}
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"


class WorkflowError(ValueError):
    """The workflow cannot be converted (unknown node type, subgraph, malformed JSON)."""


@dataclass(frozen=True)
class Widget:
    name: str
    spec: list
    kind: str  # a WIDGET_TYPES entry, or "CONTROL", "FILTER", "UPLOAD" for the frontend-only companions

    @property
    def sent(self) -> bool:
        return self.kind not in ("CONTROL", "FILTER", "UPLOAD")


@dataclass
class Link:
    id: int
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int


@dataclass
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)  # valid names of files the server does not list

    @property
    def ok(self) -> bool:
        return not self.errors


# ---- object_info helpers ---------------------------------------------------------------------------------------

def spec_options(spec: Any) -> dict:
    return spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def spec_type(spec: Any) -> str:
    """The input's socket type; a list of choices (V1 combo) is "COMBO"."""
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    return "COMBO" if isinstance(kind, list) else str(kind)


def combo_options(spec: Any) -> list:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
    return list(kind) if isinstance(kind, list) else list(spec_options(spec).get("options") or [])


def input_specs(info: dict) -> dict[str, tuple[list, bool]]:
    """name -> (spec, required) for the required and optional inputs, in the frontend's order."""
    inputs = info.get("input") or {}
    order = info.get("input_order") or {}
    out: dict[str, tuple[list, bool]] = {}
    for section, required in (("required", True), ("optional", False)):
        specs = inputs.get(section) or {}
        for name in list(order.get(section) or []) + list(specs):
            if name in specs and name not in out:
                out[name] = (specs[name], required)
    return out


def widgets(info: dict) -> list[Widget]:
    """The node's widgets in the order of its ``widgets_values``."""
    out: list[Widget] = []
    for name, (spec, _) in input_specs(info).items():
        kind, opts = spec_type(spec), spec_options(spec)
        if kind not in WIDGET_TYPES or opts.get("forceInput"):
            continue
        out.append(Widget(name, spec, kind))
        control = opts.get("control_after_generate")
        if kind == "INT" and (control if control is not None else name in ("seed", "noise_seed")):
            out.append(Widget("control_after_generate", spec, "CONTROL"))
        elif kind == "COMBO" and control:
            out += [Widget("control_after_generate", spec, "CONTROL"), Widget("control_filter_list", spec, "FILTER")]
    required = (info.get("input") or {}).get("required") or {}
    if any(spec_type(s) == "COMBO" and any(spec_options(s).get(o) for o in UPLOAD_OPTIONS) for s in required.values()):
        out.append(Widget("upload", ["IMAGEUPLOAD", {}], "UPLOAD"))
    return out


def default_value(spec: Any) -> Any:
    opts = spec_options(spec)
    if "default" in opts:
        return opts["default"]
    options = combo_options(spec)
    if spec_type(spec) == "COMBO":
        return options[0] if options else None
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False}.get(spec_type(spec), "")


def types_match(output_type: Any, input_type: Any) -> bool:
    """LiteGraph's ``isValidConnection``: "*" and "" match anything, comma lists match when any member does,
    case-insensitive. A list of choices counts as "COMBO"."""
    a = "COMBO" if isinstance(output_type, list) else str(output_type or "*")
    b = "COMBO" if isinstance(input_type, list) else str(input_type or "*")
    if a == "*" or b == "*":
        return True
    return bool({t.strip().lower() for t in a.split(",")} & {t.strip().lower() for t in b.split(",")})


# ---- reading a UI workflow -----------------------------------------------------------------------------------

def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def is_api_prompt(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def _links(workflow: dict) -> dict[int, Link]:
    out = {}
    for raw in workflow.get("links") or []:
        if isinstance(raw, dict):
            link = Link(raw["id"], raw["origin_id"], raw["origin_slot"], raw["target_id"], raw["target_slot"])
        else:
            link = Link(*raw[:5])
        out[link.id] = link
    return out


class _Graph:
    def __init__(self, workflow: dict, object_info: dict):
        if not is_ui_workflow(workflow):
            raise WorkflowError("not a UI-format workflow (no 'nodes' list)")
        if (workflow.get("definitions") or {}).get("subgraphs"):
            raise WorkflowError("subgraphs are not supported: unpack them in ComfyUI and save again")
        self.object_info = object_info
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = _links(workflow)

    def info(self, node: dict) -> dict:
        info = self.object_info.get(node["type"])
        if info is None:
            raise WorkflowError(f"node {node['id']} ({node.get('title') or node['type']}): type {node['type']!r} "
                                "is not installed on this ComfyUI")
        return info

    def widget_values(self, node: dict) -> list[tuple[Widget, Any]]:
        values = node.get("widgets_values")
        ws = widgets(self.info(node))
        if isinstance(values, dict):  # some custom nodes save a name -> value map
            return [(w, values.get(w.name, default_value(w.spec))) for w in ws]
        values = values or []
        return [(w, values[i] if i < len(values) else default_value(w.spec)) for i, w in enumerate(ws)]

    def resolve_input(self, node: dict, slot: int, target_type: Any, seen: set) -> tuple | None:
        """What feeds input ``slot``: ("link", origin id, origin slot), ("value", v) or None."""
        inputs = node.get("inputs") or []
        if slot >= len(inputs) or inputs[slot].get("link") is None:
            return None
        link = self.links.get(inputs[slot]["link"])
        if link is None or link.origin_id not in self.nodes:
            raise WorkflowError(f"node {node['id']}: input {inputs[slot].get('name')!r} names a missing link")
        return self.resolve_output(self.nodes[link.origin_id], link.origin_slot, target_type, seen)

    def resolve_output(self, node: dict, slot: int, target_type: Any, seen: set) -> tuple | None:
        key = (node["id"], slot)
        if key in seen:
            raise WorkflowError(f"node {node['id']}: links form a loop")
        seen.add(key)
        if node.get("mode") == BYPASSED:
            index = self.bypass_slot(node, slot, target_type)
            return None if index < 0 else self.resolve_input(node, index, target_type, seen)
        if node["type"] == "Reroute":
            return self.resolve_input(node, 0, target_type, seen)
        if node["type"] == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if node["type"] in VIRTUAL_NODES:
            return None
        return ("link", node["id"], slot)

    @staticmethod
    def bypass_slot(node: dict, slot: int, target_type: Any) -> int:
        """The frontend's choice of input that stands in for output ``slot`` of a bypassed node."""
        inputs, outputs = node.get("inputs") or [], node.get("outputs") or []
        if target_type in ("*", "", None):
            return slot if len(inputs) > slot else 0
        out_type = outputs[slot].get("type") if slot < len(outputs) else "*"
        if slot < len(inputs) and types_match(out_type, inputs[slot].get("type")) \
                and types_match(target_type, inputs[slot].get("type")):
            return slot
        for i, inp in enumerate(inputs):
            if inp.get("type") == target_type:
                return i
        for i, inp in enumerate(inputs):
            if types_match(out_type, inp.get("type")) and types_match(target_type, inp.get("type")):
                return i
        return -1

    def node_inputs(self, node: dict) -> dict:
        """The API ``inputs`` of one node: sent widget values, overridden by what its linked inputs resolve to."""
        inputs: dict[str, Any] = {}
        for widget, value in self.widget_values(node):
            if widget.sent:
                inputs[widget.name] = {"__value__": value} if isinstance(value, list) else value
        for slot, inp in enumerate(node.get("inputs") or []):
            resolved = self.resolve_input(node, slot, inp.get("type"), set())
            if resolved is None:
                continue
            if resolved[0] == "value":
                value = resolved[1]
                inputs[inp["name"]] = {"__value__": value} if isinstance(value, list) else value
            else:
                inputs[inp["name"]] = [str(resolved[1]), int(resolved[2])]
        return inputs


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API-format prompt the frontend's "Export (API)" would write for this UI workflow."""
    graph = _Graph(workflow, object_info)
    prompt: dict[str, dict] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: (n.get("order", 0), n["id"])):
        if node["type"] in VIRTUAL_NODES or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = graph.info(node)
        prompt[str(node["id"])] = {
            "inputs": graph.node_inputs(node),
            "class_type": node["type"],
            "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]},
        }
    for entry in prompt.values():  # drop inputs fed by muted nodes, as the frontend does
        entry["inputs"] = {k: v for k, v in entry["inputs"].items()
                           if not (isinstance(v, list) and len(v) == 2 and v[0] not in prompt)}
    return prompt


# ---- validation ----------------------------------------------------------------------------------------------

def _check_value(where: str, spec: list, value: Any, report: ValidationReport) -> None:
    kind, opts = spec_type(spec), spec_options(spec)
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    if kind == "COMBO":
        options = combo_options(spec)
        if value in options:
            return
        if isinstance(value, str) and Path(value).suffix.lower() in FILE_SUFFIXES:
            report.missing_files.append(f"{where} = {value!r}")
        else:
            shown = ", ".join(map(repr, options[:12])) + (" …" if len(options) > 12 else "")
            report.errors.append(f"{where} = {value!r} is not one of {shown}")
        return
    ok = {"INT": isinstance(value, int) and not isinstance(value, bool),
          "FLOAT": isinstance(value, (int, float)) and not isinstance(value, bool),
          "BOOLEAN": isinstance(value, bool)}.get(kind, isinstance(value, str))
    if not ok:
        report.errors.append(f"{where} = {value!r} is not a valid {kind}")
    elif kind in ("INT", "FLOAT"):
        if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
            report.errors.append(f"{where} = {value!r} is outside [{opts.get('min')}, {opts.get('max')}]")


def _source_type(graph: _Graph, node: dict, slot: int, seen: set) -> Any:
    """Type of what really feeds a link that starts at ``node``'s output ``slot`` (through reroutes)."""
    if node["type"] == "Reroute":
        inputs = node.get("inputs") or []
        link = graph.links.get(inputs[0].get("link")) if inputs else None
        if link is None or link.origin_id not in graph.nodes or node["id"] in seen:
            return "*"
        seen.add(node["id"])
        return _source_type(graph, graph.nodes[link.origin_id], link.origin_slot, seen)
    if node["type"] == "PrimitiveNode":
        outputs = node.get("outputs") or [{}]
        return outputs[0].get("type", "*")
    outputs = graph.object_info[node["type"]].get("output") or []
    return outputs[slot] if slot < len(outputs) else None


def validate(workflow: dict, object_info: dict, api: dict | None = None, *,
             missing_hint: str = "") -> ValidationReport:
    """Check a UI workflow against ``object_info``: node types exist, every link connects existing slots of
    matching types, every widget value suits its input (combo values naming files the server does not list go to
    ``missing_files``), required inputs are fed, ids are consistent, and ``api`` (its API twin) equals the
    conversion. ``missing_hint`` ends the message for an unknown node type."""
    report = ValidationReport()
    try:
        graph = _Graph(workflow, object_info)
    except WorkflowError as err:
        report.errors.append(str(err))
        return report
    names = {}
    for node in workflow["nodes"]:
        name = f"node {node['id']} ({node.get('title') or node['type']})"
        names[node["id"]] = name
        if node["type"] not in VIRTUAL_NODES and node["type"] not in object_info:
            report.errors.append(f"{name}: type {node['type']!r} is unknown{missing_hint}")
    if len(names) != len(workflow["nodes"]):
        report.errors.append("node ids are not unique")
    if names and (workflow.get("last_node_id") or 0) < max(names):
        report.errors.append(f"last_node_id {workflow.get('last_node_id')} is below the largest node id")
    if graph.links and (workflow.get("last_link_id") or 0) < max(graph.links):
        report.errors.append(f"last_link_id {workflow.get('last_link_id')} is below the largest link id")
    if report.errors:
        return report

    for link in graph.links.values():
        where = f"link {link.id}"
        origin, target = graph.nodes.get(link.origin_id), graph.nodes.get(link.target_id)
        if origin is None or target is None:
            report.errors.append(f"{where}: connects a missing node")
            continue
        outs, ins = origin.get("outputs") or [], target.get("inputs") or []
        if link.origin_slot >= len(outs) or link.id not in (outs[link.origin_slot].get("links") or []):
            report.errors.append(f"{where}: {names[origin['id']]} output {link.origin_slot} does not list it")
            continue
        if link.target_slot >= len(ins) or ins[link.target_slot].get("link") != link.id:
            report.errors.append(f"{where}: {names[target['id']]} input {link.target_slot} does not hold it")
            continue
        if target["type"] in VIRTUAL_NODES:
            continue  # checked where the reroute's links end
        input_name = ins[link.target_slot].get("name")
        spec, _ = input_specs(object_info[target["type"]]).get(input_name, (None, False))
        if spec is None:
            report.errors.append(f"{where}: {names[target['id']]} has no input {input_name!r}")
            continue
        source = _source_type(graph, origin, link.origin_slot, set())
        if source is None:
            report.errors.append(f"{where}: {names[origin['id']]} has no output {link.origin_slot}")
        elif not types_match(source, spec_type(spec)):
            report.errors.append(f"{where}: {names[origin['id']]} output {link.origin_slot} "
                                 f"({spec_type([source])}) cannot feed {names[target['id']]}.{input_name} "
                                 f"({spec_type(spec)})")

    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES:
            continue
        specs = input_specs(object_info[node["type"]])
        try:
            for widget, value in graph.widget_values(node):
                where = f"{names[node['id']]}.{widget.name}"
                if widget.kind == "CONTROL":  # True / False: the old frontend's "randomize" toggle
                    if value not in CONTROL_VALUES + ("increment-wrap",) and not isinstance(value, bool):
                        report.errors.append(f"{where} = {value!r} is not one of {', '.join(CONTROL_VALUES)}")
                elif widget.sent:
                    _check_value(where, widget.spec, value, report)
            inputs = graph.node_inputs(node)
        except WorkflowError as err:
            report.errors.append(str(err))
            continue
        for name, value in inputs.items():  # values arriving from primitives
            if not isinstance(value, list) and name in specs and spec_type(specs[name][0]) not in WIDGET_TYPES:
                report.errors.append(f"{names[node['id']]}.{name}: a value feeds a {spec_type(specs[name][0])} "
                                     "socket")
    if report.errors:
        return report

    prompt = ui_to_api(workflow, object_info)
    for node_id, entry in prompt.items():
        for name, (_, required) in input_specs(object_info[entry["class_type"]]).items():
            if required and name not in entry["inputs"]:
                report.errors.append(f"{names[int(node_id)]}: required input {name!r} is not connected")
    if api is not None:
        report.errors += [f"API twin: {d}" for d in prompt_differences(api, prompt)]
    return report


def prompt_differences(expected: dict, actual: dict) -> list[str]:
    """Human-readable differences between two API prompts (empty when equal)."""
    out = []
    for node_id in sorted(set(expected) | set(actual), key=lambda k: (len(k), k)):
        a, b = expected.get(node_id), actual.get(node_id)
        if a is None or b is None:
            out.append(f"node {node_id} only in the {'conversion' if a is None else 'twin'}")
            continue
        for key in ("class_type", "_meta"):
            if a.get(key) != b.get(key):
                out.append(f"node {node_id} {key}: twin {a.get(key)!r}, conversion {b.get(key)!r}")
        ai, bi = a.get("inputs") or {}, b.get("inputs") or {}
        for name in sorted(set(ai) | set(bi)):
            if ai.get(name, "<absent>") != bi.get(name, "<absent>"):
                out.append(f"node {node_id}.{name}: twin {ai.get(name, '<absent>')!r}, "
                           f"conversion {bi.get(name, '<absent>')!r}")
    return out


# ---- bundled pictures ------------------------------------------------------------------------------------------

def bundled_inputs(prompt: dict, object_info: dict) -> list[Path]:
    """Pictures from this pack's ``assets/`` that the prompt loads by name and the server does not list yet
    (upload them to its input folder before queuing). Only a bare file name of a regular file directly inside
    ``assets/`` counts: a path (``../../etc/passwd``, ``/home/…``) or a link never turns into an upload."""
    out = []
    assets = ASSETS_DIR.resolve()
    for entry in prompt.values():
        specs = input_specs(object_info.get(entry.get("class_type"), {}))
        for name, value in (entry.get("inputs") or {}).items():
            spec = specs.get(name, (None,))[0]
            if spec is None or not any(spec_options(spec).get(o) for o in UPLOAD_OPTIONS):
                continue
            if not isinstance(value, str) or value in combo_options(spec) or Path(value).name != value:
                continue
            path = ASSETS_DIR / value
            if (path.is_file() and not path.is_symlink() and path.resolve().parent == assets
                    and path not in out):
                out.append(path)
    return out


def recorded_definitions(path: str | Path) -> dict:
    """Node definitions recorded in ``/object_info`` form (third-party packs the test server does not have);
    keys starting with "_" carry provenance and are skipped."""
    return {k: v for k, v in load_json(path).items() if not k.startswith("_")}


def load_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WorkflowError(f"cannot read {path}: {err}") from None


# ---- API prompt -> UI workflow (for authoring workflows in code) ----------------------------------------------

def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _ui_type(kind: Any) -> str:
    return "COMBO" if isinstance(kind, list) else str(kind)


def _node_size(info: dict, n_inputs: int, n_outputs: int) -> list[int]:
    """A rough LiteGraph size: title, one row per socket pair, one per widget, more for multiline text."""
    rows = max(n_inputs, n_outputs)
    tall = 0
    for w in widgets(info):
        if w.kind in ("CONTROL", "FILTER"):
            continue
        tall += 100 if spec_options(w.spec).get("multiline") else 24
    return [400 if tall >= 100 else 320, 30 + 22 * rows + tall + 10]


def api_to_ui(prompt: dict, object_info: dict, notes: list[tuple[str, str]] = (), *,
              column_width: int = 460, gap: int = 40) -> dict:
    """A UI workflow (0.4 format) whose conversion (``ui_to_api``) is ``prompt``: widgets_values in the frontend's
    order (control widgets "fixed", widget inputs fed by a link get a socket and keep their default as value),
    links from the prompt's ``[node id, slot]`` pairs, and a layout in columns by longest path from the sources.
    ``notes`` become Note nodes (title, text) above the graph. Node ids must be integer strings."""
    ids = {key: int(key) for key in prompt}
    if len(set(ids.values())) != len(ids):
        raise WorkflowError("node ids must be distinct integers")
    for key, entry in prompt.items():
        if entry["class_type"] not in object_info:
            raise WorkflowError(f"node {key}: type {entry['class_type']!r} is not in object_info")
        for name, value in entry.get("inputs", {}).items():
            if _is_link(value) and value[0] not in prompt:
                raise WorkflowError(f"node {key}.{name}: links to a missing node {value[0]}")

    depth: dict[str, int] = {}

    def level(key: str, path: tuple = ()) -> int:
        if key in path:
            raise WorkflowError(f"node {key}: links form a loop")
        if key not in depth:
            sources = [v[0] for v in prompt[key].get("inputs", {}).values() if _is_link(v)]
            depth[key] = 1 + max((level(s, path + (key,)) for s in sources), default=-1)
        return depth[key]

    for key in prompt:
        level(key)
    order = sorted(prompt, key=lambda k: (depth[k], ids[k]))

    nodes: dict[str, dict] = {}
    links: list[list] = []
    for key in order:
        entry, info = prompt[key], object_info[prompt[key]["class_type"]]
        inputs = entry.get("inputs", {})
        values = []
        for w in widgets(info):
            if w.kind == "CONTROL":
                values.append("fixed")
            elif w.kind == "FILTER":
                values.append("")
            elif w.kind == "UPLOAD":
                values.append("image")
            else:
                value = inputs.get(w.name, default_value(w.spec))
                value = default_value(w.spec) if _is_link(value) else value
                values.append(value["__value__"] if isinstance(value, dict) and "__value__" in value else value)
        sockets = []
        for name, (spec, required) in input_specs(info).items():
            kind = spec_type(spec)
            is_widget = kind in WIDGET_TYPES and not spec_options(spec).get("forceInput")
            if is_widget and not _is_link(inputs.get(name)):
                continue
            socket = {"name": name, "type": kind, "link": None}
            if is_widget:
                socket["widget"] = {"name": name}
            if not required:
                socket["shape"] = 7
            sockets.append(socket)
        outputs = [{"name": name, "type": _ui_type(kind), "links": None, "slot_index": i}
                   for i, (kind, name) in enumerate(zip(info.get("output") or [],
                                                       info.get("output_name") or info.get("output") or []))]
        node = {"id": ids[key], "type": entry["class_type"], "pos": [0, 0],
                "size": _node_size(info, len(sockets), len(outputs)), "flags": {}, "order": len(nodes),
                "mode": 0, "inputs": sockets, "outputs": outputs}
        title = (entry.get("_meta") or {}).get("title")
        if title and title != info.get("display_name"):
            node["title"] = title
        node["properties"] = {"Node name for S&R": entry["class_type"]}
        node["widgets_values"] = values
        nodes[key] = node

    for key in order:  # links in the order of their target's inputs
        for socket in nodes[key]["inputs"]:
            value = prompt[key]["inputs"].get(socket["name"])
            if not _is_link(value):
                continue
            origin, slot = nodes[value[0]], value[1]
            if slot >= len(origin["outputs"]):
                raise WorkflowError(f"node {key}.{socket['name']}: node {value[0]} has no output {slot}")
            link_id = len(links) + 1
            links.append([link_id, origin["id"], slot, ids[key], nodes[key]["inputs"].index(socket),
                          origin["outputs"][slot]["type"]])
            socket["link"] = link_id
            origin["outputs"][slot]["links"] = (origin["outputs"][slot]["links"] or []) + [link_id]

    columns: dict[int, int] = {}
    for key in order:
        x = depth[key]
        nodes[key]["pos"] = [40 + x * column_width, columns.get(x, 120)]
        columns[x] = nodes[key]["pos"][1] + nodes[key]["size"][1] + gap
    width = min(max(depth.values(), default=0) * column_width + 400, 1400)
    next_id, top, note_nodes = max(ids.values(), default=0) + 1, 80, []
    for i, (title, text) in enumerate(notes):
        height = 40 + 19 * sum(1 + len(line) * 8 // width for line in text.splitlines())
        note_nodes.append({"id": next_id + i, "type": "Note", "pos": [40, 0], "size": [width, height], "flags": {},
                           "order": len(nodes) + i, "mode": 0, "inputs": [], "outputs": [], "title": title,
                           "properties": {}, "widgets_values": [text], "color": "#432", "bgcolor": "#653"})
    for note in reversed(note_nodes):  # stacked above the graph
        top -= note["size"][1] + gap
        note["pos"][1] = top
    all_nodes = list(nodes.values()) + note_nodes
    return {"last_node_id": max((n["id"] for n in all_nodes), default=0), "last_link_id": len(links),
            "nodes": all_nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [40, -top + 40]}}, "version": 0.4}
