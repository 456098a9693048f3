"""Differentiable scanning-robust losses (torch; no ComfyUI import)."""

# public API of the loss modules (re-exported; `noqa: F401` keeps each line independent for later appends)
from .adaptive import AdaptiveConfig, adaptive_code_loss, face_modules  # noqa: F401
from .colour import chroma, luminance_only  # noqa: F401
from .perceptual import (  # noqa: F401
    VGGFeatures,
    fidelity_loss,
    load_vgg,
    lpips_loss,
    pixel_loss,
    ssim,
    ssim_loss,
    w2_content_loss,
    w2_distance,
)
from .srl import SRLConfig, luma_plane, srl, wrong_modules  # noqa: F401
