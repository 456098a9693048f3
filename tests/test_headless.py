"""tools/headless.py without a server: reading ComfyUI's log in both formats (recorded excerpts of 0.3.75 and 0.33 in
tests/fixtures/comfyui_logs/) and the torchvision/torchaudio stubs (in a fresh interpreter: they never go on this
process's path)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aesthetic_qr.tools import headless

LOGS = Path(__file__).resolve().parent / "fixtures" / "comfyui_logs"
VERSIONS = ["0.3.75", "0.33"]
LINK = "/tmp/aqr-comfyui-run-recorded/pack_custom_nodes/aesthetic-qr"  # the pack's link in every recorded log
EXTRAS = "/tmp/aqr-comfyui-src-recorded/ComfyUI/comfy_extras"


def log(version: str, case: str) -> str:
    return (LOGS / f"comfyui_{version}_{case}.log").read_text()


def test_the_recorded_formats_differ():
    assert "\x1b[32m[INFO]\x1b[0m " in log("0.33", "loaded") and "\x1b" not in log("0.3.75", "loaded")


@pytest.mark.parametrize("version", VERSIONS)
def test_loaded_pack(version):
    text = log(version, "loaded")
    assert headless.log_pack_loaded(text, [LINK, "/somewhere/else"])
    assert not headless.log_pack_import_failed(text, [LINK])
    assert headless.log_pack_import_error(text, [LINK]) == ""
    assert not headless.log_pack_loaded(text, [LINK + "-other", LINK.rsplit("/", 1)[0]])  # whole paths only
    # comfy_extras modules that failed (spandrel, 0.33's comfy_angle) are not the pack
    assert headless.log_pack_import_error(text, [f"{EXTRAS}/nodes_upscale_model.py"]).startswith("Traceback")


@pytest.mark.parametrize("version", VERSIONS)
def test_import_error_gives_the_whole_chained_traceback(version):
    text = log(version, "import_error")
    assert headless.log_pack_import_failed(text, [LINK]) and not headless.log_pack_loaded(text, [LINK])
    lines = headless.log_pack_import_error(text, [LINK]).splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f'  File "{LINK}/__init__.py", line 2, in <module>' in lines
    assert "ModuleNotFoundError: No module named 'definitely_missing_module_for_aqr'" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert "RuntimeError: aqr test: the pack could not import its dependency" in lines
    assert lines[-2] == (f"Cannot import {LINK} module for custom nodes: "
                         "aqr test: the pack could not import its dependency")
    assert lines[-1] == f"   0.0 seconds (IMPORT FAILED): {LINK}"
    assert not any("spandrel" in line or "comfy_angle" in line or "\x1b" in line or line.startswith("[")
                   for line in lines)
    assert lines.count("Traceback (most recent call last):") == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_entrypoint_error(version):
    text = log(version, "entrypoint_error")
    assert headless.log_pack_import_failed(text, [LINK]) and not headless.log_pack_loaded(text, [LINK])
    assert headless.log_pack_import_error(text, [LINK]).splitlines() == [
        f"Error while calling comfy_entrypoint in {LINK}: aqr test: entrypoint failure",
        f"   0.0 seconds (IMPORT FAILED): {LINK}",
    ]


def test_log_lines_mark_where_a_record_starts():
    lines = headless.log_lines(log("0.33", "import_error"))
    tracebacks = [tagged for message, tagged in lines if message == "Traceback (most recent call last):"]
    assert tracebacks == [True, True, True, False]  # two comfy_extras, the pack's, its chained one (no tag)
    assert not any(tagged for _, tagged in headless.log_lines(log("0.3.75", "import_error")))


STUB_PROBE = r"""
import importlib.util, json, sys
from torchvision.ops import roi_align, deform_conv2d
import torchvision.transforms.functional as TVF
from torchvision.transforms.functional import InterpolationMode
from torchvision.transforms import ToPILImage, ToTensor
from torchvision.models.optical_flow import raft_large
import torchvision.transforms as transforms
import torchaudio
import torchaudio.functional as AF
from torchaudio.transforms import MelScale
import torchvision.a.b.c.d

class Model(torchvision.models.ResNet):
    pass

def fails(f):
    try:
        f()
    except RuntimeError as exc:
        return str(exc)
    return None

print(json.dumps({
    "module": type(TVF).__name__, "file": torchvision.ops.__file__, "same": torchvision.ops.roi_align is roi_align,
    "call": fails(lambda: roi_align(1, 2)), "resample": fails(lambda: AF.resample(1, 2, 3)),
    "subclass": fails(Model), "mode": repr(InterpolationMode.BILINEAR), "version": hasattr(torchvision, "__version__"),
    "spec": importlib.util.find_spec("torchaudio.io") is not None,
}))
"""


def test_stubs_answer_any_submodule_import(tmp_path):
    root = headless.write_stubs(tmp_path / "stubs")
    assert sorted(p.name for p in root.iterdir()) == ["torchaudio", "torchvision"]
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(root)!r})\n" + STUB_PROBE],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["module"] == "module" and out["file"] == str(root / "torchvision" / "__init__.py") and out["same"]
    assert out["call"] == "torchvision.ops.roi_align: torchvision is not installed (stub from aesthetic-qr's " \
                          "headless runner)"
    assert out["resample"].startswith("torchaudio.functional.resample: torchaudio is not installed")
    assert out["subclass"].startswith("torchvision.models.ResNet: ")
    assert out["mode"] == "<stub torchvision.transforms.functional.InterpolationMode.BILINEAR>"
    assert out["version"] is False and out["spec"] is True
    assert "torchvision" not in sys.modules or "stubs" not in (sys.modules["torchvision"].__file__ or "")


def test_comfyui_copy_and_server_path(tmp_path, monkeypatch):
    """COMFYUI_COPY=1 makes COMFYUI_PATH a tree to copy; COMFYUI_PYTHONPATH and the stubs go on the server's
    PYTHONPATH only, none of the three into its environment."""
    tree = tmp_path / "ComfyUI"
    tree.mkdir()
    (tree / "main.py").write_text("")
    monkeypatch.setenv("COMFYUI_PATH", str(tree))
    monkeypatch.delenv("COMFYUI_COPY", raising=False)
    assert headless.find_comfyui() == (tree, True)
    monkeypatch.setenv("COMFYUI_COPY", "1")
    assert headless.find_comfyui() == (tree, False)

    overlay = tmp_path / "overlay"
    monkeypatch.setenv("COMFYUI_PYTHONPATH", str(overlay))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    server = headless.ComfyUIServer(workdir=tmp_path / "work")
    server.workdir = tmp_path / "work"
    env = server._env()
    missing = [m for m in headless.STUBBED_MODULES if not headless._has_module(sys.executable, m)]
    stubs = [str(tmp_path / "work" / "stubs")] if missing else []
    assert env["PYTHONPATH"].split(":") == [str(overlay), *stubs, "/elsewhere"]
    assert not {"COMFYUI_PATH", "COMFYUI_COPY", "COMFYUI_PYTHONPATH"} & set(env)
    if missing:
        assert sorted(p.name for p in (tmp_path / "work" / "stubs").iterdir()) == sorted(missing)
