"""The `aesthetic-qr` command: the pack's pipelines without ComfyUI, and `run-workflow` to run a workflow on ComfyUI
over its HTTP API. `--json` prints machine-readable output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..qr import QRCode, QRInputError, encode
from ..qr.pixels import load_picture, to_float_rgb, to_uint8
from ..qr.render import STYLES, render
from ..scan.report import VERDICT_KEY


def save_image(image: np.ndarray, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)


def load_image(path: str) -> np.ndarray:
    """H×W×3 float32 in [0, 1], as a viewer shows the file (EXIF orientation applied, transparency on white)."""
    return to_float_rgb(load_picture(path))


def _version(value: str) -> int | None:
    return None if value == "auto" else int(value)


def cmd_encode(args: argparse.Namespace) -> dict:
    qr = encode(args.text, version=_version(args.version), ecl=args.ecl,
                mask=None if args.mask == "auto" else int(args.mask), boost_ecl=args.boost_ecl)
    image, geo = render(qr, module_px=args.module_px, border=args.border, style=args.style, multiple=args.multiple)
    save_image(image, args.out)
    return {**qr.with_geometry(geo).to_json(), "out": args.out}


def cmd_verify(args: argparse.Namespace) -> dict:
    from ..scan.report import verify_image

    image = load_image(args.image)
    qr = None
    if args.qr:
        try:
            qr = QRCode.from_json(json.loads(Path(args.qr).read_text()))
        except (OSError, ValueError, KeyError) as err:
            raise QRInputError(f"cannot use {args.qr!r} as a code description (write one with "
                               f"`aesthetic-qr encode --json`): {err}") from None
    expected = args.expect if args.expect is not None else qr.text
    report = verify_image(image, expected, qr=qr, suite=args.suite)
    return report.to_dict()


def cmd_reshuffle(args: argparse.Namespace) -> dict:
    from ..art.follow import follow_picture

    picture = load_image(args.target)
    fixed = load_image(args.fixed_mask).mean(axis=2) if args.fixed_mask else None
    result = follow_picture(args.text, picture, version=_version(args.version), ecl=args.ecl,
                            mask=None if args.mask == "search" else int(args.mask),
                            extra_versions=args.extra_versions, module_px=args.module_px, border=args.border,
                            multiple=args.multiple, priority=args.priority, dither=args.dither, fixed=fixed,
                            url_fragment=args.url_fragment, seed=args.seed)
    geo = result.qr.geometry
    image, _ = render(result.qr, geo.module_px, geo.border, args.style, multiple=args.multiple)
    save_image(image, args.out)
    report = result.report
    return {**result.qr.to_json(), "requested": report.requested, "pinned": report.pinned,
            "impossible": report.impossible, "match_fraction": round(report.match_fraction, 4),
            "fixed_requested": report.fixed_requested, "fixed_unmet": report.fixed_unmet,
            "per_block": report.per_block, "candidates": result.candidates, "out": args.out}


def cmd_artup(args: argparse.Namespace) -> dict:
    import time

    from ..art.artup import ArtupConfig, artup_until_scans
    from ..scan.report import verify_image

    start = time.perf_counter()
    config = ArtupConfig(version=_version(args.version), ecl=args.ecl, p_min=args.p_min, size_px=args.size_px,
                         seed=args.seed)
    result, attempts = artup_until_scans(load_image(args.image), args.text, config=config)
    seconds = time.perf_counter() - start
    save_image(result.image, args.out)
    report = verify_image(result.image, result.qr.text, result.qr, suite=True)
    return {**report.to_dict(), "qr": result.qr.summary(), "mean_p": round(result.mean_p, 4), "attempts": attempts,
            "seconds": round(seconds, 2), "out": args.out}


def cmd_personalize(args: argparse.Namespace) -> dict:
    import time

    from ..art.follow import follow_picture
    from ..art.pixel_refine import PixelRefineConfig, pixel_refine
    from ..scan.report import verify_image

    start = time.perf_counter()
    picture = load_image(args.image)
    follow = follow_picture(args.text, picture, version=_version(args.version), ecl=args.ecl, mask=None,
                            module_px=args.module_px, border=args.border, multiple=8, priority="artup")
    result = pixel_refine(picture, follow.qr, PixelRefineConfig(iterations=args.iterations, seed=args.seed))
    save_image(result.image, args.out)
    report = verify_image(result.image, follow.qr.text, follow.qr, suite=True)
    return {**report.to_dict(), "qr": follow.qr.summary(), "iterations": result.iterations,
            "stopped_early": result.stopped_early, "seconds": round(time.perf_counter() - start, 2),
            "out": args.out}


WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"


def _output_path(out_dir: Path, subfolder: str, filename: str) -> Path:
    """Where a server's output goes under ``--out``; a name that would land outside it (``..``, an absolute part,
    a link) is refused: the server, not the user, chose it."""
    filename = str(filename or "")
    parts = [*Path(str(subfolder or "")).parts, filename]
    path = out_dir.joinpath(*parts)
    if (not filename or Path(filename).name != filename or any(p == ".." or Path(p).is_absolute() for p in parts)
            or path.is_symlink() or not path.resolve().is_relative_to(out_dir.resolve())):
        raise QRInputError(f"the server named an output outside --out ({subfolder!r}, {filename!r}); not saved")
    return path


def _load_workflow(ref: str) -> tuple[str, dict | None, dict | None]:
    """``(name, ui, api)`` for a name from workflows/ or a path to a UI-format or API-format JSON file."""
    from .workflow import WorkflowError, is_api_prompt, is_ui_workflow, load_json

    path = Path(ref)
    try:
        if path.suffix != ".json" and not path.exists():
            ui_path, api_path = WORKFLOWS_DIR / f"{ref}.json", WORKFLOWS_DIR / "api" / f"{ref}.json"
            if not ui_path.is_file() and not api_path.is_file():
                names = sorted(p.stem for p in WORKFLOWS_DIR.glob("*.json"))
                raise QRInputError(f"no workflow {ref!r}: give a path to a JSON file or one of {', '.join(names)}")
            return (ref, load_json(ui_path) if ui_path.is_file() else None,
                    load_json(api_path) if api_path.is_file() else None)
        data = load_json(path)
    except WorkflowError as err:
        raise QRInputError(str(err)) from None
    if is_ui_workflow(data):
        return path.stem, data, None
    if is_api_prompt(data):
        return path.stem, None, data
    raise QRInputError(f"{ref} is neither a UI workflow (nodes, links) nor an API prompt (id -> class_type, inputs)")


def _parse_set(item: str) -> tuple[str, str, object]:
    """``node.input=value``: node by id or title, value as JSON when it parses, else the plain string."""
    target, sep, raw = item.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise QRInputError(f"--set {item!r}: write NODE.INPUT=VALUE (NODE is a node id or title)")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return node, name, value


def _apply_sets(prompt: dict, sets: list[tuple[str, str, object]], object_info: dict) -> None:
    from .workflow import input_specs

    for node, name, value in sets:
        ids = [node] if node in prompt else [i for i, e in prompt.items() if e.get("_meta", {}).get("title") == node]
        if len(ids) != 1:
            titles = ", ".join(f"{i} ({(e.get('_meta') or {}).get('title', e['class_type'])})"
                               for i, e in prompt.items())
            found = "matches several nodes" if ids else "matches no node"
            raise QRInputError(f"--set {node}.{name}: {node!r} {found}; nodes: {titles}")
        entry = prompt[ids[0]]
        known = input_specs(object_info.get(entry["class_type"], {})) or entry["inputs"]
        if name not in known:
            raise QRInputError(f"--set {node}.{name}: {entry['class_type']} has no input {name!r}; inputs: "
                               f"{', '.join(known)}")
        entry["inputs"][name] = value


def _progress(prompt: dict):
    """A websocket-event callback that shows which node runs and its progress on stderr."""
    import time

    tty, state = sys.stderr.isatty(), {"last": 0.0}

    def title(node) -> str:
        entry = prompt.get(str(node)) or {}
        return f"{node} {(entry.get('_meta') or {}).get('title') or entry.get('class_type', '')}".strip()

    def show(event: str, data: dict) -> None:
        if event == "execution_cached" and data.get("nodes"):
            print(f"cached: {', '.join(title(n) for n in data['nodes'])}", file=sys.stderr)
        elif event == "executing" and data.get("node") is not None:
            print(("\n" if tty and state["last"] else "") + f"running: {title(data['node'])}", file=sys.stderr)
            state["last"] = 0.0
        elif event == "progress":
            now, line = time.monotonic(), f"  {data.get('value')}/{data.get('max')}"
            if tty:
                print("\r" + line, end="", file=sys.stderr, flush=True)
                state["last"] = now
            elif now - state["last"] >= 2 or data.get("value") == data.get("max"):
                print(line, file=sys.stderr)
                state["last"] = now
        elif event in ("execution_error", "execution_interrupted"):
            print(f"failed: {title(data.get('node_id'))}", file=sys.stderr)

    return show


def _connect(server: str | None):
    """``(client, local server or None)``: the ComfyUI at ``server``, or a headless one started here."""
    from .headless import ComfyUIClient, ComfyUINotFound, ComfyUIServer, ComfyUIStartError

    if server:
        url = server if "://" in server else f"http://{server}"
        client = ComfyUIClient(url)
        try:
            client.system_stats()
        except OSError as err:
            raise QRInputError(f"no ComfyUI answers at {url} ({err.__class__.__name__}); start it or fix --server") \
                from None
        return client, None
    print("starting a headless ComfyUI (no --server given) ...", file=sys.stderr)
    local = ComfyUIServer()
    try:
        local.start()
    except (ComfyUINotFound, ComfyUIStartError) as err:
        raise QRInputError(f"{err} (or pass --server URL of a running ComfyUI)".replace("\n", " | ")) from None
    print(f"ComfyUI up at {local.base_url} in {local.startup_seconds:.1f} s", file=sys.stderr)
    return local.client, local


def cmd_run_workflow(args: argparse.Namespace) -> dict:
    import time

    from .headless import PromptError
    from .workflow import WorkflowError, bundled_inputs, ui_to_api

    name, ui, api = _load_workflow(args.workflow)
    sets = [_parse_set(item) for item in args.set or []]
    try:
        client, local = _connect(args.server)
    except ImportError as err:
        raise QRInputError(str(err)) from None
    try:
        object_info = client.object_info()
        try:
            prompt = json.loads(json.dumps(api)) if api is not None else ui_to_api(ui, object_info)
        except WorkflowError as err:
            raise QRInputError(str(err)) from None
        _apply_sets(prompt, sets, object_info)
        for path in bundled_inputs(prompt, object_info):
            client.upload_image(path, name=path.name)
        extra = {"extra_pnginfo": {"workflow": ui}} if ui is not None else None
        try:
            prompt_id = client.queue(prompt, extra_data=extra)
        except PromptError as err:
            raise QRInputError(str(err)) from None
        print(f"queued {name} as prompt {prompt_id} on {client.base_url}", file=sys.stderr)
        start = time.monotonic()
        try:
            result = client.wait(prompt_id, timeout=args.timeout, raise_on_error=False, on_event=_progress(prompt))
            error = None if result.status == "success" else _execution_error(result)
        except TimeoutError as err:
            result, error = None, str(err)
        seconds = round(time.monotonic() - start, 2)
        saved, verify = [], []
        if result is not None:
            out_dir = Path(args.out or Path("out") / name)
            for output in result.outputs.values():
                for ref in output.get("images") or []:
                    if ref.get("type") != "output":
                        continue
                    path = _output_path(out_dir, ref.get("subfolder", ""), ref["filename"])
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(client.view(ref["filename"], ref.get("subfolder", ""), ref["type"]))
                    saved.append(str(path))
            for node_id, entry in prompt.items():
                if entry["class_type"] == "AQR_Verify":
                    output = result.outputs.get(node_id) or {}
                    verdicts = output.get(VERDICT_KEY) or []
                    verify.append({"node": node_id, "title": (entry.get("_meta") or {}).get("title", ""),
                                   "pass": bool(verdicts) and all(v.get("pass") is True for v in verdicts),
                                   "images": [img for v in verdicts for img in v.get("images", [])],
                                   "report": "\n".join(output.get("text") or [])})
    except OSError as err:  # the server went away (requests' errors are OSErrors), or --out is not writable
        raise QRInputError(f"{err.__class__.__name__}: {err}") from None
    finally:
        client.close()
        if local is not None:
            local.cleanup()
    passed = error is None and all(v["pass"] for v in verify)
    lines = [f"[verify node {v['node']} {v['title']}]\n{v['report'] or '(no report: the node did not run)'}"
             for v in verify]
    lines += [f"saved {path}" for path in saved]
    lines += [f"error: {error}"] if error else []
    lines.append(f"{'PASS' if passed else 'FAIL'}: {name} in {seconds} s")
    return {"workflow": name, "server": client.base_url, "prompt_id": prompt_id, "seconds": seconds,
            "status": result.status if result is not None else "timeout", "outputs": saved, "verify": verify,
            "error": error, "pass": passed, "report": "\n".join(lines)}


def _execution_error(result) -> str:
    e = result.error or {}
    where = f"node {e.get('node_id')} ({e.get('node_type')})"
    if result.status == "interrupted":
        return f"interrupted at {where}"
    return f"{where} failed: {e.get('exception_type', '')}: {e.get('exception_message', '')}".rstrip()


def cmd_demo(args: argparse.Namespace) -> dict:
    from .demo import run_demo

    return run_demo(args.out, args.text, suite=not args.no_suite)


def _picture_job(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand that turns a picture into a scannable picture: the flags they all share."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--text", required=True, help="the message")
    p.add_argument("--image", required=True, help="the picture")
    p.add_argument("--version", default="auto", help="1-40, or auto for the smallest that fits")
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", action="store_true")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aesthetic-qr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the embedded default job: encode, follow a built-in picture, verify")
    p.add_argument("--text", default="https://github.com/aesthetic-qr/aesthetic-qr", help="the message")
    p.add_argument("--out", default="out/demo", help="folder for the images")
    p.add_argument("--no-suite", action="store_true", help="skip the simulated-camera suite")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("encode", help="encode text as a QR code image (layout-aware encoder)")
    p.add_argument("--text", required=True, help="the message")
    p.add_argument("--version", default="auto", help="1-40, or auto for the smallest that fits")
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--boost-ecl", action="store_true", help="raise the level as far as the version allows")
    p.add_argument("--mask", default="auto", choices=["auto"] + [str(i) for i in range(8)])
    p.add_argument("--module-px", type=int, default=10, help="pixels per module")
    p.add_argument("--border", type=int, default=4, help="quiet zone in modules")
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--multiple", type=int, default=1, help="pad the image side to a multiple of this (8 for SD)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", action="store_true", help="print JSON (settings, geometry, matrix)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("reshuffle", help="rearrange the code's free bits so its modules follow a picture")
    p.add_argument("--text", required=True, help="the message (kept exactly, unless --url-fragment)")
    p.add_argument("--target", required=True, help="picture the modules should follow")
    p.add_argument("--version", default="auto", help="1-40, or auto for the smallest that fits")
    p.add_argument("--extra-versions", type=int, default=0, help="also try this many larger versions")
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--mask", default="search", choices=["search"] + [str(i) for i in range(8)])
    p.add_argument("--fixed-mask", help="image whose bright pixels must keep the picture's values (e.g. a face)")
    p.add_argument("--priority", default="qart", choices=["qart", "artup", "uniform"])
    p.add_argument("--dither", action="store_true", help="error-diffusion dithering of the module target")
    p.add_argument("--url-fragment", action="store_true",
                   help="URLs only: append #digits for more free bits (decoded text changes, the page does not)")
    p.add_argument("--seed", type=int, default=0, help="tie-break order among equal priorities")
    p.add_argument("--module-px", type=int, default=10, help="pixels per module")
    p.add_argument("--border", type=int, default=4, help="quiet zone in modules")
    p.add_argument("--multiple", type=int, default=1, help="pad the image side to a multiple of this")
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reshuffle)

    p = _picture_job(sub, "artup", "picture in, scannable picture out (ARTUP: reshuffle, scan model, colour)")
    p.add_argument("--p-min", type=float, default=0.85,
                   help="required probability of a correct module read (raised automatically until it scans)")
    p.add_argument("--size-px", type=int, default=512, help="largest output side in pixels")
    p.set_defaults(func=cmd_artup)

    p = _picture_job(sub, "personalize", "picture in, scannable picture out (pixel-space SRL refinement)")
    p.add_argument("--module-px", type=int, default=12, help="pixels per module")
    p.add_argument("--border", type=int, default=4, help="quiet zone in modules")
    p.add_argument("--iterations", type=int, default=400, help="most optimisation steps")
    p.set_defaults(func=cmd_personalize)

    p = sub.add_parser("run-workflow", help="run a workflow on ComfyUI over its HTTP API (a local headless one "
                                            "when no --server), save the outputs, print the verify reports")
    p.add_argument("workflow", help="a name from workflows/ (e.g. artup_cpu) or a path to a UI or API JSON")
    p.add_argument("--set", action="append", metavar="NODE.INPUT=VALUE",
                   help="override an input; NODE is a node id or title, VALUE is JSON when it parses (repeatable)")
    p.add_argument("--server", help="URL of a running ComfyUI (default: start a headless one here)")
    p.add_argument("--out", help="folder for the output images (default: out/WORKFLOW)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run_workflow)

    p = sub.add_parser("verify", help="decode an image with real decoders, optionally through the camera suite")
    p.add_argument("image")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--expect", help="the payload the image must decode to")
    src.add_argument("--qr", help="JSON written by `encode --json` (enables per-module error analysis)")
    p.add_argument("--suite", action="store_true", help="also run the simulated-camera suite (SSR per decoder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)
    return parser


def _print_human(result: dict) -> None:
    if "report" in result:
        print(result["report"])
        return
    for key, value in result.items():
        if key != "matrix":
            print(f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except QRInputError as err:
        print(f"aesthetic-qr {args.command}: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_human(result)
    return 0 if result.get("pass", True) else 1


if __name__ == "__main__":
    sys.exit(main())
