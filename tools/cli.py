"""The `aesthetic-qr` command: the pack's pipelines without ComfyUI, and `run-workflow` to run a workflow on ComfyUI
over its HTTP API. `--json` prints machine-readable output.

Exit codes: 0 done and passed, 1 verification (or, for run-workflow, the run) failed, 2 bad input. Bad input is
reported as one line on stderr, never a traceback: argparse's own errors too (`_Parser.error`), and every output
path is checked (a writable folder, a known image extension) before any computation starts."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..art.texture import FUNCTION_STYLES, STRIPS
from ..qr import QRCode, QRInputError, encode
from ..qr.pixels import load_picture, to_float_rgb
from ..qr.render import STYLES, render
from ..scan.report import VERDICT_KEY
from .files import LOSSY_SUFFIXES, check_folder_out, check_image_out, save_image

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds both take 0 … 2³²−1


# ---- input files (the output side: tools/files.py) ---------------------------------------------------------------

def load_image(path: str) -> np.ndarray:
    """H×W×3 float32 in [0, 1], as a viewer shows the file (EXIF orientation applied, transparency on white)."""
    return to_float_rgb(load_picture(path))


# ---- argument types: a bad value is one argparse line ("argument --seed: ...") -----------------------------------

def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as lone surrogates (surrogateescape)
        raise argparse.ArgumentTypeError(f"{value.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 text; "
                                         "pass the message as UTF-8") from None
    return value


def _path(value: str) -> str:
    if "\x00" in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not a file name (it holds a NUL character)")
    return value


def _decoders(value: str) -> tuple[str, ...]:
    from ..scan.decoders import KNOWN_DECODERS  # noqa: PLC0415

    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in KNOWN_DECODERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of {', '.join(KNOWN_DECODERS)}")
    return names


DECODERS_HELP = ("decoders that must read the payload, comma-separated (default zxing,wechat; zbar needs the zbar "
                 "library and pyzbar)")


def _version(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        version = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a version: give 1-40, or auto") from None
    if not 1 <= version <= 40:
        raise argparse.ArgumentTypeError(f"version {version} is out of range: give 1-40, or auto")
    return version


def _int_range(lo: int, hi: int | None = None, what: str = "a whole number"):
    bound = f"from {lo} to {hi}" if hi is not None else f"≥ {lo}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what} {bound}") from None
        if number < lo or (hi is not None and number > hi):
            raise argparse.ArgumentTypeError(f"{number} is out of range: give {what} {bound}")
        return number

    parse.__name__ = "int"
    return parse


def _float_range(lo: float, hi: float | None = None, *, open_lo: bool = False, what: str = "a number"):
    bound = (f"in [{lo:g}, {hi:g}]" if hi is not None else f"> {lo:g}" if open_lo else f"≥ {lo:g}")

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what} {bound}") from None
        if not math.isfinite(number) or number < lo or (open_lo and number == lo) or (hi is not None and number > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {what} {bound}")
        return number

    parse.__name__ = "float"
    return parse


_seed = _int_range(0, MAX_SEED, "a seed")


def _attacks(value: str) -> tuple[str, ...]:
    from ..invisible.attacks import attack_names  # noqa: PLC0415  (cv2: imported only when hide is given --survive)

    try:
        return attack_names(value)
    except QRInputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _psnr(value: str) -> float:
    from ..invisible.hide import PSNR_RANGE  # torch: imported only when hide is given --psnr

    return _float_range(*PSNR_RANGE, what="decibels")(value)


# ---- subcommands -------------------------------------------------------------------------------------------------

def cmd_encode(args: argparse.Namespace) -> dict:
    check_image_out(args.out)
    qr = encode(args.text, version=args.version, ecl=args.ecl,
                mask=None if args.mask == "auto" else int(args.mask), boost_ecl=args.boost_ecl)
    image, geo = render(qr, module_px=args.module_px, border=args.border, style=args.style, multiple=args.multiple)
    save_image(image, args.out)
    return {**qr.with_geometry(geo).to_json(), "out": args.out}


def _read_code(path: str) -> QRCode:
    """A code description written by `encode --json`."""
    hint = "write one with `aesthetic-qr encode --json`"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise QRInputError(f"cannot read {path!r} as a code description ({hint}): {err}") from None
    if not isinstance(data, dict):
        raise QRInputError(f"{path!r} holds a JSON {type(data).__name__}, not the object a code description is "
                           f"({hint})")
    try:
        return QRCode.from_json(data)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise QRInputError(f"cannot use {path!r} as a code description ({hint}): "
                           f"{err.__class__.__name__} {err}") from None


def cmd_verify(args: argparse.Namespace) -> dict:
    from ..scan.decoders import require_optional
    from ..scan.report import verify_image

    qr = _read_code(args.qr) if args.qr else None
    image = load_image(args.image)
    expected = args.expect if args.expect is not None else qr.text
    require_optional(args.decoders)
    report = verify_image(image, expected, qr=qr, suite=args.suite, decoders=args.decoders)
    return report.to_dict()


def cmd_reshuffle(args: argparse.Namespace) -> dict:
    from ..art.follow import follow_picture

    check_image_out(args.out)
    picture = load_image(args.target)
    fixed = load_image(args.fixed_mask).mean(axis=2) if args.fixed_mask else None
    result = follow_picture(args.text, picture, version=args.version, ecl=args.ecl,
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


ARTUP_BORDER = 4  # ArtupConfig's default quiet zone, which the CLI keeps
MIN_MODULE_PX = 2  # ARTUP never draws a module smaller (art.artup.auto_module_px)


def _check_size_px(text: str, version: int | None, ecl: str, size_px: int) -> None:
    """`--size-px` must hold the code at ARTUP's smallest module size; below it ARTUP silently draws a larger
    picture than asked (and one too small to scan)."""
    modules = encode(text, version=version, ecl=ecl, mask=0).size + 2 * ARTUP_BORDER
    least = MIN_MODULE_PX * modules
    if size_px < least:
        raise QRInputError(f"--size-px {size_px} is too small: this code is {modules} modules wide with its quiet "
                           f"zone, so give at least {least} ({MIN_MODULE_PX} px a module; 512 is the default)")


def cmd_artup(args: argparse.Namespace) -> dict:
    import time

    check_image_out(args.out)  # before the imports too: torch takes seconds
    _check_size_px(args.text, args.version, args.ecl, args.size_px)
    from ..art.artup import ArtupConfig, artup_until_scans
    from ..scan.report import verify_image

    start = time.perf_counter()
    config = ArtupConfig(version=args.version, ecl=args.ecl, p_min=args.p_min, size_px=args.size_px,
                         border=ARTUP_BORDER, seed=args.seed)
    result, attempts = artup_until_scans(load_image(args.image), args.text, config=config)
    seconds = time.perf_counter() - start
    save_image(result.image, args.out)
    report = verify_image(result.image, result.qr.text, result.qr, suite=True)
    return {**report.to_dict(), "qr": result.qr.summary(), "mean_p": round(result.mean_p, 4), "attempts": attempts,
            "seconds": round(seconds, 2), "out": args.out}


ART_LEVELS = {"auto": ("M", "Q", "H"), "M": ("M",), "Q": ("Q",), "H": ("H",)}


def cmd_art(args: argparse.Namespace) -> dict:
    check_image_out(args.out)  # before the imports too: torch takes seconds
    from ..art.fidelity import ArtConfig, art
    from ..art.fidelity import verify as verify_art

    config = ArtConfig(ecls=ART_LEVELS[args.ecl], robustness=args.robustness, budget=not args.no_budget,
                       code_scale=args.code_scale, camera_ssr=args.camera_ssr, seed=args.seed,
                       function_style=args.function_style, strip=args.strip, decoders=args.decoders,
                       polish_iterations=args.polish_iterations)
    result = art(load_image(args.image), args.text, config)
    save_image(result.image, args.out)
    out = {**result.to_json(), "out": args.out}
    if Path(args.out).suffix.lower() in LOSSY_SUFFIXES:  # the saved pixels are not the verified ones: check them
        clean, suite, saved_pass = verify_art(load_picture(args.out), result.qr, config.decoders, config.camera_ssr)
        out.update({"pass": bool(result.passed and saved_pass), "saved_file_pass": bool(saved_pass)})
    ssr = ", ".join(f"{name} {100 * value:.0f} %" for name, value in result.ssr.items())
    out["report"] = (f"{'PASS' if out['pass'] else 'FAIL'}: {args.out}: SSIM {result.ssim:.3f} to the picture; suite "
                     f"SSR {ssr}; v{result.qr.version}-{result.qr.ecl} mask {result.qr.mask}, robustness level "
                     f"{result.robustness}, {result.function_style} function patterns"
                     f"{', SSIM-polished' if result.polished else ''}, codewords left as the picture per block "
                     f"{result.errors_per_block} of {result.correctable} correctable, in {result.seconds:.1f} s")
    return out


def cmd_personalize(args: argparse.Namespace) -> dict:
    import time

    check_image_out(args.out)  # before the imports too: torch takes seconds
    from ..art.follow import follow_picture
    from ..art.pixel_refine import PixelRefineConfig, pixel_refine

    start = time.perf_counter()
    picture = load_image(args.image)
    follow = follow_picture(args.text, picture, version=args.version, ecl=args.ecl, mask=None,
                            module_px=args.module_px, border=args.border, multiple=8, priority="artup")
    result = pixel_refine(picture, follow.qr, PixelRefineConfig(iterations=args.iterations, seed=args.seed))
    # the verdict is the refinement's own last check, made on exactly these (8-bit) pixels
    save_image(result.image, args.out)
    return {**result.report.to_dict(), "qr": follow.qr.summary(), "iterations": result.iterations,
            "stopped_early": result.stopped_early, "seconds": round(time.perf_counter() - start, 2),
            "out": args.out}


def cmd_hide(args: argparse.Namespace) -> dict:
    import time

    check_image_out(args.out)  # before the imports too: torch takes seconds
    from ..invisible.hide import QUIET_ZONE, hide
    from ..invisible.weights import load_codec
    from ..qr.render import picture_geometry

    start = time.perf_counter()
    codec = load_codec(args.weights)
    picture = load_image(args.image)
    qr = encode(args.text)
    qr = qr.with_geometry(picture_geometry(qr.size, QUIET_ZONE, picture.shape[:2]))
    steps = {} if args.steps is None else {"steps": args.steps}
    result = hide(picture, qr, args.psnr, codec, survive=args.survive, **steps)
    save_image(result.image, args.out)
    seconds = time.perf_counter() - start
    return {"pass": result.passed, "psnr": round(result.psnr, 2), "ssim": round(result.ssim, 4), "version": qr.version,
            "ecl": qr.ecl, "module_px": qr.geometry.module_px, "survives": result.survives, "steps": result.steps,
            "out": args.out, "seconds": round(seconds, 2),
            "report": f"{'PASS' if result.passed else 'FAIL'}: {args.out}: PSNR {result.psnr:.2f} dB, SSIM "
                      f"{result.ssim:.4f} to the picture; code v{qr.version}-{qr.ecl} at {qr.geometry.module_px} px "
                      f"a module; {result.verdict}; {result.steps} refinement steps, {seconds:.1f} s"}


def cmd_reveal(args: argparse.Namespace) -> dict:
    from ..invisible.hide import reveal
    from ..invisible.weights import load_codec

    codec = load_codec(args.weights)
    picture = load_image(args.image)
    found = reveal(picture, codec)
    decoded = found.text is not None
    match = None if args.expect is None else found.text == args.expect
    passed = decoded and match is not False
    report = f"decoded {found.text!r}" if decoded else "nothing decoded"
    if match is not None:
        report += "; matches --expect" if match else f"; expected {args.expect!r}"
    return {"pass": passed, "decoded": decoded, "text": found.text, "match": match, "shift": list(found.shift),
            "report": f"{'PASS' if passed else 'FAIL'}: {report}"}


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


def _output_refs(outputs, out_dir: Path) -> list[tuple[Path, dict]]:
    """Every output image the server's ``/history`` names, with where it goes under ``--out``: all checked before
    the first is fetched, so a server that names one file outside ``--out`` gets nothing written at all."""
    refs = []
    for output in (outputs.values() if isinstance(outputs, dict) else ()):
        images = output.get("images") if isinstance(output, dict) else None
        for ref in images if isinstance(images, list) else ():
            if not isinstance(ref, dict) or ref.get("type") != "output":
                continue
            filename, subfolder = ref.get("filename"), ref.get("subfolder") or ""
            if not isinstance(filename, str) or not isinstance(subfolder, str):
                raise QRInputError(f"the server named an output that is not a file name ({subfolder!r}, "
                                   f"{filename!r}); nothing saved")
            refs.append((_output_path(out_dir, subfolder, filename), {**ref, "subfolder": subfolder}))
    return refs


def _verify_outputs(prompt: dict, outputs) -> list[dict]:
    verify = []
    outputs = outputs if isinstance(outputs, dict) else {}
    for node_id, entry in prompt.items():
        if entry["class_type"] != "AQR_Verify":
            continue
        output = outputs.get(node_id)
        output = output if isinstance(output, dict) else {}
        verdicts = [v for v in output.get(VERDICT_KEY) or [] if isinstance(v, dict)]
        text = output.get("text") or []
        verify.append({"node": node_id, "title": (entry.get("_meta") or {}).get("title", ""),
                       "pass": bool(verdicts) and all(v.get("pass") is True for v in verdicts),
                       "images": [img for v in verdicts for img in v.get("images") or []],
                       "report": "\n".join(str(t) for t in text) if isinstance(text, list) else str(text)})
    return verify


def cmd_run_workflow(args: argparse.Namespace) -> dict:
    import time

    from .headless import PromptError
    from .workflow import WorkflowError, bundled_inputs, ui_to_api

    name, ui, api = _load_workflow(args.workflow)
    out_dir = check_folder_out(args.out or Path("out") / name)
    sets = [_parse_set(item) for item in args.set or []]
    try:
        client, local = _connect(args.server)
    except ImportError as err:
        raise QRInputError(str(err)) from None
    try:
        object_info = client.object_info()
        if not isinstance(object_info, dict):
            raise QRInputError(f"{client.base_url}/object_info is not a ComfyUI node list; is it ComfyUI?")
        object_info = {k: v for k, v in object_info.items() if isinstance(v, dict)}
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
            for path, ref in _output_refs(result.outputs, out_dir):
                data = client.view(ref["filename"], ref["subfolder"], ref["type"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                saved.append(str(path))
            verify = _verify_outputs(prompt, result.outputs)
    except QRInputError:
        raise
    except OSError as err:  # the server went away (requests' errors are OSErrors), or --out is not writable
        raise QRInputError(f"{err.__class__.__name__}: {err}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as err:  # a server that answers unlike ComfyUI
        raise QRInputError(f"{client.base_url} answered unlike ComfyUI ({err.__class__.__name__}: {err}); "
                           "is --server a ComfyUI?") from None
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
    e = result.error if isinstance(result.error, dict) else {}
    where = f"node {e.get('node_id')} ({e.get('node_type')})"
    if result.status == "interrupted":
        return f"interrupted at {where}"
    return f"{where} failed: {e.get('exception_type', '')}: {e.get('exception_message', '')}".rstrip()


def cmd_demo(args: argparse.Namespace) -> dict:
    from .demo import run_demo

    check_folder_out(args.out)
    return run_demo(args.out, args.text, suite=not args.no_suite)


# ---- parser ------------------------------------------------------------------------------------------------------

class _UsageError(Exception):
    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog, self.message = prog, message


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ("aesthetic-qr encode: argument --version: …"), not the usage
    block plus a line; `main` prints it and returns 2."""

    def error(self, message: str):
        raise _UsageError(self.prog, f"{message} (see {self.prog} --help)")


def _common(p: argparse.ArgumentParser, *, out_help: str = "image file to write (.png, .jpg, .webp, .bmp, .tif)"):
    p.add_argument("--out", required=True, type=_path, help=out_help)
    p.add_argument("--json", action="store_true", help="print JSON")


VERSION_HELP = "1-40, or auto for the smallest that fits"
SEED_HELP = f"seed, 0-{MAX_SEED}"


def _picture_job(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand that turns a picture into a scannable picture: the flags they all share."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--text", required=True, type=_text, help="the message")
    p.add_argument("--image", required=True, type=_path, help="the picture")
    p.add_argument("--version", default=None, type=_version, help=VERSION_HELP)
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    _common(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aesthetic-qr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the embedded default job: encode, follow a built-in picture, verify")
    p.add_argument("--text", default="https://github.com/aesthetic-qr/aesthetic-qr", type=_text, help="the message")
    p.add_argument("--out", default="out/demo", type=_path, help="folder for the images")
    p.add_argument("--no-suite", action="store_true", help="skip the simulated-camera suite")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("encode", help="encode text as a QR code image (layout-aware encoder)")
    p.add_argument("--text", required=True, type=_text, help="the message")
    p.add_argument("--version", default=None, type=_version, help=VERSION_HELP)
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--boost-ecl", action="store_true", help="raise the level as far as the version allows")
    p.add_argument("--mask", default="auto", choices=["auto"] + [str(i) for i in range(8)])
    p.add_argument("--module-px", type=_int_range(1), default=10, help="pixels per module")
    p.add_argument("--border", type=_int_range(0), default=4, help="quiet zone in modules")
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--multiple", type=_int_range(1), default=1,
                   help="pad the image side to a multiple of this (8 for SD)")
    _common(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("reshuffle", help="rearrange the code's free bits so its modules follow a picture")
    p.add_argument("--text", required=True, type=_text, help="the message (kept exactly, unless --url-fragment)")
    p.add_argument("--target", required=True, type=_path, help="picture the modules should follow")
    p.add_argument("--version", default=None, type=_version, help=VERSION_HELP)
    p.add_argument("--extra-versions", type=_int_range(0, 39), default=0, help="also try this many larger versions")
    p.add_argument("--ecl", default="M", choices=list("LMQH"), type=str.upper, help="error-correction level")
    p.add_argument("--mask", default="search", choices=["search"] + [str(i) for i in range(8)])
    p.add_argument("--fixed-mask", type=_path,
                   help="image whose bright pixels must keep the picture's values (e.g. a face)")
    p.add_argument("--priority", default="qart", choices=["qart", "artup", "uniform"])
    p.add_argument("--dither", action="store_true", help="error-diffusion dithering of the module target")
    p.add_argument("--url-fragment", action="store_true",
                   help="URLs only: append #digits for more free bits (decoded text changes, the page does not)")
    p.add_argument("--seed", type=_seed, default=0, help=f"tie-break order among equal priorities ({SEED_HELP})")
    p.add_argument("--module-px", type=_int_range(1), default=10, help="pixels per module")
    p.add_argument("--border", type=_int_range(0), default=4, help="quiet zone in modules")
    p.add_argument("--multiple", type=_int_range(1), default=1, help="pad the image side to a multiple of this")
    p.add_argument("--style", default="plain", choices=STYLES)
    _common(p)
    p.set_defaults(func=cmd_reshuffle)

    p = _picture_job(sub, "artup", "picture in, scannable picture out (ARTUP: reshuffle, scan model, colour)")
    p.add_argument("--p-min", type=_float_range(0.0, 1.0), default=0.85,
                   help="required probability of a correct module read (raised automatically until it scans)")
    p.add_argument("--size-px", type=_int_range(1), default=512, help="largest output side in pixels")
    p.set_defaults(func=cmd_artup)

    p = sub.add_parser("art", help="picture in, the same picture with a code drawn in that keeps it as far as "
                                   "verified robustness allows (ARTUP + the error-correction budget)")
    p.add_argument("--text", required=True, type=_text, help="the message")
    p.add_argument("--image", required=True, type=_path, help="the picture (its size and framing are kept)")
    p.add_argument("--ecl", default="auto", choices=list(ART_LEVELS), type=lambda v: v if v == "auto" else v.upper(),
                   help="error-correction levels to try (auto: M, Q and H, keeping the best that passes)")
    p.add_argument("--robustness", type=_int_range(0, 8), default=0,
                   help="robustness level to start from, 0-8 (0: the least robust that still passes)")
    p.add_argument("--no-budget", action="store_true", help="spend no error correction on the picture (ARTUP)")
    p.add_argument("--code-scale", type=_float_range(0.2, 1.0), default=1.0,
                   help="share of the picture's shorter side the code takes (1: as large as fits)")
    p.add_argument("--camera-ssr", type=_float_range(0.5, 1.0), default=0.95,
                   help="share of camera views each decoder must read")
    p.add_argument("--function-style", choices=list(FUNCTION_STYLES), default="picture",
                   help="how finders, alignment/format modules and the light strip are drawn, the first tried at "
                        "each level: the picture's texture squeezed dark/light with the timing patterns left as the "
                        "picture (picture), squeezed harder (firm), or everything black and white (crisp); if the "
                        "suite refuses picture, firm is tried at the same level; crisp only when chosen")
    p.add_argument("--strip", choices=list(STRIPS), default="finders",
                   help="where the light strip around the code is drawn: only beside the finders (the rest of the "
                        "edge stays the picture) or all the way round (full)")
    p.add_argument("--decoders", type=_decoders, default=("zxing", "wechat"), help=DECODERS_HELP)
    p.add_argument("--polish-iterations", type=_int_range(0, 500), default=20,
                   help="L-BFGS iterations of the SSIM polish of the passing result, verified again before it is "
                        "saved (0: no polish)")
    p.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    _common(p)
    p.set_defaults(func=cmd_art)

    p = _picture_job(sub, "personalize", "picture in, scannable picture out (pixel-space SRL refinement)")
    p.add_argument("--module-px", type=_int_range(1), default=12, help="pixels per module")
    p.add_argument("--border", type=_int_range(0), default=4, help="quiet zone in modules")
    p.add_argument("--iterations", type=_int_range(0), default=400,
                   help="most optimisation steps (0: the picture with harmonised markers only)")
    p.set_defaults(func=cmd_personalize)

    p = sub.add_parser("run-workflow", help="run a workflow on ComfyUI over its HTTP API (a local headless one "
                                            "when no --server), save the outputs, print the verify reports")
    p.add_argument("workflow", type=_path, help="a name from workflows/ (e.g. artup_cpu) or a path to a UI or API "
                                                "JSON")
    p.add_argument("--set", action="append", metavar="NODE.INPUT=VALUE", type=_text,
                   help="override an input; NODE is a node id or title, VALUE is JSON when it parses (repeatable)")
    p.add_argument("--server", type=_text, help="URL of a running ComfyUI (default: start a headless one here)")
    p.add_argument("--out", type=_path, help="folder for the output images (default: out/WORKFLOW)")
    p.add_argument("--timeout", type=_float_range(0.0, open_lo=True, what="seconds"), default=900.0,
                   help="seconds to wait for the run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run_workflow)

    weights_help = "a .safetensors file written by scripts/train_invisible.py (default: the shipped weights)"
    p = sub.add_parser("hide", help="hide a code invisibly in a picture (a trained CNN; the picture keeps its size)")
    p.add_argument("--text", required=True, type=_text, help="the message")
    p.add_argument("--image", required=True, type=_path, help="the picture (the code is centred over all of it)")
    p.add_argument("--psnr", type=_psnr, default=38.0,
                   help="PSNR of the result to the picture in dB (default 38): higher is more invisible and less "
                        "robust; 32 survives JPEG 75, blur σ 1 and half size")
    p.add_argument("--survive", type=_attacks, default=("jpeg90",), metavar="ATTACKS",
                   help="comma-separated attacks the payload must read back after, checked with the real codecs "
                        "(default jpeg90; e.g. jpeg75,blur1,resize0.5 at --psnr 32; an unknown name lists the "
                        "known ones); exit 1 when it does not")
    p.add_argument("--steps", type=_int_range(0),
                   help="most refinement steps on this picture until it survives them (default 40, about 0.4 s "
                        "each at 512²; 0: the encoder alone)")
    p.add_argument("--weights", type=_path, help=weights_help)
    _common(p)
    p.set_defaults(func=cmd_hide)

    p = sub.add_parser("reveal", help="read a code hidden by `hide` (exit 1 when none is read or it differs from "
                                      "--expect)")
    p.add_argument("image", type=_path)
    p.add_argument("--expect", type=_text, help="the payload it must carry")
    p.add_argument("--weights", type=_path, help=weights_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reveal)

    p = sub.add_parser("verify", help="decode an image with real decoders, optionally through the camera suite")
    p.add_argument("image", type=_path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--expect", type=_text, help="the payload the image must decode to")
    src.add_argument("--qr", type=_path, help="JSON written by `encode --json` (enables per-module error analysis)")
    p.add_argument("--suite", action="store_true", help="also run the simulated-camera suite (SSR per decoder)")
    p.add_argument("--decoders", type=_decoders, default=("zxing", "wechat"), help=DECODERS_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)
    return parser


# ---- main --------------------------------------------------------------------------------------------------------

def _print_human(result: dict) -> None:
    if "report" in result:
        _emit(str(result["report"]))
        return
    _emit("\n".join(f"{key}: {value}" for key, value in result.items() if key != "matrix"))


def _emit(text: str, fallback: str | None = None) -> None:
    """Print to stdout; text its encoding cannot hold strictly (a file name of non-UTF-8 bytes, which argv carries
    as surrogates) is printed as `fallback` (JSON with \\u escapes, still valid JSON) or with backslash escapes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = fallback if fallback is not None else text.encode(encoding, "backslashreplace").decode(encoding)
    print(text)


def _one_line(message) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; the exit code: 0 done and passed, 1 verification (or the run) failed, 2 bad input
    (one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        print(f"{err.prog}: {_one_line(err.message)}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    prog = f"aesthetic-qr {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # e.g. PIL's DecompressionBombWarning: one line, not the warning plus the source line that raised it
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            result = args.func(args)
        except QRInputError as err:
            print(f"{prog}: {err}", file=sys.stderr)
            return 2
        except Image.DecompressionBombError as err:
            print(f"{prog}: {_one_line(err)}; give a smaller picture", file=sys.stderr)
            return 2
    try:
        if args.json:
            _emit(json.dumps(result, ensure_ascii=False), json.dumps(result))
        else:
            _print_human(result)
        sys.stdout.flush()
    except BrokenPipeError:  # `aesthetic-qr … | head`: the reader left; not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if result.get("pass", True) else 1


if __name__ == "__main__":
    sys.exit(main())
