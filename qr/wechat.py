"""OpenCV's WeChat QR decoder, run in child processes so that its crashes cannot take the host down.

WeChat's port of zxing segfaults on some pictures (opencv_contrib issues #2863, #2911, #3150, #3570, open
since 2021). Noise-like pictures, such as a random diffusion model's outputs, hit it in 1 of about 200
verifications. In-process, that kills the whole ComfyUI server. Here each decode runs in a worker process
(this file run as a script). A crash costs one unread picture, reported as such; the next call starts a fresh
worker.

Protocol: the worker writes one JSON line at start ({"ready": ...} or {"unusable": why}); then for each frame
(two little-endian uint32, height and width, then height·width bytes of 8-bit gray) it answers one JSON line,
{"texts": [...]} or {"error": why}. It exits when its stdin closes, so workers never outlive their parent.

Workers are pooled: a thread borrows an idle one or starts one (≈0.2 s), so concurrent decodes (the camera
suite's thread pool) each get their own.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import json
import os
import struct
import subprocess
import sys
import threading

HEADER = struct.Struct("<II")
# Run this file as the worker without its folder (qr/ holds code.py, which shadows the standard library's) or the
# host's working directory on sys.path.
WORKER_BOOT = ("import sys, runpy; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
               "runpy.run_path(sys.argv[1], run_name='__main__')")

# glibc: keep freed memory instead of returning it to the system after every decode. WeChat allocates and frees
# a few MB per picture; with glibc's defaults a fresh worker decoded a 512² code in 7.3 ms, with these in 5.2 ms.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}

DECODE_TIMEOUT_S = 60.0  # WeChat needs ~40 ms for a blank 1024² picture; a minute means it is stuck


class WeChatCrashed(RuntimeError):
    """The worker died while decoding this picture (OpenCV crashed on it), or hung on it and was stopped."""


class WeChatUnusable(ImportError):
    """OpenCV or its WeChat module is missing or cannot start."""


@functools.cache
def missing_opencv() -> str | None:
    """Why the WeChat decoder cannot work in this environment, or None; checked without importing cv2."""
    try:
        found = importlib.util.find_spec("cv2") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "OpenCV (cv2) is not installed; install opencv-contrib-python-headless"
    return None


class WeChatProcess:
    """One worker process; `decode` sends a gray picture and returns the texts WeChat read."""

    def __init__(self, command: list[str] | None = None, timeout: float = DECODE_TIMEOUT_S):
        self.command = command or [sys.executable, "-u", "-c", WORKER_BOOT, os.path.abspath(__file__)]
        self.timeout = timeout
        self.parent_pid = os.getpid()
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env={**os.environ, **WORKER_MALLOC},
                                         creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            raise WeChatUnusable(f"cannot start the WeChat decoder's worker process ({exc})") from exc
        hello = self._reply()
        if hello is None:
            code = self.proc.wait()
            raise WeChatUnusable(f"the WeChat decoder's worker exited at start (exit code {code})")
        if "unusable" in hello:
            self.close()
            raise WeChatUnusable(hello["unusable"])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and os.getpid() == self.parent_pid

    def _reply(self) -> dict | None:
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def decode(self, gray) -> list[str]:
        height, width = gray.shape
        stuck = threading.Event()

        def stop() -> None:  # a hung decode ends like a crashed one
            stuck.set()
            self.proc.kill()

        watchdog = threading.Timer(self.timeout, stop)
        watchdog.start()
        try:
            self.proc.stdin.write(HEADER.pack(height, width))
            self.proc.stdin.write(gray.tobytes())
            self.proc.stdin.flush()
            reply = self._reply()
        except (BrokenPipeError, ConnectionResetError):
            reply = None
        finally:
            watchdog.cancel()
        if reply is None:
            code = self.proc.wait()
            what = (f"did not answer within {self.timeout:g} s and was stopped" if stuck.is_set()
                    else f"crashed on this picture (worker exit code {code})")
            raise WeChatCrashed(f"OpenCV's WeChat decoder {what}; counted as not read, and a fresh worker takes "
                                f"the next picture")
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["texts"]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdout.close()


_idle: list[WeChatProcess] = []
_idle_lock = threading.Lock()


def _borrow() -> WeChatProcess:
    with _idle_lock:
        while _idle:
            worker = _idle.pop()
            if worker.alive:
                return worker
    return WeChatProcess()


def _give_back(worker: WeChatProcess) -> None:
    if worker.alive:
        with _idle_lock:
            _idle.append(worker)


def detect_and_decode(gray) -> list[str]:
    """The texts WeChat reads in `gray` (uint8 H×W). Raises WeChatUnusable when OpenCV is missing,
    WeChatCrashed when the picture crashed the decoder."""
    why = missing_opencv()
    if why:
        raise WeChatUnusable(why)
    worker = _borrow()
    try:
        return worker.decode(gray)
    finally:
        _give_back(worker)


@atexit.register
def close_all() -> None:
    """Stop the idle workers (they would also exit on their own once this process's pipes close)."""
    with _idle_lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        worker.close()


# ---- the worker ------------------------------------------------------------------------------------------------

def _read_exactly(stream, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(stdin, stdout) -> None:
    """The worker's loop: answer each frame on `stdin` with one JSON line on `stdout` until stdin closes."""
    def say(message: dict) -> None:
        stdout.write((json.dumps(message) + "\n").encode())
        stdout.flush()

    try:
        import cv2  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415
    except Exception as exc:
        say({"unusable": f"OpenCV (cv2) is not usable ({type(exc).__name__}: {exc}); "
                         f"install opencv-contrib-python-headless"})
        return
    if not hasattr(cv2, "wechat_qrcode_WeChatQRCode"):
        say({"unusable": f"OpenCV {cv2.__version__} has no wechat_qrcode module (it ships in the contrib build: "
                         f"install opencv-contrib-python-headless instead of opencv-python)"})
        return
    try:
        detector = cv2.wechat_qrcode_WeChatQRCode()  # no CNN model files: the traditional detector
    except Exception as exc:
        say({"unusable": f"cannot create the WeChat decoder ({type(exc).__name__}: {exc})"})
        return
    say({"ready": cv2.__version__})
    while True:
        header = _read_exactly(stdin, HEADER.size)
        if header is None:
            return
        height, width = HEADER.unpack(header)
        pixels = _read_exactly(stdin, height * width)
        if pixels is None:
            return
        try:
            texts, _points = detector.detectAndDecode(np.frombuffer(pixels, np.uint8).reshape(height, width))
            say({"texts": list(texts)})
        except Exception as exc:
            say({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
