"""bench/gpu_check.py's CPU mode runs end to end, so the script a lent GPU runs has not rotted."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


def test_gpu_check_cpu_tiny_mode_runs_every_path(comfyui_found, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--tiny"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    modes = {line.split()[1] for line in lines if line.strip() and line.split()[0].isdigit()}
    assert modes == {"none", "x0", "xt", "refine"}, done.stdout
    for workflow in ("diffqrcoder_sd15", "qrmonster_baseline_sd15"):
        assert any(line.split()[:2] == [workflow, "success"] for line in lines), done.stdout
