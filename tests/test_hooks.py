"""diffusion.hooks under a fake sampler host: the hooks register under the host's keys, guide only inside their
window, call the host's interrupt check, log what they did, and need no ComfyUI."""

from types import SimpleNamespace

import torch
from test_guidance import inference_model

from aesthetic_qr.diffusion.guidance import GuidanceConfig, ScanObjective
from aesthetic_qr.diffusion.hooks import HOOK_KEY, GuidanceLog, SamplerHost, install_guidance
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render


class FakePatcher:
    """The ModelPatcher calls the hooks use: clone, the post-CFG function and keyed wrappers."""

    def __init__(self):
        self.post_cfg, self.wrappers = None, {}

    def clone(self):
        return FakePatcher()

    def set_model_sampler_post_cfg_function(self, fn):
        self.post_cfg = fn

    def add_wrapper_with_key(self, kind, key, fn):
        self.wrappers[(kind, key)] = fn


class Executor(SimpleNamespace):
    """A wrapper's executor: callable, with the guider as `class_obj`."""

    def __call__(self, *args, **kwargs):
        return "sampled"


BASE_MODEL = SimpleNamespace(model_sampling=SimpleNamespace(percent_to_sigma=lambda p: 10.0 * (1 - p)),
                             process_latent_out=lambda z: z)


def guided(mode: str, interrupts: list):
    qr = encode("hooks", version=1, ecl="L")
    _, geo = render(qr, module_px=8, border=2)            # 200 px: a 25² latent under the ×8 stand-in VAE
    host = SamplerHost(cfg_function=None, check_interrupt=lambda: interrupts.append(1), outer_sample="outer",
                       calc_cond_batch="calc")
    log = GuidanceLog()
    objective = ScanObjective(qr.with_geometry(geo), GuidanceConfig(gate=False))
    vae = SimpleNamespace(first_stage_model=inference_model())
    return install_guidance(FakePatcher(), vae, objective, mode, 0.0, 0.5, "auto", False, log, host), log


def test_hooks_register_under_the_hosts_keys():
    x0, _ = guided("x0", [])
    xt, _ = guided("xt", [])
    assert set(x0.wrappers) == {("outer", HOOK_KEY)} and x0.post_cfg is not None
    assert set(xt.wrappers) == {("outer", HOOK_KEY), ("calc", HOOK_KEY)}


def test_post_cfg_guides_inside_the_window_only():
    interrupts = []
    patched, log = guided("x0", interrupts)
    sigmas = torch.tensor([9.0, 2.0, 0.0])
    executor = Executor(class_obj=SimpleNamespace(cfg=7.0))
    assert patched.wrappers[("outer", HOOK_KEY)](executor, None, None, None, sigmas) == "sampled"
    x = torch.rand(1, 4, 25, 25, generator=torch.Generator().manual_seed(0))
    inside = patched.post_cfg({"denoised": x, "sigma": sigmas[:1], "model": BASE_MODEL, "input": x})
    outside = patched.post_cfg({"denoised": x, "sigma": sigmas[1:2], "model": BASE_MODEL, "input": x})
    assert outside is x                                   # σ 2 is past end_percent 0.5 (σ 5): untouched
    assert inside.shape == x.shape and torch.isfinite(inside).all() and not torch.equal(inside, x)
    assert interrupts == [1]                              # the host's interrupt check ran before the gradient
    events = log.runs[0]["events"]
    assert [e["status"] for e in events] == ["guided", "outside window"] and [e["step"] for e in events] == [0, 1]
    assert "guided at steps 0" in log.summary() and "outside window at steps 1" in log.summary()
