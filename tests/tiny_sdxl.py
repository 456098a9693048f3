"""Randomly initialised SDXL-family files for the Face2QR test (tests/test_face2qr.py), loadable by ComfyUI's own
loaders and by ComfyUI_InstantID's.

The sibling of ``tests/tiny_sd.py`` (SD1.5). ComfyUI classifies a checkpoint by its UNet's keys and shapes: the
SDXL family (``comfy/supported_models.py``: SDXL, SSD-1B, Segmind Vega, KOALA) is matched on 320 base channels,
2048-wide cross-attention, a 2816-wide ``adm`` input, linear transformer projections and the per-block transformer
depths; the channel multipliers are read from the weights and not matched. ``build`` writes, with ComfyUI's own
model classes:

* ``aqr_tiny_sdxl.safetensors`` (``models/checkpoints``, the SDXL checkpoint layout: ``model.diffusion_model.``,
  ``first_stage_model.``, ``conditioner.embedders.0`` CLIP-L and ``conditioner.embedders.1.model`` OpenCLIP-G,
  written by ComfyUI's own ``process_clip_state_dict_for_saving``): Segmind Vega's input depths ``[0, 0, 1, 1, 2,
  2]`` (detected as ``Segmind_Vega``, an SDXL subclass), all three levels at 320 channels, one transformer in
  output blocks 0-5 and none in the middle. InstantID patches attn2 of input blocks 4, 5, 7, 8 and output blocks
  0-5: this model has a transformer at each of them (10 of InstantID's 70 patch positions). A TAESD-architecture
  VAE as in tiny_sd.py. CLIP-L and CLIP-G at full size: ComfyUI builds the SDXL text encoders from fixed configs
  (``sd1_clip_config.json``, ``clip_config_bigg.json``) whatever the checkpoint holds, and leaves any weight the
  file lacks uninitialised, so there is no smaller text encoder it loads (818 M parameters, most of the file).
* ``aqr_tiny_cn_sdxl_qr.safetensors`` and ``aqr_tiny_cn_instantid.safetensors`` (``models/controlnet``): ControlNets
  of the same UNet shape in ComfyUI's ``control_model.`` layout (ComfyUI's diffusers-layout loader matches SDXL
  ControlNets only against fixed configs with 640/1280-channel levels, 160 M parameters or more each).
* ``aqr_tiny_instantid.bin`` (``models/instantid``): InstantID's ``ip-adapter.bin`` layout, a torch pickle
  ``{"image_proj": Resampler state dict, "ip_adapter": {"1.to_k_ip.weight", "1.to_v_ip.weight", …,
  "139.to_v_ip.weight"}}``; the Resampler is InstantID's own class (its shape is fixed by InstantID.py: 1280 wide,
  4 layers, 16 queries, 512-wide face embedding in, 2048 out), imported from the InstantID tree given; all 70
  key/value pairs are written, 320 wide (this model's attention width) from 2048.

Weights are random with a fixed seed, fan-in scaled, stored in fp16. ComfyUI is imported only in a subprocess
(``python tiny_sdxl.py COMFYUI_DIR OUT_DIR INSTANTID_DIR``), never here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VAE_INPUT_SCALE = 0.01
FILES = {"checkpoint": ("checkpoints", "aqr_tiny_sdxl.safetensors"),
         "qr_controlnet": ("controlnet", "aqr_tiny_cn_sdxl_qr.safetensors"),
         "instantid_controlnet": ("controlnet", "aqr_tiny_cn_instantid.safetensors"),
         "instantid": ("instantid", "aqr_tiny_instantid.bin")}

UNET_CONFIG = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
                   legacy=False, num_classes="sequential", adm_in_channels=2816, use_linear_in_transformer=True,
                   context_dim=2048, num_head_channels=64, num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1],
                   transformer_depth=[0, 0, 1, 1, 2, 2],
                   # consumed from the end: output blocks 0-5 get one transformer, 6-8 none
                   transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1],
                   transformer_depth_middle=-1)
IP_LAYERS = 70  # InstantID.py patches 70 attn2 positions: module keys 1, 3, …, 139
IP_WIDTH = 320  # the attention width of every patched block of this model


def build(comfyui_dir: str | Path, out_dir: str | Path, instantid_dir: str | Path, timeout: float = 900
          ) -> dict:
    """Write the four files under ``out_dir`` (ComfyUI's models layout); returns ``{"paths": {role: Path},
    "detected": ComfyUI's model class for the checkpoint, "seconds": writing time}``. Files already there are
    kept."""
    out = Path(out_dir)
    paths = {role: out / sub / name for role, (sub, name) in FILES.items()}
    info = {"detected": None, "seconds": 0.0}
    if not all(p.is_file() for p in paths.values()):
        import importlib.util
        import os
        import tempfile

        from aesthetic_qr.tools import headless

        # comfy.supported_models imports torchvision (0.33 also torchaudio): the server's stubs, on this path only
        missing = [m for m in headless.STUBBED_MODULES if importlib.util.find_spec(m) is None]
        with tempfile.TemporaryDirectory(prefix="aqr-tiny-sdxl-stubs-") as stubs:
            env = dict(os.environ)
            if missing:
                headless.write_stubs(Path(stubs), missing)
                env["PYTHONPATH"] = os.pathsep.join(p for p in (stubs, env.get("PYTHONPATH", "")) if p)
            proc = subprocess.run([sys.executable, __file__, str(comfyui_dir), str(out), str(instantid_dir)],
                                  cwd=str(comfyui_dir), timeout=timeout, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise RuntimeError(f"tiny_sdxl failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"paths": paths, **info}


def _write(comfyui_dir: str, out_dir: str, instantid_dir: str) -> None:
    import time

    t0 = time.monotonic()
    sys.path.insert(0, comfyui_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import importlib.util

    import comfy.cldm.cldm
    import comfy.model_detection
    import comfy.ops
    import comfy.sdxl_clip
    import comfy.supported_models
    import comfy.taesd.taesd
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)

    def randomised(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
        """Fan-in scaled weights, unit norm scales, small biases (as tiny_sd.py), stored in fp16."""
        sd = {}
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                shape = value.shape
                if value.dim() >= 2:
                    value = torch.randn(shape, generator=gen) / float(shape[1:].numel()) ** 0.5
                elif "norm" in key and key.endswith("weight") or key.endswith(("ln_1.weight", "ln_2.weight")):
                    value = 1 + 0.02 * torch.randn(shape, generator=gen)
                else:
                    value = 0.02 * torch.randn(shape, generator=gen)
                value = value.to(torch.float16)
            sd[prefix + key] = value.contiguous()
        return sd

    ops = comfy.ops.disable_weight_init
    unet = UNetModel(**UNET_CONFIG, dtype=torch.float16, operations=ops)
    unet_sd = randomised(unet, "model.diffusion_model.")
    config = comfy.model_detection.model_config_from_unet(unet_sd, "model.diffusion_model.")
    detected = type(config).__name__ if config is not None else None
    if not isinstance(config, comfy.supported_models.SDXL):
        raise SystemExit(f"ComfyUI classifies the tiny UNet as {detected}, not an SDXL-family model")

    vae_sd = randomised(comfy.taesd.taesd.TAESD(), "first_stage_model.")
    vae_sd["first_stage_model.vae_scale"] = torch.tensor(VAE_INPUT_SCALE)
    vae_sd["first_stage_model.vae_shift"] = torch.tensor(0.0)

    clip = comfy.sdxl_clip.SDXLClipModel(device="cpu", dtype=torch.float16)
    clip_sd = config.process_clip_state_dict_for_saving(randomised(clip))
    del clip
    checkpoint = {**unet_sd, **vae_sd, **clip_sd}

    out = Path(out_dir)

    def save(role: str, sd: dict) -> None:
        sub, name = FILES[role]
        (out / sub).mkdir(parents=True, exist_ok=True)
        if name.endswith(".safetensors"):
            save_file(sd, str(out / sub / name))
        else:
            torch.save(sd, str(out / sub / name))

    save("checkpoint", checkpoint)
    del checkpoint, clip_sd

    cn_config = {k: v for k, v in UNET_CONFIG.items() if k not in ("out_channels", "transformer_depth_output")}
    for role in ("qr_controlnet", "instantid_controlnet"):
        control = comfy.cldm.cldm.ControlNet(**cn_config, hint_channels=3, dtype=torch.float16, operations=ops)
        save(role, randomised(control, "control_model."))

    spec = importlib.util.spec_from_file_location("instantid_resampler", str(Path(instantid_dir) / "resampler.py"))
    resampler_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(resampler_module)
    # InstantID.init_proj's shape (InstantIDModelLoader passes output_cross_attention_dim from the ip layers)
    resampler = resampler_module.Resampler(dim=1280, depth=4, dim_head=64, heads=20, num_queries=16,
                                           embedding_dim=512, output_dim=2048, ff_mult=4)
    ip_adapter = {}
    for n in range(1, 2 * IP_LAYERS, 2):
        for kind in ("k", "v"):
            ip_adapter[f"{n}.to_{kind}_ip.weight"] = (torch.randn(IP_WIDTH, 2048, generator=gen) / 2048 ** 0.5
                                                      ).to(torch.float16)
    save("instantid", {"image_proj": randomised(resampler), "ip_adapter": ip_adapter})
    print(json.dumps({"detected": detected, "seconds": round(time.monotonic() - t0, 1)}))


if __name__ == "__main__":
    _write(sys.argv[1], sys.argv[2], sys.argv[3])
