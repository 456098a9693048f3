"""Write workflows from the compact descriptions below — the GPU ones (DiffQRCoder, the QR Code Monster baseline,
Face2QR, and DiffQRCoder and Face2QR ending in the generate-until-it-scans loop) and the CPU ``art_cpu`` and
``invisible_qr_cpu`` —:
``workflows/NAME.json`` (UI format, laid out in columns, with a note), its API twin ``workflows/api/NAME.json`` and
the thumbnail ``workflows/NAME.jpg``.

    .venv/bin/python scripts/author_workflows.py [NAME ...] [--server URL]

Widget order and defaults come from a real ComfyUI's ``/object_info`` (a headless one is started unless ``--server``
is given) plus the recorded ComfyUI_InstantID definitions in ``tests/fixtures/third_party_object_info.json``.
Edit a workflow here, not in the JSON, so the files stay reproducible. No GPU has run the GPU graphs here, so their
thumbnails are not generated pictures: each shows the code the ControlNet sees and the pipeline, and says so.
``art_cpu``'s thumbnail is its real output (`art` on the bundled picture with the workflow's settings), and so is
``invisible_qr_cpu``'s (hidden picture, residual, revealed code) once the shipped weights exist.

The files are the same whichever ComfyUI is asked: node outputs that changed between 0.3.75 and 0.33 are written as
0.33 defines them (``NEWEST_OUTPUTS``), which is what its frontend saves.
"""
# ruff: noqa: E501  (the notes are prose with one paragraph a line, as the workflows' Note nodes show them)

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.tools.headless import fetch_object_info
from aesthetic_qr.tools.workflow import api_to_ui, recorded_definitions, ui_to_api, validate

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "third_party_object_info.json"

# ---- model files (also named in the notes) ---------------------------------------------------------------------
SD15_CKPT = "cetusMix_Whalefall2_fp16.safetensors"
SD15_QR_CN = "control_v1p_sd15_qrcode_monster_v2.safetensors"
SDXL_CKPT = "sd_xl_base_1.0.safetensors"
SDXL_QR_CN = "control_v1p_sdxl_qrcode_monster.safetensors"
INSTANTID = "ip-adapter.bin"
INSTANTID_CN = "instantid_controlnet.safetensors"

DIFFQR_PROMPT = ("Winter wonderland, fresh snowfall, evergreen trees, cozy log cabin, smoke rising from chimney, "
                 "aurora borealis in night sky.")
SD15_NEGATIVE = "lowres, blurry, worst quality, low quality, jpeg artifacts, watermark, text, signature"
FACE2QR_PROMPT = ("A female woman, face in the middle. white bird sitting on a branch of roses, digital watercolor "
                  "illustration of a meadow with white roses in the morning light, detailed fantastic background "
                  "of Salvador Dali, waterhouse, Canaletto, watercolor art, intricate, complex contrast, HDR, sharp, "
                  "soft cinematic volumetric lighting, the background is lost in haze. The foreground is brightly "
                  "lit. 4k")
SDXL_NEGATIVE = "watermark, text, deformed, glitch, blurry, lowres, worst quality"

DIFFQR_CODE = dict(text="Thanks reviewer!", version=3, ecl="M", mask="4", module_px=20, border=4, style="plain",
                   size_multiple="8 (SD latent)")
FACE2QR_CODE = dict(text="https://github.com/aesthetic-qr/aesthetic-qr", version=5, ecl="M", mask="auto",
                    module_px=23, border=4, style="plain", size_multiple="8 (SD latent)")


class Graph:
    """An API prompt built node by node: ``g.add(type, title, **inputs)`` returns the node's id; ``out(id, slot)``
    is a link to one of its outputs."""

    def __init__(self):
        self.prompt: dict[str, dict] = {}

    def add(self, class_type: str, title: str | None = None, **inputs) -> str:
        key = str(len(self.prompt) + 1)
        self.prompt[key] = {"inputs": inputs, "class_type": class_type, "_meta": {"title": title}}
        return key


def out(node: str, slot: int = 0) -> list:
    return [node, slot]


def sd15_stage1(g: Graph) -> dict[str, str]:
    """Checkpoint, prompts, code, QR Code Monster v2 at 1.35, latent of the blueprint's size, 40 DDIM steps at CFG
    7.5, decode (DiffQRCoder's stage 1, also the baseline)."""
    n = {"ckpt": g.add("CheckpointLoaderSimple", "Checkpoint (SD1.5)", ckpt_name=SD15_CKPT)}
    n["pos"] = g.add("CLIPTextEncode", "Positive prompt", text=DIFFQR_PROMPT, clip=out(n["ckpt"], 1))
    n["neg"] = g.add("CLIPTextEncode", "Negative prompt", text=SD15_NEGATIVE, clip=out(n["ckpt"], 1))
    n["code"] = g.add("AQR_Encode", "Code", **DIFFQR_CODE)
    n["cnl"] = g.add("ControlNetLoader", "QR Code Monster v2", control_net_name=SD15_QR_CN)
    n["cn1"] = g.add("ControlNetApplyAdvanced", "QR ControlNet (stage 1)", positive=out(n["pos"]),
                     negative=out(n["neg"]), control_net=out(n["cnl"]), image=out(n["code"]), strength=1.35,
                     start_percent=0.0, end_percent=1.0)
    n["size"] = g.add("GetImageSize", "Code size", image=out(n["code"]))
    n["empty"] = g.add("EmptyLatentImage", "Latent (code size)", width=out(n["size"], 0), height=out(n["size"], 1),
                       batch_size=1)
    n["ks1"] = g.add("KSampler", "Stage 1 sampler", model=out(n["ckpt"]), seed=1, steps=40, cfg=7.5,
                     sampler_name="ddim", scheduler="ddim_uniform", positive=out(n["cn1"], 0),
                     negative=out(n["cn1"], 1), latent_image=out(n["empty"]), denoise=1.0)
    n["dec1"] = g.add("VAEDecode", "Stage 1 picture", samples=out(n["ks1"]), vae=out(n["ckpt"], 2))
    return n


def verify(g: Graph, image: list, code: list) -> str:
    return g.add("AQR_Verify", "Verify", image=image, qr_code=code, decoders="zxing + wechat", suite=True,
                 min_ssr=0.9, raise_on_failure=False, expected_text="")


def diffqrcoder_sd15() -> tuple[dict, list]:
    g = Graph()
    n = sd15_stage1(g)
    g.add("SaveImage", "Save stage 1", images=out(n["dec1"]), filename_prefix="aqr_diffqrcoder_stage1")
    shuffle = g.add("AQR_Reshuffle", "Reshuffle to stage 1", image=out(n["dec1"]), ecl="from code", mask_search=True,
                    extra_versions=0, priority="qart", dither=False, url_fragment=False, seed=0, style="plain",
                    qr_code=out(n["code"], 2), text="")
    g.add("PreviewImage", "Reshuffled blueprint", images=out(shuffle, 1))
    cn2 = g.add("ControlNetApplyAdvanced", "QR ControlNet (stage 2, reshuffled code)", positive=out(n["pos"]),
                negative=out(n["neg"]), control_net=out(n["cnl"]), image=out(shuffle, 1), strength=1.35,
                start_percent=0.0, end_percent=1.0)
    guide = g.add("AQR_ScanGuidance", "Scan guidance (SRPG)", model=out(n["ckpt"]), vae=out(n["ckpt"], 2),
                  qr_code=out(shuffle, 0), mode="xt", code_scale=500.0, perceptual_scale=2.0, start_percent=0.0,
                  end_percent=1.0, ecc_gate=True, srl_variant="paper_margin", function_weight=1.0,
                  decoder_precision="auto", gradient_checkpointing="auto", reference=out(n["dec1"]),
                  face_code_weight=0.25, vgg_model="none")
    enc = g.add("VAEEncode", "Encode stage 1", pixels=out(n["dec1"]), vae=out(n["ckpt"], 2))
    ks2 = g.add("KSampler", "Stage 2 sampler (guided)", model=out(guide, 0), seed=1, steps=40, cfg=7.5,
                sampler_name="ddim", scheduler="ddim_uniform", positive=out(cn2, 0), negative=out(cn2, 1),
                latent_image=out(enc), denoise=1.0)
    report = g.add("AQR_GuidanceReport", "Guidance report", guidance_log=out(guide, 1), samples=out(ks2))
    refine = g.add("AQR_LatentRefine", "Latent refine (SR-MPGD)", samples=out(report), vae=out(n["ckpt"], 2),
                   qr_code=out(shuffle, 0), method="sr_mpgd", iterations=0, step=0.0, fidelity_weight=-1.0,
                   check_every=10, srl_variant="paper_margin", margin=1, marker_lambda=0.8, vgg_model="none")
    verify(g, out(refine, 1), out(shuffle, 0))
    g.add("SaveImage", "Save", images=out(refine, 1), filename_prefix="aqr_diffqrcoder")
    note = f"""DiffQRCoder (Liao et al., WACV 2025) on Stable Diffusion 1.5: two-stage QR ControlNet generation with scanning-robust perceptual guidance (SRPG), then SR-MPGD refinement. Needs a GPU.

Node packs: aesthetic-qr (this pack; ComfyUI >= 0.3.68) and ComfyUI core. No third-party pack.

Models (download, put them here, pick them in the loaders):
- ComfyUI/models/checkpoints/{SD15_CKPT}: the paper's base, Cetus-Mix Whalefall (Hugging Face fp16-guy/Cetus-Mix_Whalefall_fp16_cleaned, the default of the paper's released code; also Civitai model 6755). Any SD1.5 checkpoint works.
- ComfyUI/models/controlnet/{SD15_QR_CN}: QR Code Monster v2 (Hugging Face monster-labs/control_v1p_sd15_qrcode_monster, file v2/{SD15_QR_CN}).
- VAE: the checkpoint's own. If colours look washed out, add a Load VAE node with vae-ft-mse-840000-ema-pruned.safetensors (stabilityai/sd-vae-ft-mse-original) in ComfyUI/models/vae and wire it to every VAE input.
- Optional: torchvision's vgg16-397923af.pth in ComfyUI/models/vgg/, picked in Scan guidance's and Latent refine's vgg_model, for the paper's VGG16 perceptual term (none uses SSIM + L2).

The paper's settings: Code = version 3, level M, mask 4, 20 px modules, 4-module (80 px) border, payload "Thanks reviewer!" (740 px, widened to 744 for the 8-pixel latent grid). Stage 1: text to image with QR Code Monster at 1.35, 40 DDIM steps, CFG 7.5, seed 1, on a latent of the code's size (Get Image Size feeds Empty Latent, so the latent always matches the code). Reshuffle re-chooses the code's free modules to follow the stage-1 picture (QArt; same payload). Stage 2: the stage-1 picture is VAE-encoded, noised and denoised again with the ControlNet on the reshuffled code and Scan guidance in xt mode (the paper's SRPG: the gradient of 500 x scanning-robust loss + 2 x perceptual distance to the stage-1 picture, through UNet, ControlNet and VAE decoder; steps whose predicted picture already reads within every error-correction block's capacity are skipped, the paper's Appendix C). Guidance report prints which steps were guided. Latent refine (SR-MPGD, the paper's optional post-processing) stops at its first check that passes, so it only works as long as it is needed. QR Verify scans with zxing-cpp and WeChat through the simulated-camera suite. Save Image writes stage 1 and the result.

Stage-2 denoise 1.0 is a public reproduction's choice: the paper does not say how far the stage-1 latent is noised. At 1.0 the stage-1 latent only tints the start; lower it (0.6-0.8) to keep more of stage 1.
Negative prompt: the released code passes the literal text "easynegative" (an A1111 embedding); a plain negative prompt stands in here.
Mode x0 (decoder-only gradient) is the cheaper alternative to xt on small GPUs.

VRAM and time: not measured (no GPU where this was written). The paper reports 14-18 s per image on an RTX 4090 for 40 + 40 steps; a public reproduction of the paper's code measured about 18 GB peak.
Tested: this graph runs end to end in real ComfyUI on the CPU with a random tiny SD1.5-architecture checkpoint (the pictures are noise); it has not yet run on real weights."""
    return g.prompt, [("Read me: DiffQRCoder, models and node packs", note)]


def qrmonster_baseline_sd15() -> tuple[dict, list]:
    g = Graph()
    n = sd15_stage1(g)
    verify(g, out(n["dec1"]), out(n["code"], 2))
    g.add("SaveImage", "Save", images=out(n["dec1"]), filename_prefix="aqr_qrmonster_baseline")
    note = f"""QR Code Monster baseline on Stable Diffusion 1.5: plain ControlNet text to image, then verified. This is DiffQRCoder's stage 1 alone, the comparison the paper makes ("ControlNet alone"). Needs a GPU.

Node packs: aesthetic-qr (this pack; ComfyUI >= 0.3.68) and ComfyUI core. No third-party pack.

Models (download, put them here, pick them in the loaders):
- ComfyUI/models/checkpoints/{SD15_CKPT}: Cetus-Mix Whalefall, the DiffQRCoder paper's base (Hugging Face fp16-guy/Cetus-Mix_Whalefall_fp16_cleaned; also Civitai model 6755). Any SD1.5 checkpoint works.
- ComfyUI/models/controlnet/{SD15_QR_CN}: QR Code Monster v2 (Hugging Face monster-labs/control_v1p_sd15_qrcode_monster, file v2/{SD15_QR_CN}).
- VAE: the checkpoint's own (or vae-ft-mse-840000-ema-pruned.safetensors in ComfyUI/models/vae through a Load VAE node).

Settings as in diffqrcoder_sd15: version 3-M, mask 4, 20 px modules, 80 px border, "Thanks reviewer!"; QR Code Monster at 1.35; 40 DDIM steps, CFG 7.5, seed 1; the latent takes the code's size. QR Verify reports whether the picture scans with zxing-cpp and WeChat through the simulated-camera suite (the paper measured 60 % for ControlNet alone against 99 % for DiffQRCoder). Raise the ControlNet strength for codes that scan, lower it for prettier ones.

VRAM and time: not measured (no GPU where this was written); one SD1.5 ControlNet generation at 744 px.
Tested: this graph runs end to end in real ComfyUI on the CPU with a random tiny SD1.5-architecture checkpoint (the pictures are noise); it has not yet run on real weights."""
    return g.prompt, [("Read me: QR Code Monster baseline, models and node packs", note)]


def face2qr_sdxl() -> tuple[dict, list]:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", "Checkpoint (SDXL)", ckpt_name=SDXL_CKPT)
    pos = g.add("CLIPTextEncode", "Positive prompt", text=FACE2QR_PROMPT, clip=out(ckpt, 1))
    neg = g.add("CLIPTextEncode", "Negative prompt", text=SDXL_NEGATIVE, clip=out(ckpt, 1))
    face = g.add("LoadImage", "Face photo", image="astronaut.jpg")
    iid = g.add("InstantIDModelLoader", "InstantID model", instantid_file=INSTANTID)
    analysis = g.add("InstantIDFaceAnalysis", "InstantID face analysis (antelopev2)", provider="CPU")
    iid_cn = g.add("ControlNetLoader", "InstantID ControlNet", control_net_name=INSTANTID_CN)
    apply = g.add("ApplyInstantID", "Apply InstantID", instantid=out(iid), insightface=out(analysis),
                  control_net=out(iid_cn), image=out(face), model=out(ckpt), positive=out(pos), negative=out(neg),
                  weight=0.8, start_at=0.0, end_at=1.0)
    code = g.add("AQR_Encode", "Code", **FACE2QR_CODE)
    qr_cn = g.add("ControlNetLoader", "QR Code Monster (SDXL)", control_net_name=SDXL_QR_CN)
    cn1 = g.add("ControlNetApplyAdvanced", "QR ControlNet (stage 1)", positive=out(apply, 1), negative=out(apply, 2),
                control_net=out(qr_cn), image=out(code), strength=1.4, start_percent=0.0, end_percent=1.0)
    size = g.add("GetImageSize", "Code size", image=out(code))
    empty = g.add("EmptyLatentImage", "Latent (code size)", width=out(size, 0), height=out(size, 1), batch_size=1)
    sampler = dict(seed=1, steps=30, cfg=4.5, sampler_name="dpmpp_2m", scheduler="karras")
    ks1 = g.add("KSampler", "Stage 1 sampler (IDQR)", model=out(apply), **sampler, positive=out(cn1, 0),
                negative=out(cn1, 1), latent_image=out(empty), denoise=1.0)
    dec1 = g.add("VAEDecode", "Stage 1 picture", samples=out(ks1), vae=out(ckpt, 2))
    g.add("SaveImage", "Save stage 1", images=out(dec1), filename_prefix="aqr_face2qr_stage1")
    mask = g.add("AQR_FaceMask", "Face mask", image=out(dec1), detector="auto", provider="CPU", shape="ellipse",
                 faces="largest", grow=0.0, feather=0.05, unit="face heights", hair_margin=0.0, neck_margin=0.0,
                 module_threshold=1.0, require_face=False, face_analysis=out(analysis), qr_code=out(code, 2))
    shuffle = g.add("AQR_Reshuffle", "Reshuffle, face fixed (IDRS)", image=out(dec1), ecl="from code",
                    mask_search=True, extra_versions=0, priority="qart", dither=False, url_fragment=False, seed=0,
                    style="plain", qr_code=out(code, 2), text="", fixed_mask=out(mask, 1))
    half = g.add("AQR_HalftoneBlueprint", "Halftone blueprint (IDRS)", qr_code=out(shuffle, 0), image=out(dec1),
                 core_ratio=0.333, tau_black=0.3, tau_white=0.7, keep_mask=out(mask, 0))
    g.add("PreviewImage", "Halftone blueprint preview", images=out(half))
    cn2 = g.add("ControlNetApplyAdvanced", "QR ControlNet (stage 2, halftone)", positive=out(apply, 1),
                negative=out(apply, 2), control_net=out(qr_cn), image=out(half), strength=1.4, start_percent=0.0,
                end_percent=1.0)
    enc = g.add("VAEEncode", "Encode stage 1", pixels=out(dec1), vae=out(ckpt, 2))
    ks2 = g.add("KSampler", "Stage 2 sampler", model=out(apply), **sampler, positive=out(cn2, 0),
                negative=out(cn2, 1), latent_image=out(enc), denoise=0.7)
    refine = g.add("AQR_LatentRefine", "Latent refine (IDSE)", samples=out(ks2), vae=out(ckpt, 2),
                   qr_code=out(shuffle, 0), method="idse", iterations=0, step=0.0, fidelity_weight=-1.0,
                   check_every=10, srl_variant="paper_margin", margin=1, marker_lambda=0.8, blueprint=out(half),
                   face_mask=out(mask, 0), vgg_model="none")
    verify(g, out(refine, 1), out(shuffle, 0))
    g.add("SaveImage", "Save", images=out(refine, 1), filename_prefix="aqr_face2qr")
    note = f"""Face2QR (NeurIPS 2024) on SDXL with InstantID: IDQR (stage 1) -> face mask -> IDRS (reshuffle with the face fixed, adaptive halftone blueprint) -> stage 2 -> IDSE (latent refinement) -> verify. Needs a GPU.

Node packs: aesthetic-qr (this pack; ComfyUI >= 0.3.68), ComfyUI core, and ComfyUI_InstantID (https://github.com/cubiq/ComfyUI_InstantID, with its insightface and onnxruntime requirements) for Load InstantID Model, InstantID Face Analysis and Apply InstantID.

Models (download, put them here, pick them in the loaders):
- ComfyUI/models/checkpoints/{SDXL_CKPT}: SDXL base (Hugging Face stabilityai/stable-diffusion-xl-base-1.0). Any SDXL checkpoint works; the paper used the community checkpoint "SDXL Unstable Diffusers YamerMIX" (Civitai), and InstantID's author recommends community checkpoints.
- ComfyUI/models/instantid/{INSTANTID}: InstantID (Hugging Face InstantX/InstantID, file ip-adapter.bin).
- ComfyUI/models/controlnet/{INSTANTID_CN}: InstantID's ControlNet (Hugging Face InstantX/InstantID, file ControlNetModel/diffusion_pytorch_model.safetensors, saved under this name).
- ComfyUI/models/controlnet/{SDXL_QR_CN}: QR Code Monster for SDXL (Hugging Face monster-labs/control_v1p_sdxl_qrcode_monster, file diffusion_pytorch_model.safetensors, saved under this name).
- ComfyUI/models/insightface/models/antelopev2/: the five antelopev2 files 1k3d68.onnx, 2d106det.onnx, genderage.onnx, glintr100.onnx, scrfd_10g_bnkps.onnx (not buffalo_l; if unzipping made antelopev2/antelopev2/, flatten it). InstantID Face Analysis loads them; QR Face Mask uses that analysis.
- VAE: the checkpoint's own.
- Optional: torchvision's vgg19-dcbb9e9d.pth in ComfyUI/models/vgg/, picked in Latent refine's vgg_model, for the paper's VGG-19 content loss (none uses SSIM + L2).

Face photo: Load Image expects astronaut.jpg, which ships in this pack's assets/ folder (`aesthetic-qr run-workflow face2qr_sdxl` uploads it); use any photo with one clear face.

Pipeline, with the paper's settings where it gives them: Code = version 5 (37 x 37 modules), level M, 23 px modules and a 4-module border: 1040 px, about the paper's 1024 and a multiple of 8. IDQR: InstantID at 0.8 and the SDXL QR ControlNet at 1.4 on the code, text to image on a latent of the code's size. Face mask: InstantID's antelopev2 analysis on the stage-1 picture; module_threshold 1.0 is the paper's rule (a module belongs to the face only when the face covers all of it). IDRS: Reshuffle keeps the face modules as the picture has them and re-chooses the other free modules to follow it; the halftone blueprint polarises the picture and sets each module's centre to the code, leaving the face as picture. Stage 2: the same InstantID and QR ControlNet (1.4) on the halftone blueprint. IDSE: Latent refine, method idse (marker harmonisation 0.8, adaptive code loss gentle on the face, Adam lr 0.002, up to 300 iterations), stops at its first check that passes. QR Verify scans with zxing-cpp and WeChat through the simulated-camera suite.

Stage-2 denoise 0.7 (our choice): the paper regenerates stage 2 from the same noise as stage 1 (its Eq. 5) and gives no strength. Starting from the VAE-encoded stage-1 picture with the first 30 % of the schedule skipped keeps stage 1's composition, colours and face while leaving enough noise for the QR ControlNet to redraw the halftone blueprint's module centres. Lower keeps more of stage 1 and moves fewer modules; 1.0 with the same seed is the paper's regeneration.
Sampler settings (30 steps, CFG 4.5, dpmpp_2m / karras, seed 1) are not given in the paper; InstantID needs a low CFG (4-5). The prompt is the paper's Figure 1 prompt (its Table 15).

Tested: this graph runs end to end in real ComfyUI on the CPU with ComfyUI_InstantID loaded, on random SDXL-family models (the pictures are noise); it has not yet run on real weights or a GPU, so VRAM and time are not measured (the paper reports about 120 s for IDSE at 1024 px on an RTX 4090)."""
    return g.prompt, [("Read me: Face2QR, models and node packs", note)]


ART_TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"


def art_cpu() -> tuple[dict, list]:
    g = Graph()
    picture = g.add("LoadImage", "Picture", image="astronaut.jpg")
    art = g.add("AQR_Art", "Art", image=out(picture), text=ART_TEXT, error_correction="M, Q, H", robustness=0,
                budget=True, code_scale=1.0, camera_ssr=0.95, max_seconds=0.0)
    g.add("AQR_Verify", "Verify", image=out(art), qr_code=out(art, 1), decoders="zxing + wechat", suite=True,
          min_ssr=0.95, raise_on_failure=False, expected_text="")
    g.add("SaveImage", "Save", images=out(art), filename_prefix="aqr_art")
    note = """Art on the CPU: the picture in, the same picture out with a code drawn in that keeps as much of it as verified robustness allows.

Node packs: aesthetic-qr (this pack; ComfyUI >= 0.3.68) and ComfyUI core (Load Image, Save Image). Nothing else.
Models: none. Runs on any CPU, no GPU and no downloads.

Picture: Load Image expects astronaut.jpg, which ships in this pack's assets/ folder. `aesthetic-qr run-workflow art_cpu` uploads it for you; in the browser, upload it (ComfyUI/custom_nodes/aesthetic-qr/assets/astronaut.jpg) or any picture of your own into Load Image.

Change the payload in the Art node (text). Art tries levels M, Q and H; for each it reshuffles the code's free modules to follow the picture (ARTUP), then leaves, in every Reed-Solomon block, the codewords that would cost the picture most exactly as the picture (the error correction absorbs them, a spare is kept for the camera), and raises every other module's modelled probability of a correct read with the hue kept. Each result is verified with both decoders through the 58-view camera suite; the least robust level that passes is kept. That result is then polished (polish_iterations): the forced modules get back the picture's texture where a scanner's blurred sample of them does not see it, and it is verified again and kept only if it still passes. The code sits inside the picture at its own size: every pixel outside the code and its thin light strip is the picture's. QR Verify re-checks it; Save Image writes it.

Time: about 3 s on a shared 2-core CPU."""
    return g.prompt, [("Read me: Art, models and node packs", note)]


def invisible_qr_cpu() -> tuple[dict, list]:
    g = Graph()
    picture = g.add("LoadImage", "Picture", image="astronaut.jpg")
    code = g.add("AQR_Encode", "Code", text=ART_TEXT, version=0, ecl="M", mask="auto", module_px=10, border=4,
                 style="plain", size_multiple="none")
    hidden = g.add("AQR_HideCode", "Hide", image=out(picture), text="", qr_code=out(code, 2), psnr=38.0,
                   weights="shipped")
    g.add("SaveImage", "Save hidden picture", images=out(hidden), filename_prefix="aqr_invisible")
    revealed = g.add("AQR_RevealCode", "Reveal", image=out(hidden), weights="shipped", expect="")
    g.add("AQR_Verify", "Verify", image=out(revealed), qr_code=out(hidden, 2), decoders="zxing + wechat",
          suite=False, min_ssr=0.9, raise_on_failure=False, expected_text="")
    g.add("SaveImage", "Save revealed code", images=out(revealed), filename_prefix="aqr_invisible_revealed")
    note = """Invisible QR on the CPU: a code hidden in the picture by a trained network, invisible to the eye and to a phone, and read back by the same network.

Node packs: aesthetic-qr (this pack; ComfyUI >= 0.3.68) and ComfyUI core (Load Image, Save Image). Nothing else.
Models: the network's weights ship with the pack (invisible/weights/carrier.safetensors: 'shipped' in the weights combos). Weights of your own (a .safetensors file written by scripts/train_invisible.py) go in ComfyUI/models/aesthetic_qr/; pick the same file in Hide and in Reveal. Runs on any CPU, no GPU and no downloads.

Picture: Load Image expects astronaut.jpg, which ships in this pack's assets/ folder. `aesthetic-qr run-workflow invisible_qr_cpu` uploads it for you; in the browser, upload it (ComfyUI/custom_nodes/aesthetic-qr/assets/astronaut.jpg) or any picture of your own into Load Image.

Change the payload in QR Encode (text). QR Hide Code centres the code with its 4-module quiet zone over the whole picture, as large as fits, and adds a faint residual that carries it, at PSNR 38 dB to the picture (its preview shows the residual x10). Lower the PSNR for a code that survives more (32 survives JPEG 75, blur sigma 1 and half size), raise it for one still less visible. 'Save hidden picture' writes the picture with the code in it, at its own size. QR Reveal Code restores the code's image from the picture (black modules on white) and decodes it; QR Verify reads that image with both decoders and module by module against the code as Hide placed it (its qr_code output); 'Save revealed code' writes the restored code.

Time: about 2 s on a shared 2-core CPU (at 512²: hiding 0.6 s, revealing 0.3 s)."""
    return g.prompt, [("Read me: Invisible QR, models and node packs", note)]


def until_scans(workflow, policy: str):
    """`workflow` with its last sampler (the one whose picture is verified) replaced by AQR_ScanSampler: the same
    model, conditioning, latent and settings, verified after sampling and tried again with `policy` (4 attempts)
    until an attempt verifies; everything downstream (refinement, verification, saving) is kept."""

    def variant() -> tuple[dict, list]:
        prompt, notes = workflow()
        sampler_id = [k for k, e in prompt.items() if e["class_type"] == "KSampler"][-1]
        ks = prompt[sampler_id]
        vae = next(e["inputs"]["vae"] for e in prompt.values() if e["class_type"] == "VAEDecode")
        code = next(e["inputs"]["qr_code"] for e in prompt.values() if e["class_type"] == "AQR_Verify")
        prompt[sampler_id] = {
            "class_type": "AQR_ScanSampler", "_meta": {"title": ks["_meta"]["title"] + ", until it scans"},
            "inputs": {**ks["inputs"], "vae": vae, "qr_code": code, "attempts": 4, "policy": policy,
                       "guidance_scale": 500.0, "decoders": "zxing + wechat", "suite": False, "min_ssr": 0.95,
                       "margin": 1, "refine_iterations": 100}}
        title, text = notes[0]
        text += (f"\n\nThis variant ends in the generate-until-it-scans loop: '{ks['_meta']['title']}' is an "
                 f"AQR_ScanSampler with the same settings that decodes and verifies what it sampled and, on failure, "
                 f"tries again with the policy '{policy}' (at most 4 attempts); its report says what each attempt "
                 f"changed and whether it verified. Everything after it is as in {workflow.__name__}.")
        return prompt, [(title.replace("Read me: ", "Read me (until it scans): "), text)]

    variant.__name__ = f"{workflow.__name__}_until_scans"
    return variant


WORKFLOWS = {"diffqrcoder_sd15": diffqrcoder_sd15, "qrmonster_baseline_sd15": qrmonster_baseline_sd15,
             "face2qr_sdxl": face2qr_sdxl, "art_cpu": art_cpu, "invisible_qr_cpu": invisible_qr_cpu,
             # guidance is already in the model (SRPG), so the loop only moves on to the next seed
             "diffqrcoder_sd15_until_scans": until_scans(diffqrcoder_sd15, "seeds"),
             "face2qr_sdxl_until_scans": until_scans(face2qr_sdxl, "seeds, guidance, then refine")}


# ---- thumbnails: the code the ControlNet sees and the pipeline, labelled as such ---------------------------------

STAGES = {
    "diffqrcoder_sd15": ["Code v3-M, 20 px modules (shown)", "Stage 1: QR Monster v2 x1.35, 40 DDIM steps",
                         "Reshuffle the code to stage 1", "Stage 2: ControlNet on the reshuffled code",
                         "   + Scan guidance (SRPG, xt)", "Latent refine (SR-MPGD)", "Verify, Save"],
    "qrmonster_baseline_sd15": ["Code v3-M, 20 px modules (shown)", "QR Monster v2 x1.35, 40 DDIM steps",
                                "Verify, Save"],
    "face2qr_sdxl": ["Face photo + code v5-M (shown)", "IDQR: SDXL + InstantID 0.8 + QR x1.4", "Face mask",
                     "IDRS: reshuffle, face fixed", "   -> adaptive halftone blueprint", "Stage 2 (denoise 0.7)",
                     "IDSE latent refine", "Verify, Save"],
}
STAGES["diffqrcoder_sd15_until_scans"] = [s.replace("Stage 2: ControlNet", "Stage 2, until it scans: ControlNet")
                                          for s in STAGES["diffqrcoder_sd15"]]
STAGES["face2qr_sdxl_until_scans"] = [s.replace("Stage 2 (denoise 0.7)", "Stage 2 until it scans (4 attempts)")
                                      for s in STAGES["face2qr_sdxl"]]
TITLES = {"diffqrcoder_sd15": "DiffQRCoder (SD1.5)", "qrmonster_baseline_sd15": "QR Monster baseline (SD1.5)",
          "face2qr_sdxl": "Face2QR (SDXL + InstantID)",
          "diffqrcoder_sd15_until_scans": "DiffQRCoder (SD1.5), until it scans",
          "face2qr_sdxl_until_scans": "Face2QR (SDXL + InstantID), until it scans"}


def blueprint(settings: dict, side: int) -> Image.Image:
    """The workflow's code, drawn with whole-pixel modules at most ``side`` pixels wide (so it scans)."""
    mask = None if settings["mask"] == "auto" else int(settings["mask"])
    qr = encode(settings["text"], version=settings["version"], ecl=settings["ecl"], mask=mask)
    module_px = side // (qr.size + 2 * settings["border"])
    img, _ = render(qr, module_px, settings["border"], settings["style"])
    return Image.fromarray((img * 255).round().astype(np.uint8))


def invisible_thumbnail() -> Image.Image:
    """The workflow's real outputs side by side (hidden picture, residual x10, revealed code) with the shipped
    weights; a labelled sketch while they are not there yet."""
    from aesthetic_qr.invisible.hide import hide, reveal
    from aesthetic_qr.invisible.weights import SHIPPED
    from aesthetic_qr.qr.pixels import load_picture
    from aesthetic_qr.qr.render import picture_geometry

    picture = load_picture(ROOT / "assets" / "astronaut.jpg")
    canvas = Image.new("RGB", (1024, 400), (246, 244, 240))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=22)
    if not SHIPPED.is_file():
        canvas.paste(Image.fromarray(picture).resize((320, 320), Image.LANCZOS), (32, 56))
        draw.text((32, 16), "Invisible QR: hide a code in the picture, reveal it", fill=(30, 30, 30), font=font)
        for i, line in enumerate(["A sketch, not the workflow's output:", f"{SHIPPED.name} was not there yet;",
                                  "rerun scripts/author_workflows.py invisible_qr_cpu"]):
            draw.text((384, 80 + 40 * i), line, fill=(150, 40, 40), font=font)
        return canvas
    qr = encode(ART_TEXT, ecl="M")
    qr = qr.with_geometry(picture_geometry(qr.size, 4, picture.shape[:2]))
    hidden = hide(picture, qr)
    residual = np.clip(0.5 + 10 * hidden.residual, 0, 1)
    panels = {f"hidden (PSNR {hidden.psnr:.1f} dB)": hidden.image, "residual x10": residual,
              "revealed": reveal(hidden.image).code_image}
    for i, (caption, image) in enumerate(panels.items()):
        panel = Image.fromarray(image if image.dtype == np.uint8 else (image * 255).round().astype(np.uint8))
        canvas.paste(panel.convert("RGB").resize((320, 320), Image.LANCZOS), (16 + i * 336, 16))
        draw.text((16 + i * 336, 348), caption, fill=(30, 30, 30), font=font)
    return canvas


def thumbnail(name: str) -> Image.Image:
    if name == "art_cpu":  # the workflow's real output: what its Art node computes on the bundled picture
        from aesthetic_qr.art.fidelity import ArtConfig, art
        from aesthetic_qr.qr.pixels import load_picture

        return Image.fromarray(art(load_picture(ROOT / "assets" / "astronaut.jpg"), ART_TEXT, ArtConfig()).image)
    if name == "invisible_qr_cpu":
        return invisible_thumbnail()
    canvas = Image.new("RGB", (1024, 576), (246, 244, 240))
    draw = ImageDraw.Draw(canvas)
    x = 32
    if name.startswith("face2qr_sdxl"):
        face = Image.open(ROOT / "assets" / "astronaut.jpg").convert("RGB").resize((216, 216), Image.LANCZOS)
        canvas.paste(face, (x, 68))
        canvas.paste(blueprint(FACE2QR_CODE, 216), (x, 68 + 216 + 16))
        x += 250
    else:
        canvas.paste(blueprint(DIFFQR_CODE, 440), (x, 68))
        x += 470
    big, small = ImageFont.load_default(size=34), ImageFont.load_default(size=22)
    draw.text((32, 16), TITLES[name], fill=(30, 30, 30), font=big)
    y, number = 80, 0
    for stage in STAGES[name]:
        if not stage.startswith(" "):
            number += 1
            stage = f"{number}. {stage}"
        draw.text((x, y), stage, fill=(40, 40, 40), font=small)
        y += 40
    draw.text((32, 530), "Workflow sketch and its input code - not a generated picture (not run on a GPU yet)",
              fill=(150, 40, 40), font=small)
    return canvas


# Outputs that ComfyUI 0.33 added to core nodes (0.3.75 had none): SaveImage and PreviewImage pass their images on.
# The frontend (1.32.9 with 0.3.75 as 1.49.6 with 0.33) reconciles a loaded node's outputs with its definition by
# position: the definition's name and type win, an output it adds is created, a saved one it lacks is kept as
# saved; saving writes the node's outputs. So a workflow saved by the newest frontend carries these outputs, and
# ComfyUI 0.3.75 loads it too (the extra output stays unconnected).
NEWEST_OUTPUTS = {"SaveImage": {"output": ["IMAGE"], "output_name": ["images"], "output_is_list": [False]},
                  "PreviewImage": {"output": ["IMAGE"], "output_name": ["images"], "output_is_list": [False]}}


def newest_definitions(object_info: dict) -> dict:
    """``object_info`` with ``NEWEST_OUTPUTS`` where the server's definition has no outputs (ComfyUI 0.3.75)."""
    out = dict(object_info)
    for node_type, outputs in NEWEST_OUTPUTS.items():
        if node_type in out and not out[node_type].get("output"):
            out[node_type] = {**out[node_type], **outputs}
    return out


def build(name: str, object_info: dict) -> dict:
    """The UI workflow ``workflows/NAME.json`` (ids, note and layout included) for these node definitions, the
    same for ComfyUI 0.3.75's and 0.33's (``newest_definitions``)."""
    prompt, notes = WORKFLOWS[name]()
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"aesthetic-qr/workflows/{name}")), "revision": 0,
            **api_to_ui(prompt, newest_definitions(object_info), notes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"workflows to write (default: all of {', '.join(WORKFLOWS)})")
    parser.add_argument("--server", help="URL of a running ComfyUI with this pack")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(WORKFLOWS)
    if unknown:
        parser.error(f"unknown workflow(s) {', '.join(sorted(unknown))}; choose from {', '.join(WORKFLOWS)}")
    object_info = {**recorded_definitions(RECORDED), **fetch_object_info(args.server)}
    failed = False
    for name in args.names or WORKFLOWS:
        workflow = build(name, object_info)
        report = validate(workflow, object_info)
        if not report.ok:
            failed = True
            print(f"{name}: INVALID, nothing written\n  " + "\n  ".join(report.errors))
            continue
        (ROOT / "workflows" / f"{name}.json").write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n")
        (ROOT / "workflows" / "api" / f"{name}.json").write_text(
            json.dumps(ui_to_api(workflow, object_info), indent=2, ensure_ascii=False) + "\n")
        thumbnail(name).save(ROOT / "workflows" / f"{name}.jpg", quality=88)
        print(f"{name}: wrote workflows/{name}.json, its API twin and thumbnail"
              + "".join(f"\n  needs file {line}" for line in report.missing_files))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
