"""The house rules: only nodes/ and tools/ know ComfyUI, numpy packages never import torch, no package imports one
above it. Each check imports the packages in a fresh interpreter and looks at what got loaded."""

import subprocess
import sys

import pytest

NUMPY_ONLY = ["qr", "qr.code", "qr.pixels", "qr.render", "qr.reshuffle", "scan", "scan.camera", "scan.report",
              "face.detect", "face.mask", "art.blueprint", "art.follow", "art.markers", "art.colour",
              "invisible.attacks"]
TORCH = ["losses", "losses.scan_probability", "art.artup", "art.pixel_refine", "diffusion.guidance",
         "diffusion.hooks", "diffusion.latent_refine", "diffusion.decoder", "invisible.hide", "invisible.train",
         "invisible.data"]
ORDER = ["qr", "scan", "face", "losses", "art", "diffusion", "invisible"]  # a package may import only those before it


def loaded_after(module: str) -> set[str]:
    code = (f"import sys, aesthetic_qr.{module}; "
            "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'torch', "
            "'folder_paths', 'aesthetic_qr')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", NUMPY_ONLY + TORCH)
def test_lower_packages_never_import_comfyui(module):
    loaded = loaded_after(module)
    assert not {m for m in loaded if m.split(".")[0] in ("comfy", "comfy_api", "folder_paths")}
    assert not {m for m in loaded if m.startswith(("aesthetic_qr.nodes", "aesthetic_qr.tools"))}
    if module in NUMPY_ONLY:
        assert "torch" not in loaded, f"{module} imports torch"


@pytest.mark.parametrize("package", ORDER)
def test_no_package_imports_one_above_it(package):
    above = ORDER[ORDER.index(package) + 1:]
    modules = [m for m in NUMPY_ONLY + TORCH if m.split(".")[0] == package]
    for module in modules:
        loaded = loaded_after(module)
        assert not {m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in above}, module
