"""AQR_ScanGuidance, AQR_GuidanceReport and AQR_LatentRefine inside real ComfyUI graphs with core's loaders,
ControlNet and KSampler, on a randomly initialised SD1.5-architecture checkpoint and ControlNet (tests/tiny_sd.py).

The pictures are noise; what is checked is behaviour: a guided run ends with a lower scanning-robust loss than
the unguided run with the same seed, the guidance ran exactly inside its window, ``xt`` mode back-propagates
through the UNet and ControlNet, refinement lowers its loss, and an interrupt stops a refinement promptly. On the
same checkpoint with a hand-set decoder (`tiny_sd.build_readable`), the scan sampler's guided attempt reads and
the loop stops there."""

import io
import threading
import time
import uuid

import numpy as np
import pytest
import tiny_sd
import torch
from PIL import Image

from aesthetic_qr.losses.srl import srl
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.decoders import decode
from aesthetic_qr.tools.headless import with_defaults

pytestmark = pytest.mark.comfyui

TEXT = "AQR guide"
ENCODE = {"text": TEXT, "version": 1, "ecl": "L", "mask": "auto", "module_px": 5, "border": 2,
          "style": "plain", "size_multiple": "8 (SD latent)"}


@pytest.fixture(scope="module")
def object_info(comfyui, tiny_models):
    return comfyui.client.object_info()


@pytest.fixture(scope="module")
def code():
    qr = encode(TEXT, version=1, ecl="L")
    _, geo = render(qr, module_px=5, border=2, multiple=8)
    return qr.with_geometry(geo)


def base_graph(models, code, steps: int = 6) -> dict:
    side = code.geometry.image_size[0]
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": models["checkpoint"]}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a qr code", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "qr": {"class_type": "AQR_Encode", "inputs": dict(ENCODE)},
        "cnl": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": models["controlnet"]}},
        "cn": {"class_type": "ControlNetApplyAdvanced",
               "inputs": {"positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cnl", 0],
                          "image": ["qr", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": side, "height": side, "batch_size": 1}},
    }


def sampler(model, seed: int = 1, steps: int = 6) -> dict:
    return {"class_type": "KSampler",
            "inputs": {"model": model, "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
                       "scheduler": "normal", "positive": ["cn", 0], "negative": ["cn", 1],
                       "latent_image": ["empty", 0], "denoise": 1.0}}


def save(samples, prefix: str) -> tuple[dict, dict]:
    return ({"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": ["ckpt", 2]}},
            {"class_type": "SaveImage", "inputs": {"images": None, "filename_prefix": prefix}})


def add_saved(graph: dict, name: str, samples) -> None:
    decode, saver = save(samples, f"aqr_{name}_{uuid.uuid4().hex[:6]}")
    graph[f"{name}_dec"] = decode
    saver["inputs"]["images"] = [f"{name}_dec", 0]
    graph[f"{name}_save"] = saver


def saved_srl(client, result, node: str, qr) -> float:
    """Mean SRL of the pictures a SaveImage node wrote."""
    values = []
    for ref in result.images(node):
        image = np.asarray(Image.open(io.BytesIO(client.view(ref["filename"], ref["subfolder"], ref["type"]))),
                           dtype=np.float32) / 255.0
        values.append(float(srl(torch.from_numpy(image[..., :3]).permute(2, 0, 1)[None], qr)))
    assert values, f"{node} saved nothing"
    return float(np.mean(values))


def guidance(mode: str, scale: float, end: float = 1.0) -> dict:
    return {"class_type": "AQR_ScanGuidance",
            "inputs": {"model": ["ckpt", 0], "vae": ["ckpt", 2], "qr_code": ["qr", 2], "mode": mode,
                       "code_scale": scale, "perceptual_scale": 0.0, "start_percent": 0.0, "end_percent": end,
                       "ecc_gate": False, "srl_variant": "paper"}}  # the SRL the test measures


def report_text(result, node: str) -> str:
    return "\n".join(result.outputs[node]["text"])


def steps_of(report: str, status: str) -> set[int]:
    for line in report.splitlines():
        if line.strip().startswith(f"{status} at steps"):
            out = set()
            for part in line.split("steps", 1)[1].split(","):
                lo, _, hi = part.strip().partition("–")
                out |= set(range(int(lo), int(hi or lo) + 1))
            return out
    return set()


def test_x0_guidance_lowers_srl_and_runs_inside_its_window(comfyui, object_info, tiny_models, code):
    graph = base_graph(tiny_models, code)
    graph["guide"] = guidance("x0", 100000.0)
    graph["guided"] = sampler(["guide", 0])
    graph["half"] = guidance("x0", 100000.0, end=0.5)
    graph["guided_half"] = sampler(["half", 0])
    graph["plain"] = sampler(["ckpt", 0])
    for name, log, samples in (("report", "guide", "guided"), ("report_half", "half", "guided_half")):
        graph[name] = {"class_type": "AQR_GuidanceReport",
                       "inputs": {"guidance_log": [log, 1], "samples": [samples, 0]}}
    add_saved(graph, "guided", ["report", 0])
    add_saved(graph, "plain", ["plain", 0])
    client = comfyui.client
    result = client.run(with_defaults(object_info, graph), timeout=600)

    full, half = report_text(result, "report"), report_text(result, "report_half")
    assert steps_of(full, "guided") == set(range(6)) and "outside" not in full, full
    guided, outside = steps_of(half, "guided"), steps_of(half, "outside window")
    assert guided and outside and guided | outside == set(range(6)), half
    assert max(guided) < min(outside), half  # a window from the start to the middle of the schedule
    assert "run 1: 6 steps" in full and "run 2" not in full
    guided_srl = saved_srl(client, result, "guided_save", code)
    plain_srl = saved_srl(client, result, "plain_save", code)
    assert guided_srl < 0.7 * plain_srl, (guided_srl, plain_srl, full)


def test_xt_guidance_backpropagates_through_unet_and_controlnet(comfyui, object_info, tiny_models, code):
    graph = base_graph(tiny_models, code)
    graph["empty"]["inputs"]["batch_size"] = 2
    graph["guide"] = guidance("xt", 1000.0)
    graph["guided"] = sampler(["guide", 0], steps=4)
    graph["report"] = {"class_type": "AQR_GuidanceReport",
                       "inputs": {"guidance_log": ["guide", 1], "samples": ["guided", 0]}}
    add_saved(graph, "xt", ["report", 0])
    graph["plain"] = sampler(["ckpt", 0], steps=4)
    add_saved(graph, "xt_plain", ["plain", 0])
    client = comfyui.client
    result = client.run(with_defaults(object_info, graph), timeout=600)
    report = report_text(result, "report")
    assert steps_of(report, "guided") == {0, 1, 2, 3}, report
    assert "x0 fallback" not in report, report  # the gradient came through the model's graph
    rms = report.split("step RMS", 1)[1].split()[0]
    lo, hi = (float(v) for v in rms.split("–"))
    assert 0 < lo <= hi < float("inf"), report
    assert len(result.images("xt_save")) == 2  # a batch of two, guided together
    assert saved_srl(client, result, "xt_save", code) != saved_srl(client, result, "xt_plain_save", code)


def test_xt_is_exact_under_cfg_nodes_and_says_when_it_cannot_be(comfyui, object_info, tiny_models, code):
    """RescaleCFG replaces the CFG formula: xt differentiates the guider's own result (no fallback). CFGNorm is a
    post-CFG function; applied before Scan Guidance it changes x̂0 before our hook sees it, so the graph's x̂0 is
    not the sampler's and those steps fall back to x0, with the reason in the report. APG is a pre-CFG function
    with state: xt does not run it a second time and falls back, saying why."""
    graph = base_graph(tiny_models, code)
    graph["guide"] = guidance("xt", 1001.0)  # scales of their own: no guidance log cached from another test
    graph["rescale"] = {"class_type": "RescaleCFG", "inputs": {"model": ["guide", 0], "multiplier": 0.7}}
    graph["rescaled"] = sampler(["rescale", 0], steps=2)
    graph["rescaled_report"] = {"class_type": "AQR_GuidanceReport",
                                "inputs": {"guidance_log": ["guide", 1], "samples": ["rescaled", 0]}}
    graph["norm"] = {"class_type": "CFGNorm", "inputs": {"model": ["ckpt", 0], "strength": 0.9}}
    graph["guide_after_norm"] = guidance("xt", 1002.0)
    graph["guide_after_norm"]["inputs"]["model"] = ["norm", 0]
    graph["normed"] = sampler(["guide_after_norm", 0], steps=2)
    graph["normed_report"] = {"class_type": "AQR_GuidanceReport",
                              "inputs": {"guidance_log": ["guide_after_norm", 1], "samples": ["normed", 0]}}
    graph["guide_apg"] = guidance("xt", 1003.0)
    graph["apg"] = {"class_type": "APG", "inputs": {"model": ["guide_apg", 0], "eta": 1.0, "norm_threshold": 5.0,
                                                    "momentum": -0.5}}
    graph["apged"] = sampler(["apg", 0], steps=2)
    graph["apg_report"] = {"class_type": "AQR_GuidanceReport",
                           "inputs": {"guidance_log": ["guide_apg", 1], "samples": ["apged", 0]}}
    result = comfyui.client.run(with_defaults(object_info, graph), timeout=600)
    apg = report_text(result, "apg_report")  # APG keeps momentum between calls: never run twice in a step
    assert steps_of(apg, "x0 fallback") == {0, 1} and "pre-CFG functions are set" in apg, apg
    rescaled = report_text(result, "rescaled_report")
    assert steps_of(rescaled, "guided") == {0, 1} and "x0 fallback" not in rescaled, rescaled
    normed = report_text(result, "normed_report")
    assert steps_of(normed, "x0 fallback") == {0, 1}, normed
    assert "a post-CFG node applied before this one changed x̂0" in normed, normed


@pytest.fixture(scope="module")
def half_precision_server(start_comfyui, comfyui, tiny_models):
    """A second server that stores the UNet, ControlNet and VAE weights in fp16 (--fp16-unet --fp16-vae; on CPU
    ComfyUI computes in fp32 from them, as it does for fp16 checkpoints on GPUs without fast fp16), with the same
    tiny model files linked in."""
    server = start_comfyui(extra_args=["--fp16-unet", "--fp16-vae"])
    for folder in ("checkpoints", "controlnet"):
        (server.models_dir / folder).mkdir(parents=True, exist_ok=True)
        for name in tiny_models.values():
            source = comfyui.models_dir / folder / name
            if source.is_file():
                (server.models_dir / folder / name).symlink_to(source)
    return server


def test_guidance_and_refinement_on_fp16_weights(half_precision_server, tiny_models, code):
    """Both modes guide every step through fp16 weights (xt through the model's graph, no fallback), with a finite
    step, and refinement runs through an fp16 VAE."""
    server = half_precision_server
    info = server.client.object_info()
    graph = base_graph(tiny_models, code)
    for mode in ("x0", "xt"):
        graph[f"guide_{mode}"] = guidance(mode, 1000.0)
        graph[f"guided_{mode}"] = sampler([f"guide_{mode}", 0], steps=2)
        graph[f"report_{mode}"] = {"class_type": "AQR_GuidanceReport",
                                   "inputs": {"guidance_log": [f"guide_{mode}", 1], "samples": [f"guided_{mode}", 0]}}
        add_saved(graph, f"half_{mode}", [f"report_{mode}", 0])
    graph["refine"] = {"class_type": "AQR_LatentRefine",
                       "inputs": {"samples": ["guided_x0", 0], "vae": ["ckpt", 2], "qr_code": ["qr", 2],
                                  "method": "sr_mpgd", "iterations": 2, "step": 3e6, "fidelity_weight": 0.0,
                                  "check_every": 1, "margin": 1}}
    add_saved(graph, "half_refined", ["refine", 0])
    result = server.client.run(with_defaults(info, graph), timeout=600)
    log = server.log_text()
    assert "model weight dtype torch.float16" in log and "dtype: torch.float16" in log, log[-2000:]
    for mode in ("x0", "xt"):
        report = report_text(result, f"report_{mode}")
        assert steps_of(report, "guided") == {0, 1} and "x0 fallback" not in report, report
        lo, hi = (float(v) for v in report.split("step RMS", 1)[1].split()[0].split("–"))
        assert 0 < lo <= hi < float("inf"), report
    assert "2 iterations" in report_text(result, "refine"), report_text(result, "refine")


def refine_graph(models, code, iterations: int, step: float, check_every: int, method: str = "sr_mpgd") -> dict:
    graph = base_graph(models, code)
    graph["plain"] = sampler(["ckpt", 0], steps=3)
    graph["refine"] = {"class_type": "AQR_LatentRefine",
                       "inputs": {"samples": ["plain", 0], "vae": ["ckpt", 2], "qr_code": ["qr", 2],
                                  "method": method, "iterations": iterations, "step": step,
                                  "fidelity_weight": 0.0, "check_every": check_every, "margin": 1}}
    add_saved(graph, "refined", ["refine", 0])
    return graph


def test_latent_refine_lowers_its_loss(comfyui, object_info, tiny_models, code):
    client = comfyui.client
    result = client.run(with_defaults(object_info, refine_graph(tiny_models, code, 12, 3e6, 6)), timeout=600)
    report = report_text(result, "refine")
    first, last = (float(v) for v in report.split("loss ", 1)[1].split(";")[0].split(" → "))
    assert last < first, report
    assert "12 iterations" in report or "passed" in report, report


def test_idse_refinement_with_blueprint_and_face_mask(comfyui, object_info, tiny_models, code):
    """Face2QR's stage 3: ComfyUI's VAE decodes, the markers are harmonised, the VAE re-encodes, then Adam runs on
    the adaptive code loss (blueprint target, face modules gentler); a batch of two latents is refined item by
    item. The code's function-pattern MASK stands in for a face mask."""
    graph = refine_graph(tiny_models, code, 4, 0.05, 2, method="idse")
    graph["empty"]["inputs"]["batch_size"] = 2
    graph["refine"]["inputs"].update(blueprint=["qr", 0], face_mask=["qr", 1])
    client = comfyui.client
    result = client.run(with_defaults(object_info, graph), timeout=600)
    report = report_text(result, "refine")
    assert report.count("item ") == 2 and "loss " in report, report
    assert len(result.images("refined_save")) == 2


def test_interrupt_stops_a_refinement_promptly(comfyui, object_info, tiny_models, code):
    client = comfyui.client
    prompt_id = client.queue(with_defaults(object_info, refine_graph(tiny_models, code, 5000, 1e4, 500)))
    started = threading.Event()

    def on_event(event, data):
        if event == "progress" and data.get("node") == "refine":
            started.set()

    box = {}

    def wait():
        box["result"] = client.wait(prompt_id, timeout=600, raise_on_error=False, on_event=on_event)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert started.wait(300), "the refinement never reported progress"
    t0 = time.monotonic()
    client.interrupt(prompt_id)
    waiter.join(120)
    stopped_after = time.monotonic() - t0
    assert "result" in box and box["result"].status == "interrupted", box
    assert stopped_after < 10, stopped_after


def scan_sampler(attempts: int, steps: int = 2, **inputs) -> dict:
    return {"class_type": "AQR_ScanSampler",
            "inputs": {"model": ["ckpt", 0], "positive": ["cn", 0], "negative": ["cn", 1],
                       "latent_image": ["empty", 0], "vae": ["ckpt", 2], "qr_code": ["qr", 2], "seed": 3,
                       "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                       "attempts": attempts, "refine_iterations": 2, "suite": False, **inputs}}


def test_scan_sampler_escalates_and_pick_best_ranks_a_batch(comfyui, object_info, tiny_models, code):
    """Random weights never scan, so every attempt runs: two plain seeds, one with scan guidance, then a refinement
    of the best latent; the report has a line for each. PickBest ranks a batch of two KSampler pictures."""
    graph = base_graph(tiny_models, code)
    graph["loop"] = scan_sampler(attempts=4)
    add_saved(graph, "loop", ["loop", 0])
    graph["batch"] = {"class_type": "EmptyLatentImage",
                      "inputs": {"width": code.geometry.image_size[0], "height": code.geometry.image_size[1],
                                 "batch_size": 2}}
    graph["many"] = {**sampler(["ckpt", 0], steps=2)}
    graph["many"]["inputs"]["latent_image"] = ["batch", 0]
    graph["many_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["many", 0], "vae": ["ckpt", 2]}}
    graph["pick"] = {"class_type": "AQR_PickBest",
                     "inputs": {"image": ["many_dec", 0], "qr_code": ["qr", 2], "suite": False}}
    result = comfyui.client.run(with_defaults(object_info, graph), timeout=600)
    lines = report_text(result, "loop").splitlines()
    assert lines[0].startswith("FAIL after 4 attempts; best: attempt"), lines
    assert [line.split(":")[0] for line in lines[1:]] == [f"attempt {k}" for k in range(1, 5)], lines
    assert "seed 3, first attempt" in lines[1] and "next seed (4)" in lines[2]
    assert "scan guidance 500" in lines[3] and "refined the best latent" in lines[4], lines
    assert len(result.images("loop_save")) == 1
    pick = report_text(result, "pick").splitlines()
    assert pick[0].startswith("best: item ") and len(pick) == 4, pick   # verdict, header, two items


def test_scan_sampler_stops_on_interrupt(comfyui, object_info, tiny_models, code):
    client = comfyui.client
    graph = base_graph(tiny_models, code)
    graph["loop"] = scan_sampler(attempts=64, steps=6, policy="seeds")
    prompt_id = client.queue(with_defaults(object_info, graph))
    started = threading.Event()
    box = {}

    def on_event(event, data):
        if event == "progress" and data.get("node") == "loop" and data.get("value", 0) > 6:
            started.set()                                  # inside the second attempt

    def wait():
        box["result"] = client.wait(prompt_id, timeout=600, raise_on_error=False, on_event=on_event)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert started.wait(300), "the loop never reported progress past its first attempt"
    t0 = time.monotonic()
    client.interrupt(prompt_id)
    waiter.join(120)
    assert "result" in box and box["result"].status == "interrupted", box
    assert time.monotonic() - t0 < 10


@pytest.fixture(scope="module")
def readable_models(comfyui, tiny_models):
    """The tiny checkpoint with `tiny_sd.readable_decoder` (the random UNet's latents decode white, a latent
    pushed below the decoder's threshold black) and the tiny ControlNet."""
    return {k: p.name for k, p in tiny_sd.build_readable(comfyui.comfyui_dir, comfyui.models_dir).items()}


READABLE_PX = 16  # two latent pixels a module: what a real SD latent (1/8 of the picture) can draw


def test_scan_sampler_stops_at_the_first_attempt_that_verifies(comfyui, object_info, readable_models):
    """On the readable decoder plain sampling gives a white picture, which fails; the policy's first guided
    attempt (x0 scan guidance through the decoder) reads, the loop stops there, before the refinement, and says
    PASS. The returned picture reads in zxing-cpp, and PickBest picks it out of a batch with a plain picture.
    A 400² picture costs the tiny UNet ~5.5 s a step on one CPU thread: one step an attempt, and no ControlNet."""
    qr = encode(TEXT, version=1, ecl="L")
    _, geo = render(qr, module_px=READABLE_PX, border=2, multiple=8)
    code = qr.with_geometry(geo)
    graph = base_graph(readable_models, code)
    graph["qr"]["inputs"]["module_px"] = READABLE_PX
    del graph["cnl"], graph["cn"]
    conds = {"positive": ["pos", 0], "negative": ["neg", 0]}
    attempts = 6                                    # seeds 3, 4; guidance 500, 1000, 2000; refinement
    graph["loop"] = scan_sampler(attempts=attempts, steps=1)
    graph["loop"]["inputs"].update(conds)
    graph["loop_save"] = {"class_type": "SaveImage",
                          "inputs": {"images": ["loop", 1], "filename_prefix": f"aqr_loop_{uuid.uuid4().hex[:6]}"}}
    graph["plain"] = sampler(["ckpt", 0], steps=1)
    graph["plain"]["inputs"].update(conds)
    graph["plain_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["plain", 0], "vae": ["ckpt", 2]}}
    graph["two"] = {"class_type": "ImageBatch", "inputs": {"image1": ["plain_dec", 0], "image2": ["loop", 1]}}
    graph["pick"] = {"class_type": "AQR_PickBest",
                     "inputs": {"image": ["two", 0], "qr_code": ["qr", 2], "suite": False}}
    client = comfyui.client
    result = client.run(with_defaults(object_info, graph), timeout=600)

    lines = report_text(result, "loop").splitlines()
    passed_at = len(lines) - 1
    assert 3 <= passed_at < attempts and lines[0] == f"PASS at attempt {passed_at}", lines
    assert [line.split(":")[0] for line in lines[1:]] == [f"attempt {k}" for k in range(1, passed_at + 1)], lines
    assert all(": FAIL (" in line for line in lines[1:-1]) and "first attempt: FAIL" in lines[1], lines
    assert "scan guidance" in lines[-1] and ": PASS (zxing read, wechat read" in lines[-1], lines
    (ref,) = result.images("loop_save")
    image = np.asarray(Image.open(io.BytesIO(client.view(ref["filename"], ref["subfolder"], ref["type"]))))
    assert decode(image[..., :3], ("zxing",), expected=TEXT)["zxing"].match, lines
    pick = report_text(result, "pick").splitlines()
    assert pick[0] == "best: item 1 (PASS)" and len(pick) == 4, pick   # verdict, header, two items
    assert [row.split()[1] for row in pick[2:]] == ["fail", "PASS"], pick
