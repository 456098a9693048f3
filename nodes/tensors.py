"""Conversions between ComfyUI's tensors (IMAGE: B×H×W×C, MASK: B×H×W, float 0..1) and numpy arrays, and the
checks every IMAGE, MASK and LATENT input passes first (`check_image`, `check_mask`, `check_latent`: the node's
inputs are checked by `nodes.inputs.AQRNode` before `execute` runs)."""

import numpy as np
import torch


def _check_finite(tensor: torch.Tensor, what: str) -> None:
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int(finite.numel() - int(finite.sum()))
        raise ValueError(f"{what} holds non-finite values (NaN or infinity) in {bad} of {finite.numel()} entries; "
                         f"fix the node that made it")


def check_image(image, what: str = "the IMAGE") -> None:
    """An IMAGE input: a finite float tensor shaped [batch, height, width, channels] with 1, 3 or 4 channels."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{what} must be an IMAGE tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
        raise ValueError(f"{what} must be an IMAGE tensor shaped [batch, height, width, channels] with 1, 3 or 4 "
                         f"channels, got {tuple(image.shape)}")
    if image.is_floating_point():
        _check_finite(image, what)


def check_mask(mask, what: str = "the MASK") -> None:
    """A MASK input: a finite tensor shaped [batch, height, width] (or [height, width])."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{what} must be a MASK tensor, got {type(mask).__name__}")
    if mask.ndim not in (2, 3) or 0 in mask.shape:
        raise ValueError(f"{what} must be a MASK tensor shaped [batch, height, width], got {tuple(mask.shape)}")
    if mask.is_floating_point():
        _check_finite(mask, what)


def check_latent(latent, what: str = "the LATENT") -> None:
    """A LATENT input: a dict whose "samples" is a finite tensor [batch, channels, …] (a NaN latent decodes to
    garbage and poisons every gradient through it)."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim < 4 or 0 in samples.shape:
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(latent).__name__
        raise ValueError(f"{what} must be a LATENT with samples shaped [batch, channels, height, width], got {got}")
    if samples.is_floating_point():
        _check_finite(samples, what)


def per_image(texts: list[str], sep: str = "\n") -> str:
    """One report for a batch: each item's text, labelled `image i:` when there is more than one."""
    return sep.join(f"image {i}: {text}" if len(texts) > 1 else text for i, text in enumerate(texts))


def image_batch_to_numpy(image: torch.Tensor) -> list[np.ndarray]:
    """One H×W×3 float32 array per batch item (alpha dropped, grey expanded)."""
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an IMAGE tensor shaped [batch, height, width, channels], got {tuple(image.shape)}")
    arr = image.detach().float().cpu().numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return [a[..., :3] for a in arr]


def mask_batch_to_numpy(mask: torch.Tensor) -> list[np.ndarray]:
    """One H×W float32 array per batch item of a MASK ([batch, height, width] or [height, width])."""
    arr = mask.detach().float().cpu().numpy()
    return [arr] if arr.ndim == 2 else list(arr)


def spatial_size(tensor: torch.Tensor) -> tuple[int, int]:
    """(height, width) of an IMAGE ([batch, height, width, channels]) or a MASK ([batch, height, width])."""
    return (int(tensor.shape[1]), int(tensor.shape[2])) if tensor.ndim == 4 else \
        (int(tensor.shape[-2]), int(tensor.shape[-1]))


def numpy_to_image(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack H×W×3 float arrays into an IMAGE tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))


def numpy_to_mask(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))
