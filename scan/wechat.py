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
import errno
import functools
import importlib.util
import json
import os
import struct
import subprocess
import sys
import threading
import weakref

import numpy as np

HEADER = struct.Struct("<II")
# Run this file as the worker without its folder (qr/ holds code.py, which shadows the standard library's) or the
# host's working directory on sys.path.
WORKER_BOOT = ("import sys, runpy; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
               "runpy.run_path(sys.argv[1], run_name='__main__')")

# glibc: keep freed memory instead of returning it to the system after every decode. WeChat allocates and frees
# a few MB per picture; with glibc's defaults a fresh worker decoded a 512² code in 7.3 ms, with these in 5.2 ms.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}

DECODE_TIMEOUT_S = 60.0  # WeChat needs ~40 ms for a blank 1024² picture; a minute means it is stuck


class WeChatWorkerError(RuntimeError):
    """A worker failed: it could not start, crashed on a picture, hung, or broke the protocol. Not cached: the
    next call starts a fresh worker."""


class WeChatCrashed(WeChatWorkerError):
    """The worker died while decoding this picture (OpenCV crashed on it), or hung on it and was stopped."""


class WeChatUnusable(ImportError):
    """OpenCV or its WeChat module is missing, or there is no Python to run a worker with (cached for good)."""


@functools.cache
def missing_opencv() -> str | None:
    """Why the WeChat decoder cannot work in this environment, or None; checked without importing cv2."""
    try:
        found = importlib.util.find_spec("cv2") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "OpenCV (cv2) is not installed; install opencv-contrib-python-headless"
    if not sys.executable:
        return "this Python (embedded, no sys.executable) cannot start the WeChat decoder's worker process"
    return None


class WeChatProcess:
    """One worker process; `decode` sends a gray picture and returns the texts WeChat read. After any failure
    the worker is stopped (`alive` turns False), so a broken stream is never reused."""

    def __init__(self, command: list[str] | None = None, timeout: float = DECODE_TIMEOUT_S):
        self.command = command or [sys.executable, "-u", "-c", WORKER_BOOT, os.path.abspath(__file__)]
        self.timeout = timeout
        self.parent_pid = os.getpid()
        self.broken = False
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env={**os.environ, **WORKER_MALLOC},
                                         creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except (OSError, ValueError) as exc:
            raise WeChatWorkerError(f"cannot start the WeChat decoder's worker process ({exc})") from exc
        _all_workers.add(self)
        hello, state = self._exchange(b"")
        if hello is None:
            code = self._stop()
            why = {"hung": f"did not start within {self.timeout:g} s", "gone": f"exited at start (exit code {code})",
                   "garbled": "greeted out of protocol"}[state]
            raise WeChatWorkerError(f"the WeChat decoder's worker {why}")
        if "unusable" in hello:
            self._stop()
            raise WeChatUnusable(str(hello["unusable"]))
        if "ready" not in hello:
            self._stop()
            raise WeChatWorkerError(f"the WeChat decoder's worker greeted with {hello!r}")

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None and os.getpid() == self.parent_pid

    def _exchange(self, frame: bytes) -> tuple[dict | None, str]:
        """Send `frame` (nothing: just read the greeting) and read one reply under the watchdog. Returns (the
        reply, "ok") or (None, why): "hung", "gone" (the worker died) or "garbled" (not a JSON object)."""
        stuck = threading.Event()

        def stop() -> None:  # a hung worker ends like a crashed one
            stuck.set()
            self.proc.kill()

        watchdog = threading.Timer(self.timeout, stop)
        watchdog.start()
        try:
            if frame:
                self.proc.stdin.write(frame)
                self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError as exc:  # BrokenPipeError; EINVAL on Windows when the reader died
            if not isinstance(exc, (BrokenPipeError, ConnectionResetError)) and exc.errno != errno.EINVAL:
                raise
            line = b""
        finally:
            watchdog.cancel()
            watchdog.join()  # a kill already under way has finished before we look at `stuck`
        if stuck.is_set():
            return None, "hung"
        if not line:
            return None, "gone"
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        return (reply, "ok") if isinstance(reply, dict) else (None, "garbled")

    def decode(self, gray) -> list[str]:
        if not (isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and gray.ndim == 2):
            raise ValueError("the WeChat worker takes a uint8 H×W gray picture")
        height, width = gray.shape
        reply, state = self._exchange(HEADER.pack(height, width) + gray.tobytes())
        if state == "ok" and not ("texts" in reply or "error" in reply):
            state = "garbled"
        if state != "ok":
            code = self._stop()
            what = {"hung": f"did not answer within {self.timeout:g} s and was stopped",
                    "gone": f"crashed on this picture (worker exit code {code})",
                    "garbled": "answered out of protocol and was stopped"}[state]
            raise WeChatCrashed(f"OpenCV's WeChat decoder {what}; counted as not read, and a fresh worker takes "
                                f"the next picture")
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        return [str(t) for t in reply["texts"]]

    def _stop(self) -> int | None:
        """Kill the worker unless it has exited; return its exit code (None if it would not die)."""
        self.broken = True
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()

    def close(self) -> None:
        """Let the worker finish (its stdin closes, so it exits); kill it after 5 s."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._stop()


_idle: list[WeChatProcess] = []
_idle_lock = threading.Lock()
_all_workers: weakref.WeakSet[WeChatProcess] = weakref.WeakSet()


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
    """The texts WeChat reads in `gray` (uint8 H×W). Raises WeChatUnusable when it cannot work here at all,
    WeChatWorkerError (WeChatCrashed) when a worker failed on this picture."""
    why = missing_opencv()
    if why:
        raise WeChatUnusable(why)
    worker = _borrow()
    try:
        texts = worker.decode(gray)
    except RuntimeError as exc:
        if not isinstance(exc, WeChatWorkerError):  # WeChat raised on the picture; the worker is fine
            _give_back(worker)
        raise
    _give_back(worker)
    return texts


def _forget_workers_after_fork() -> None:
    """In a forked child: the parent's workers are not ours. Close our copies of their pipes without flushing
    (so the workers still exit with their parent, and no half-written frame of the parent's reaches them)."""
    global _idle_lock
    _idle_lock = threading.Lock()
    _idle.clear()
    for worker in list(_all_workers):
        worker.broken = True
        for pipe in (worker.proc.stdin, worker.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                os.close(pipe.fileno())
        worker.proc.stdin = worker.proc.stdout = None
    _all_workers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


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
    # The protocol gets a private copy of stdout; fd 1 itself goes to stderr, so that anything else printed
    # (OpenCV's log writes to stdout) cannot be taken for a reply.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, protocol)
