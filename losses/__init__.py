"""Differentiable scanning-robust losses (torch; no ComfyUI import)."""
