"""Randomly initialised Stable Diffusion 1.5 files small enough for CPU tests, loadable by ComfyUI's own loaders.

ComfyUI detects a checkpoint's architecture from its keys and shapes; SD1.5 is recognised by a UNet with 320 base
channels and 768-wide cross-attention. `build` writes, with ComfyUI's own model classes (so every key and shape is
what its loaders expect):

* ``aqr_tiny_sd15.safetensors`` (``models/checkpoints``): an SD1.5-detected UNet cut to one level with one residual
  block, a TAESD-architecture VAE (ComfyUI loads it as the checkpoint's VAE; 8× downscale, 4 latent channels),
  and the full SD1 CLIP-L text encoder (its config is fixed by ComfyUI);
* ``aqr_tiny_cn_sd15.safetensors`` (``models/controlnet``): a ControlNet of the same UNet shape;
* with ``variant="full"``, SD1.5's real UNet and ControlNet shapes and its KL VAE instead (for benchmarks).

`build_readable` adds ``aqr_tiny_sd15_readable.safetensors``: the same UNet and CLIP (the same ControlNet fits)
with a TAESD decoder set by hand (`readable_decoder`) to a monotone, nearly black-and-white map of one latent
channel. The random UNet's pictures are then white (no code), and a latent that scan guidance or refinement moves
far enough decodes to a code that scans: the one model on which "generate until it scans" can succeed.

Weights are random with a fixed seed, fan-in scaled (zero-initialised layers too, so the ControlNet really
changes the prediction). A random UNet is no denoiser: its latents reach an RMS of ~80, so the VAE's input scale
(TAESD's ``vae_scale``) is set to 0.01 to keep them in the decoder's working range. The images are noise: these
files prove that graphs run and that gradients flow, not that pictures are pretty. ComfyUI is imported only in a
subprocess (``python tiny_sd.py COMFYUI_DIR OUT_DIR VARIANT``), never here.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

VAE_INPUT_SCALE = 0.01
FILES = {"tiny": ("aqr_tiny_sd15.safetensors", "aqr_tiny_cn_sd15.safetensors"),
         "full": ("aqr_random_sd15.safetensors", "aqr_random_cn_sd15.safetensors")}
READABLE = "aqr_tiny_sd15_readable.safetensors"
# `readable_decoder`'s map. The threshold lies below every latent the random UNet makes (channel 0 within ±350 at
# seeds 3–5): its pictures are white, the quiet zone too, which no code loss touches (SRL covers the symbol only).
READABLE_SHIFT = -500.0
# (z + 500)·0.003 ≤ 2.6 for those latents: TAESD's input clamp 3·tanh(u/3) keeps a slope ≥ 0.5 there
READABLE_SCALE = 0.003
# picture units per unit after the clamp: one x0 guidance step at λ = 500 moves every wrong module's latent past
# the threshold (measured: the first guided attempt reads, RS margin 3)
READABLE_GAIN = 1e4

_COMMON = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
               transformer_depth_middle=1, context_dim=768, num_heads=8, num_head_channels=-1,
               use_linear_in_transformer=False, legacy=False)
UNET_CONFIGS = {
    "tiny": dict(_COMMON, num_res_blocks=[1], channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1]),
    # Stable Diffusion 1.5 itself (860 M parameters), for timings and memory on real shapes
    "full": dict(_COMMON, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]),
}


# What makes a GPU workflow small enough for a CPU: 4 px modules (version and level stay), two sampler steps (two
# attempts of a scan sampler), two refinement iterations checked every step. Scan guidance keeps its mode.
CPU_SETTINGS = {"AQR_Encode": {"module_px": 4}, "KSampler": {"steps": 2},
                "AQR_ScanSampler": {"steps": 2, "attempts": 2},
                "AQR_LatentRefine": {"iterations": 2, "check_every": 1}}


def for_random_models(prompt: dict, inputs: dict[str, dict], *, seed: int | None = None, prefix: str = "aqr_test",
                      shrink: bool = True) -> dict:
    """`prompt` (an API prompt; changed in place and returned) made to run on random model files: `inputs` maps a
    class type or a node id to the inputs it gets (the files' names), every Save gets a fresh file name prefix,
    every sampler `seed` (when given: then no output comes from another run's cache) and, with `shrink`,
    `CPU_SETTINGS`."""
    for node_id, entry in prompt.items():
        kind, values = entry["class_type"], entry["inputs"]
        values.update(inputs.get(kind, {}))
        values.update(inputs.get(node_id, {}))
        if kind == "SaveImage":
            values["filename_prefix"] = f"{prefix}_{values['filename_prefix']}_{uuid.uuid4().hex[:6]}"
        elif kind in ("KSampler", "AQR_ScanSampler") and seed is not None:
            values["seed"] = seed
        for key, value in (CPU_SETTINGS.get(kind, {}) if shrink else {}).items():
            if key not in values:
                raise KeyError(f"{kind} (node {node_id}) has no input {key}")
            values[key] = value
    return prompt


def sd15_inputs(models: dict) -> dict[str, dict]:
    """`for_random_models`'s inputs for `build`'s files (``{"checkpoint": name, "controlnet": name}``)."""
    return {"CheckpointLoaderSimple": {"ckpt_name": models["checkpoint"]},
            "ControlNetLoader": {"control_net_name": models["controlnet"]}}


def build(comfyui_dir: str | Path, out_dir: str | Path, variant: str = "tiny", timeout: float = 1800
          ) -> dict[str, Path]:
    """Write the checkpoint and ControlNet under ``out_dir/checkpoints`` and ``out_dir/controlnet`` (ComfyUI's
    models layout); returns their paths. Files already there are kept. ``variant="full"`` gives SD1.5's real
    shapes and its KL VAE (2.6 GB in fp16) for benchmarks."""
    out = Path(out_dir)
    ckpt, cn = FILES[variant]
    paths = {"checkpoint": out / "checkpoints" / ckpt, "controlnet": out / "controlnet" / cn}
    if not all(p.is_file() for p in paths.values()):
        subprocess.run([sys.executable, __file__, str(comfyui_dir), str(out), variant], cwd=str(comfyui_dir),
                       check=True, timeout=timeout, capture_output=True)
    return paths


def readable_decoder(sd: dict, shift: float = READABLE_SHIFT, scale: float = READABLE_SCALE,
                     gain: float = READABLE_GAIN) -> dict:
    """`sd` (a checkpoint's tensors, with `build`'s TAESD VAE) with a decoder set by hand: every pixel of an 8×8
    patch is, in R, G and B, ``clamp(0.5 + gain·t, 0, 1)``, ``t = 3·tanh(u/3)`` (TAESD's input clamp) of
    ``u = (z − shift)·scale`` (TAESD.decode's ``vae_shift``, ``vae_scale``), z the patch's latent channel 0 (the
    other three are ignored). A map that is monotone, differentiable before ComfyUI's clamp (guidance and
    refinement pass gradients straight through it), and nearly a step: z above ``shift`` decodes white, below it
    black. The layers, by index in ComfyUI's ``taesd.Decoder`` (Clamp, conv 1, ReLU, Blocks 3–5,
    Upsample, conv 7, Blocks 8–10, Upsample, conv 12, Blocks 13–15, Upsample, conv 17, Block 18, conv 19), all
    else zero:

    * conv 1 (latent → 64 features): feature 0 = gain·t, feature 1 = −gain·t (centre taps); the ReLU after it
      keeps the positive part of each, so the sign lives on in two non-negative features;
    * every Block: its three convolutions zero, so ``relu(conv(x) + x) = x`` on non-negative x;
    * convs 7, 12, 17 after each nearest ×2 upsampling: identity on features 0 and 1 (centre taps): each latent
      pixel becomes an 8×8 patch;
    * conv 19 (features → RGB): feature 0 − feature 1 + 0.5 in each channel. TAESD.decode returns 2y − 1 of its
      output y and ComfyUI's VAE shows ``clamp((2y − 1 + 1)/2, 0, 1)``: y is the picture.

    Every value is exact in fp16 (the file's dtype) but ``scale`` (0.003 → 0.0030003). The encoder stays random.
    """
    import torch

    prefix = "first_stage_model.taesd_decoder."
    out = {k: (torch.zeros_like(v) if k.startswith(prefix) else v) for k, v in sd.items()}
    out[prefix + "1.weight"][0, 0, 1, 1] = gain
    out[prefix + "1.weight"][1, 0, 1, 1] = -gain
    for conv in (7, 12, 17):
        for c in (0, 1):
            out[f"{prefix}{conv}.weight"][c, c, 1, 1] = 1.0
    out[prefix + "19.weight"][:, 0, 1, 1] = 1.0
    out[prefix + "19.weight"][:, 1, 1, 1] = -1.0
    out[prefix + "19.bias"][:] = 0.5
    for name, value in (("vae_scale", scale), ("vae_shift", shift)):
        key = "first_stage_model." + name
        out[key] = torch.full_like(sd[key], value)
    return out


def build_readable(comfyui_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """`build`'s tiny files plus ``out_dir/checkpoints/READABLE``: the tiny checkpoint with `readable_decoder`.
    Returns {"checkpoint": the readable checkpoint, "controlnet": the tiny ControlNet}."""
    from safetensors.torch import load_file, save_file

    paths = build(comfyui_dir, out_dir)
    target = paths["checkpoint"].with_name(READABLE)
    if not target.is_file():
        save_file(readable_decoder(load_file(str(paths["checkpoint"]))), str(target))
    return {"checkpoint": target, "controlnet": paths["controlnet"]}


def _write(comfyui_dir: str, out_dir: str, variant: str) -> None:
    sys.path.insert(0, comfyui_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.cldm.cldm
    import comfy.ldm.models.autoencoder
    import comfy.ops
    import comfy.sd1_clip
    import comfy.taesd.taesd
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)

    def randomised(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
        """Fan-in scaled weights (activations keep unit scale through the stack, so the decoder's output
        really depends on the latent), unit norm scales, small biases."""
        sd = {}
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                shape = value.shape
                if value.dim() >= 2:
                    value = torch.randn(shape, generator=gen) / float(shape[1:].numel()) ** 0.5
                elif "norm" in key and key.endswith("weight"):
                    value = 1 + 0.02 * torch.randn(shape, generator=gen)
                else:
                    value = 0.02 * torch.randn(shape, generator=gen)
            sd[prefix + key] = value.contiguous()
        return sd

    ops = comfy.ops.disable_weight_init
    config = UNET_CONFIGS[variant]
    unet = UNetModel(**config, dtype=torch.float32, operations=ops)
    if variant == "tiny":
        vae_sd = randomised(comfy.taesd.taesd.TAESD(), "first_stage_model.")
        vae_sd["first_stage_model.vae_scale"] = torch.tensor(VAE_INPUT_SCALE)
        vae_sd["first_stage_model.vae_shift"] = torch.tensor(0.0)
    else:
        ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
        vae_sd = randomised(comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=ddconfig, embed_dim=4),
                            "first_stage_model.")
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    clip_sd = randomised(clip.transformer, "cond_stage_model.transformer.")
    checkpoint = {**randomised(unet, "model.diffusion_model."), **vae_sd, **clip_sd}

    cn_config = {k: v for k, v in config.items() if k not in ("out_channels", "transformer_depth_output")}
    control = comfy.cldm.cldm.ControlNet(**cn_config, hint_channels=3, dtype=torch.float32, operations=ops)
    controlnet = randomised(control, "control_model.")

    for sub, name, sd in zip(("checkpoints", "controlnet"), FILES[variant], (checkpoint, controlnet)):
        folder = Path(out_dir) / sub
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(torch.float16) for k, v in sd.items()}, str(folder / name))


if __name__ == "__main__":
    _write(sys.argv[1], sys.argv[2], sys.argv[3])
