"""The optional VGG weights the fidelity terms use, from ComfyUI/models/vgg/ (registered with folder_paths, so
extra_model_paths.yaml can point elsewhere)."""

import functools
import os

import folder_paths
import torch

from ..losses.perceptual import load_vgg

VGG_FOLDER = "vgg"
folder_paths.add_model_folder_path(VGG_FOLDER, os.path.join(folder_paths.models_dir, VGG_FOLDER))


def vgg_choices() -> list[str]:
    return ["none"] + folder_paths.get_filename_list(VGG_FOLDER)


@functools.lru_cache(maxsize=2)
def _load(path: str, arch: str):
    with torch.inference_mode(False):  # weights loaded in inference mode could not carry gradients
        return load_vgg(path, arch)


def vgg_for_node(name: str, arch: str = "vgg16"):
    """The frozen VGG for a combo choice (None for "none"), loaded once per file."""
    if name == "none":
        return None
    return _load(folder_paths.get_full_path_or_raise(VGG_FOLDER, name), arch)
