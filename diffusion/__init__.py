"""Diffusion-side work (torch; no ComfyUI import): the guidance objective and the sampler hooks that apply it
(ComfyUI's own functions are handed in by the node), latent refinement, the differentiable VAE decoder and the
plain (inference-mode-free) copies of frozen weights."""

__all__ = ["decoder", "frozen", "guidance", "hooks", "latent_refine"]
