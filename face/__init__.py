"""Faces for Face2QR's steps: detection (insightface antelopev2, or OpenCV's Haar cascade) and the masks built from
it, in picture space and in modules. numpy + OpenCV; no torch, no ComfyUI."""

__all__ = ["mask"]
