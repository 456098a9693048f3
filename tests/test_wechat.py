"""WeChat in worker processes: it reads codes, survives a real segfault in the worker, runs concurrently, and
leaves no processes behind."""

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import to_gray_u8
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan import decoders, wechat
from aesthetic_qr.scan.decoders import decode

pytestmark = pytest.mark.skipif(wechat.missing_opencv() is not None, reason="OpenCV is not installed")

# A worker that greets like the real one, then dies of a real SIGSEGV on the first picture it is sent.
SEGFAULTING_WORKER = [sys.executable, "-c", textwrap.dedent("""
    import ctypes, sys
    sys.stdout.write('{"ready": "test"}\\n'); sys.stdout.flush()
    sys.stdin.buffer.read(8)
    ctypes.string_at(0)
""")]


def gray_code(text: str):
    image, _ = render(encode(text, ecl="M"), module_px=6)
    return to_gray_u8(image)


def pid_gone(pid: int, within: float = 10.0) -> bool:
    """Linux only (reads /proc)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(") ")[1].startswith("Z"):  # a zombie has exited
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="checks the exit through /proc")
def test_worker_reads_a_code_and_an_empty_picture():
    worker = wechat.WeChatProcess()
    try:
        assert worker.decode(gray_code("hello worker")) == ["hello worker"]
        assert worker.decode(gray_code("hello worker")[:40, :40].copy()) == []
    finally:
        worker.close()
    assert pid_gone(worker.proc.pid)


@pytest.mark.skipif(sys.platform != "linux", reason="a real SIGSEGV (exit code -11) and /proc are Linux's")
def test_a_segfault_costs_one_picture_not_the_caller(monkeypatch):
    crashing = wechat.WeChatProcess(command=SEGFAULTING_WORKER)
    with pytest.raises(wechat.WeChatCrashed, match=r"crashed on this picture \(worker exit code -11\)"):
        crashing.decode(gray_code("boom"))
    assert not crashing.alive

    # Through decode(): the crash becomes a failed read with the reason, and the crashed worker is not reused.
    monkeypatch.setattr(wechat, "_idle", [])
    monkeypatch.setattr(wechat, "_borrow", lambda: wechat.WeChatProcess(command=SEGFAULTING_WORKER))
    result = decode(gray_code("boom"), ("zxing", "wechat"), expected="boom")
    assert result["zxing"].match
    assert not result["wechat"].decoded and result["wechat"].match is False
    assert result["wechat"].error.startswith("WeChatCrashed: OpenCV's WeChat decoder crashed"), result["wechat"]
    assert wechat._idle == []
    monkeypatch.undo()
    assert decode(gray_code("after the crash"), ("wechat",), expected="after the crash")["wechat"].match


def test_a_hung_worker_is_stopped_and_reported():
    hanging = [sys.executable, "-c", "import sys, time; print('{\"ready\": 1}', flush=True); time.sleep(600)"]
    worker = wechat.WeChatProcess(command=hanging, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(wechat.WeChatCrashed, match=r"did not answer within 1 s and was stopped"):
        worker.decode(gray_code("stuck"))
    assert time.monotonic() - started < 10 and not worker.alive


def test_workers_that_fail_to_start_are_reported_and_not_cached(monkeypatch):
    with pytest.raises(wechat.WeChatWorkerError, match="cannot start the WeChat decoder's worker process"):
        wechat.WeChatProcess(command=["/nonexistent/python"])
    sleeping = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(wechat.WeChatWorkerError, match="did not start within 1 s"):
        wechat.WeChatProcess(command=sleeping, timeout=1.0)
    chatty = [sys.executable, "-c", "print('hello from a sitecustomize'); import time; time.sleep(600)"]
    with pytest.raises(wechat.WeChatWorkerError, match="greeted out of protocol"):
        wechat.WeChatProcess(command=chatty)

    # a transient failure costs this picture only: the next one gets a working worker
    monkeypatch.setattr(wechat, "_idle", [])
    monkeypatch.setattr(wechat, "_borrow", lambda: wechat.WeChatProcess(command=["/nonexistent/python"]))
    failed = decode(gray_code("x"), ("wechat",), expected="x")["wechat"]
    assert failed.error.startswith("WeChatWorkerError: cannot start"), failed
    monkeypatch.undo()
    assert decode(gray_code("x"), ("wechat",), expected="x")["wechat"].match


def test_a_garbled_answer_stops_the_worker():
    garbling = [sys.executable, "-c", textwrap.dedent("""
        import sys
        print('{"ready": "test"}', flush=True)
        sys.stdin.buffer.read(8)
        print('[ INFO:0@0.02] a log line where a reply should be', flush=True)
        sys.stdin.buffer.read()
    """)]
    worker = wechat.WeChatProcess(command=garbling)
    with pytest.raises(wechat.WeChatCrashed, match="answered out of protocol"):
        worker.decode(gray_code("garbled"))
    assert not worker.alive


def test_opencv_logging_to_stdout_does_not_shift_the_answers(monkeypatch):
    """OpenCV's log goes to stdout; the worker keeps it off the protocol, so each picture gets its own answer."""
    monkeypatch.setenv("OPENCV_LOG_LEVEL", "INFO")
    worker = wechat.WeChatProcess()
    try:
        texts = ["", "second", "", "fourth"]  # a blank picture first: it makes OpenCV log its parallel backend
        pictures = [gray_code(t) if t else gray_code("x")[:30, :30].copy() for t in texts]
        assert [worker.decode(p) for p in pictures] == [[t] if t else [] for t in texts]
    finally:
        worker.close()


def test_a_picture_of_the_wrong_type_is_refused_and_the_worker_kept():
    worker = wechat.WeChatProcess()
    try:
        with pytest.raises(ValueError, match="uint8"):
            worker.decode(gray_code("typed").astype(np.uint16))
        assert worker.alive and worker.decode(gray_code("typed")) == ["typed"]
    finally:
        worker.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork here")
def test_a_forked_child_gets_workers_of_its_own():
    assert decode(gray_code("parent"), ("wechat",), expected="parent")["wechat"].match  # the parent has a worker
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it decodes, then leave without running pytest's exit handlers
        ok = decode(gray_code("child"), ("wechat",), expected="child")["wechat"].match
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.close(write_end)
    assert os.read(read_end, 1) == b"1"
    os.close(read_end)
    os.waitpid(pid, 0)
    assert decode(gray_code("parent again"), ("wechat",), expected="parent again")["wechat"].match


def test_concurrent_decodes_get_workers_of_their_own(monkeypatch):
    monkeypatch.setattr(wechat, "_idle", [])  # count only this test's workers
    texts = [f"thread {i}" for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: decode(gray_code(t), ("wechat",), expected=t)["wechat"], texts))
    assert all(r.match for r in results), results
    assert 1 <= len(wechat._idle) <= 4


def test_worker_that_cannot_start_makes_wechat_unavailable(monkeypatch):
    unusable = [sys.executable, "-c", "print('{\"unusable\": \"no wechat module here (test)\"}')"]
    with pytest.raises(wechat.WeChatUnusable, match="no wechat module here"):
        wechat.WeChatProcess(command=unusable)
    monkeypatch.setattr(wechat, "_idle", [])
    monkeypatch.setattr(wechat, "_borrow", lambda: wechat.WeChatProcess(command=unusable))
    monkeypatch.setattr(decoders, "_state", {k: v for k, v in decoders._state.items() if k != "wechat"})
    result = decode(gray_code("x"), ("wechat",), expected="x")["wechat"]
    assert result.error == "unavailable: no wechat module here (test)"
    assert decoders.available("wechat") == (False, "no wechat module here (test)")


@pytest.mark.skipif(sys.platform != "linux", reason="checks the exit through /proc")
def test_workers_exit_with_their_parent():
    """A parent that dies without closing anything (os._exit) leaves no worker behind: stdin closes, it exits."""
    code = textwrap.dedent("""
        import os
        from aesthetic_qr.scan import wechat
        worker = wechat.WeChatProcess()
        print(worker.proc.pid, flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert pid_gone(int(out.stdout.strip()))
