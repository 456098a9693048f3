"""Conversions between ComfyUI's tensors (IMAGE: B×H×W×C, MASK: B×H×W, float 0..1) and numpy arrays."""

import numpy as np
import torch


def image_batch_to_numpy(image: torch.Tensor) -> list[np.ndarray]:
    """One H×W×3 float32 array per batch item (alpha dropped, grey expanded)."""
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an IMAGE tensor shaped [batch, height, width, channels], got {tuple(image.shape)}")
    arr = image.detach().float().cpu().numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return [a[..., :3] for a in arr]


def numpy_to_image(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack H×W×3 float arrays into an IMAGE tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))


def numpy_to_mask(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))
