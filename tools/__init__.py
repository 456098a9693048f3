"""Tooling around the pack: the `aesthetic-qr` command line, the demo, the headless ComfyUI server and client, and
workflow conversion and validation. Only this package and `nodes/` know ComfyUI."""

__all__ = ["cli", "demo", "headless", "workflow"]
