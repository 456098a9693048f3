"""Guidance maths without ComfyUI: gradients through frozen inference-mode models, the differentiable decoder, the
scan objective, the x0 gradient against finite differences, the ECC gate, and the SRPG step scales."""

import numpy as np
import pytest
import torch
from torch import nn

from aesthetic_qr.diffusion.decoder import DifferentiableDecoder, decoder_for, resolve_precision
from aesthetic_qr.diffusion.frozen import grad_mode, plain_copy, plain_parameters, reachable_modules
from aesthetic_qr.diffusion.guidance import (
    GuidanceConfig,
    ScanObjective,
    clamp_straight_through,
    stack_gradients,
    step_scale,
    x0_gradients,
)
from aesthetic_qr.losses.grid import fit_tensor
from aesthetic_qr.losses.srl import SRLConfig, srl
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def code():
    qr = encode("guide me", version=1, ecl="L")
    image, geo = render(qr, module_px=4, border=2, multiple=4)  # origin on the ×4 "latent" grid
    return qr.with_geometry(geo), image


class TinyVAE(nn.Module):
    """A first_stage_model stand-in: an encoder (dropped by the decoder copy) and a decode() that upsamples ×8."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 8, stride=8)
        self.post_quant_conv = nn.Conv2d(4, 4, 1)
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=8, mode="bilinear"), nn.Conv2d(4, 8, 3, padding=1),
                                     nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def inference_model(cls=TinyVAE) -> nn.Module:
    torch.manual_seed(0)
    with torch.inference_mode():  # how ComfyUI builds and loads every model
        return cls().eval()


def test_inference_weights_refuse_gradients_and_plain_copy_fixes_it():
    vae = inference_model()
    z = torch.randn(1, 4, 4, 4)
    with grad_mode(), pytest.raises(RuntimeError, match="[Ii]nference tensors"):
        torch.autograd.grad(vae.decode(z.requires_grad_()).sum(), z)
    copy = plain_copy(vae, drop=["encoder"])
    assert copy.encoder is None and not any(p.requires_grad for p in copy.parameters())
    with grad_mode():
        zz = torch.randn(1, 4, 4, 4, requires_grad=True)
        (g,) = torch.autograd.grad(copy.decode(zz).sum(), zz)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_plain_parameters_swaps_inside_and_restores_after():
    vae = inference_model()
    originals = {n: p for n, p in vae.named_parameters()}
    with grad_mode(), plain_parameters([vae]) as swapped:
        assert swapped == len(originals)
        assert not any(p.is_inference() for p in vae.parameters())
        z = torch.randn(1, 4, 4, 4, requires_grad=True)
        (g,) = torch.autograd.grad(vae.decode(z).sum(), z)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p is originals[n] for n, p in vae.named_parameters())


def test_reachable_modules_finds_models_in_conds_closures_and_objects():
    unet, control, adapter = nn.Linear(2, 2), nn.Conv2d(1, 1, 1), nn.Linear(3, 3)

    class Control:
        def __init__(self):
            self.control_model = control
            self.previous_controlnet = None

    def patch(x):
        return adapter(x)

    conds = [[{"control": Control(), "cross_attn": torch.zeros(1)}], None]
    found = reachable_modules(unet, conds, {"patches": {"attn2": [patch]}})
    assert {id(m) for m in found} == {id(unet), id(control), id(adapter)}
    parent = nn.Sequential(unet)
    assert [id(m) for m in reachable_modules(parent, unet)] == [id(parent)]  # submodules are not repeated


def test_decoder_copy_checkpointing_and_cache():
    vae = inference_model()
    plain = DifferentiableDecoder(vae, "cpu", "auto", gradient_checkpointing=False)
    ckpt = DifferentiableDecoder(vae, "cpu", "auto", gradient_checkpointing=True)
    z = torch.randn(1, 4, 4, 4)
    grads = []
    for dec in (plain, ckpt):
        with grad_mode():
            zz = z.clone().requires_grad_(True)
            img = dec(zz)
            grads.append(torch.autograd.grad(img.square().sum(), zz)[0])
    assert img.shape == (1, 3, 32, 32)
    torch.testing.assert_close(grads[0], grads[1])
    assert decoder_for(vae, "cpu") is decoder_for(vae, "cpu")
    assert resolve_precision("auto", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_step_scales_follow_the_srpg_derivation():
    sigma = torch.tensor([0.5, 14.6])
    torch.testing.assert_close(step_scale(sigma, "xt").flatten(), sigma ** 2)
    torch.testing.assert_close(step_scale(sigma, "x0").flatten(), sigma ** 2 / (1 + sigma ** 2))
    with pytest.raises(ValueError, match="mode"):
        step_scale(sigma, "eps")


def test_fit_tensor_resamples_uniform_scales_and_rejects_other_aspects():
    img = torch.rand(1, 3, 64, 64)
    assert fit_tensor(img, (48, 48)).shape == (1, 3, 48, 48)
    assert fit_tensor(img, (64, 64)) is img
    with pytest.raises(ValueError, match="aspect"):
        fit_tensor(torch.rand(1, 3, 64, 96), (48, 48))


def test_clamp_straight_through_shows_clamped_values_and_passes_gradients():
    x = torch.tensor([-0.5, 0.3, 1.7], requires_grad=True)
    y = clamp_straight_through(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 0.3, 1.0]))
    (g,) = torch.autograd.grad((y * torch.tensor([1.0, 2.0, 3.0])).sum(), x)
    torch.testing.assert_close(g, torch.tensor([1.0, 2.0, 3.0]))


class PixelDecoder:
    """latent 1×3×h×w → nearest ×4 upsample (a differentiable stand-in decoder with an exact layout)."""

    def __call__(self, z):
        return torch.nn.functional.interpolate(z, scale_factor=4, mode="nearest")


def test_x0_gradient_matches_finite_differences(code):
    qr, image = code
    size = qr.geometry.image_size[0]
    cfg = GuidanceConfig(code_scale=3.0, perceptual_scale=0.5, srl=SRLConfig(band=(0.45, 0.65)), gate=False)
    ref = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    objective = ScanObjective(qr, cfg, reference=ref)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.rand(1, 3, size // 4, size // 4, generator=gen, dtype=torch.float64) * 0.6 + 0.2
    items = x0_gradients(x0, lambda z: z * 2 - 1, lambda z: (PixelDecoder()(z) + 1) / 2, objective)
    grad = items[0].gradient
    assert grad.dtype == torch.float64 and torch.isfinite(grad).all() and grad.abs().sum() > 0

    def loss(z):
        img = clamp_straight_through(fit_tensor(PixelDecoder()(z), objective.size))
        return float(objective(img)[0])

    direction = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    eps = 1e-6
    numeric = (loss(x0 + eps * direction) - loss(x0 - eps * direction)) / (2 * eps)
    analytic = float((grad * direction).sum())
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_descending_the_x0_gradient_lowers_srl(code):
    qr, _ = code
    size = qr.geometry.image_size[0]
    objective = ScanObjective(qr, GuidanceConfig(code_scale=1.0, perceptual_scale=0.0, gate=False))
    z = torch.rand(1, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(0))
    start = float(srl(PixelDecoder()(z), qr))
    for _ in range(20):
        (item,) = x0_gradients(z, lambda t: t, PixelDecoder(), objective)
        z = z - 20 * item.gradient
    assert float(srl(PixelDecoder()(z).clamp(0, 1), qr)) < 0.5 * start


def test_ecc_gate_skips_images_that_already_read(code):
    qr, image = code
    objective = ScanObjective(qr, GuidanceConfig(gate=True))
    clean = torch.from_numpy(image).permute(2, 0, 1)[None]
    noise = torch.rand_like(clean)
    assert objective.reads(clean) and not objective.reads(noise)
    small = torch.nn.functional.avg_pool2d(torch.stack([clean[0], noise[0]]), 4)  # "latents" of both
    items = x0_gradients(small, lambda z: z, PixelDecoder(), objective)
    assert [it.gated for it in items] == [True, False]
    grad = stack_gradients(items, small)
    assert grad.shape == small.shape and grad[0].abs().sum() == 0 and grad[1].abs().sum() > 0
    assert stack_gradients(items[:1], small[:1]) is None


def test_face_mask_weakens_the_code_term_on_face_modules(code):
    qr, _ = code
    h, w = qr.geometry.image_size[1], qr.geometry.image_size[0]
    mask = torch.zeros(h, w)
    mask[: h // 2] = 1.0
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    plain = ScanObjective(qr, GuidanceConfig(code_scale=1.0, perceptual_scale=0.0, gate=False))
    masked = ScanObjective(qr, GuidanceConfig(code_scale=1.0, perceptual_scale=0.0, face_code_weight=0.0,
                                              gate=False), face_mask=mask)
    weight = masked.module_weight
    assert weight.shape == (1, qr.size, qr.size) and 0 < float((weight == 0).float().mean()) < 0.6
    img = image.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(masked(img)[0], img)
    assert g[..., : h // 2 - 8, :].abs().sum() == 0 and g[..., h // 2 + 8:, :].abs().sum() > 0
    assert float(masked(image)[0]) < float(plain(image)[0])


def test_srl_module_weight_scales_modules(code):
    qr, _ = code
    image = torch.rand(2, 3, *qr.geometry.image_size[::-1], generator=torch.Generator().manual_seed(2))
    _, per = srl(image, qr, return_map=True)
    weight = torch.rand(qr.size, qr.size, generator=torch.Generator().manual_seed(4))
    _, weighted = srl(image, qr, module_weight=weight, return_map=True)
    torch.testing.assert_close(weighted, per * weight)
    assert np.isfinite(float(srl(image, qr, module_weight=weight).sum()))
