"""Model-free picture work: codes that follow a picture (`follow`), halftone blueprints, marker harmonisation,
hue-keeping colour, ARTUP and pixel-space refinement. Modules that optimise import torch; import them directly."""

__all__ = ["artup", "blueprint", "colour", "follow", "markers", "pixel_refine"]
