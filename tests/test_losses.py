"""losses/: SRL, Face2QR adaptive code loss, colour and VGG fidelity losses on small codes
(version 2, 5 px modules). No weights are downloaded: VGGs are randomly initialised and saved in the test."""

import math

import numpy as np
import pytest
import torch

from aesthetic_qr.losses import (
    AdaptiveConfig,
    SRLConfig,
    VGGFeatures,
    adaptive_code_loss,
    chroma,
    face_modules,
    fidelity_loss,
    load_vgg,
    lpips_loss,
    luminance_only,
    pixel_loss,
    srl,
    ssim_loss,
    w2_content_loss,
    w2_distance,
    wrong_modules,
)
from aesthetic_qr.losses.perceptual import VGG_WEIGHTS, vgg_layer_names
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import make_geometry, render

P = 5  # pixels per module
BORDER = 2


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def code():
    qr = encode("https://example.com/aqr", version=2, ecl="M")
    img, geo = render(qr, P, BORDER)
    return qr.with_geometry(geo), torch.tensor(img, dtype=torch.float64).permute(2, 0, 1)[None]


def noisy(qr, seed=0, batch=1, dtype=torch.float64, mix=0.35):
    """A deterministic image at the code's geometry: grey + a faint copy of the code + noise (some modules right,
    some wrong)."""
    g = torch.Generator().manual_seed(seed)
    img, _ = render(qr, qr.geometry.module_px, qr.geometry.border)
    clean = torch.tensor(img, dtype=torch.float64).permute(2, 0, 1)[None]
    x = 0.5 + mix * (clean - 0.5) + 0.25 * torch.randn((batch, 3, *clean.shape[-2:]), generator=g,
                                                        dtype=torch.float64)
    return x.clamp(0, 1).to(dtype)


def rebase(x, qr, geometry):
    """The same symbol pixels in another geometry (bigger quiet zone / padded size), white elsewhere."""
    src, n, p = qr.geometry, qr.size, qr.geometry.module_px
    out = torch.ones((x.shape[0], 3, geometry.image_size[1], geometry.image_size[0]), dtype=x.dtype)
    (sx, sy), (dx, dy) = src.origin, geometry.origin
    out[:, :, dy:dy + n * p, dx:dx + n * p] = x[:, :, sy:sy + n * p, sx:sx + n * p]
    return out


CODE_LOSSES = {
    "srl": lambda x, qr: srl(x, qr),
    "srl_code": lambda x, qr: srl(x, qr, SRLConfig.public_code()),
    "adaptive": lambda x, qr: adaptive_code_loss(x, qr),
}


# ---- shared properties of the three code losses ---------------------------------------------------------------

@pytest.mark.parametrize("name", CODE_LOSSES)
def test_perfect_code_has_zero_loss(code, name):
    qr, clean = code
    assert CODE_LOSSES[name](clean, qr).item() == 0.0
    assert CODE_LOSSES[name](clean.float(), qr).item() == 0.0


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_gradients_finite_and_adam_reduces_loss(code, name):
    qr, _ = code
    x = noisy(qr, seed=1).requires_grad_()
    loss = CODE_LOSSES[name](x, qr).sum()
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    opt = torch.optim.Adam([x], lr=0.02)
    first = None
    for _ in range(25):
        opt.zero_grad()
        loss = CODE_LOSSES[name](x, qr).sum()
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    assert CODE_LOSSES[name](x.detach(), qr).item() < 0.5 * first
    assert wrong_modules(x.detach(), qr).sum() < wrong_modules(noisy(qr, seed=1), qr).sum()


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_one_gradient_step_reduces_loss(code, name):
    qr, _ = code
    x = noisy(qr, seed=2).requires_grad_()
    loss = CODE_LOSSES[name](x, qr).sum()
    (grad,) = torch.autograd.grad(loss, x)
    step = 1e-3 / grad.abs().max()
    assert CODE_LOSSES[name]((x - step * grad).detach(), qr).item() < loss.item()


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_loss_independent_of_padding(code, name):
    qr, _ = code
    x = noisy(qr, seed=3)
    ref = CODE_LOSSES[name](x, qr)
    for border, multiple in ((4, 1), (BORDER, 64), (7, 48)):
        geo = make_geometry(qr.size, P, border, multiple)
        other = qr.with_geometry(geo)
        assert geo.image_size != qr.geometry.image_size
        torch.testing.assert_close(CODE_LOSSES[name](rebase(x, qr, geo), other), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_batch_matches_separate_calls(code, name):
    qr, _ = code
    xs = torch.cat([noisy(qr, seed=s) for s in (4, 5, 6)])
    batched = CODE_LOSSES[name](xs, qr)
    assert batched.shape == (3,)
    single = torch.cat([CODE_LOSSES[name](xs[i:i + 1], qr) for i in range(3)])
    torch.testing.assert_close(batched, single)
    assert len(set(batched.tolist())) == 3


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_float32_matches_float64(code, name):
    qr, _ = code
    x64 = noisy(qr, seed=7)
    torch.testing.assert_close(CODE_LOSSES[name](x64.float(), qr).double(), CODE_LOSSES[name](x64, qr),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", CODE_LOSSES)
def test_wrong_size_raises_clear_error(code, name):
    qr, _ = code
    x = noisy(qr)[..., :-3, :-3]
    with pytest.raises(ValueError, match="resample"):
        CODE_LOSSES[name](x, qr)


# ---- SRL ------------------------------------------------------------------------------------------------------

def srl_reference(x, qr, cfg: SRLConfig) -> float:
    """SRL for one image written out module by module, pixel by pixel."""
    img = x[0].double().numpy()
    g = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    p, (x0, y0), n = qr.geometry.module_px, qr.geometry.origin, qr.size
    lo, hi = cfg.band
    c = (p - 1) / 2
    kernel = np.zeros((p, p))
    sigma = cfg.code_sigma if cfg.sigma_mode == "code" else cfg.sigma_frac * p
    for i in range(p):
        for j in range(p):
            kernel[i, j] = math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma ** 2))
    if cfg.sigma_mode == "code":
        kernel /= kernel.max()
        kernel[kernel < cfg.code_floor] = 0
    else:
        kernel /= kernel.sum()
    u = max(1, round(p / 3))
    a = (p - u) // 2
    total, wrong = 0.0, 0
    for r in range(n):
        for col in range(n):
            light = qr.matrix[r, col] == 0
            block = g[y0 + r * p:y0 + (r + 1) * p, x0 + col * p:x0 + (col + 1) * p]
            read = block[a:a + u, a:a + u].mean()
            if not (read < hi if light else read >= lo):
                continue
            wrong += 1
            e = 0.0
            for i in range(p):
                for j in range(p):
                    v = block[i, j]
                    e += kernel[i, j] * (2 * max(0.0, hi - v) if light else 2 * max(0.0, v - lo))
            total += (cfg.function_weight if qr.function_mask[r, col] else 1.0) * e
    return total / max(1, wrong) if cfg.reduction == "wrong" else total / (n * n)


@pytest.mark.parametrize("cfg", [SRLConfig(), SRLConfig.public_code(), SRLConfig(function_weight=4.0),
                                 SRLConfig(band=(0.4, 0.6), reduction="all"), SRLConfig(band=(0.6, 0.4))],
                         ids=["paper", "public_code", "fw4", "margin_all", "deadband"])
def test_srl_matches_loop_reference(code, cfg):
    qr, _ = code
    x = noisy(qr, seed=8)
    assert srl(x, qr, cfg).item() == pytest.approx(srl_reference(x, qr, cfg), rel=1e-10, abs=1e-14)


def test_srl_correct_modules_get_exactly_zero_gradient(code):
    qr, clean = code
    g = torch.Generator().manual_seed(9)
    # right everywhere (light ≥ 0.75, dark ≤ 0.25) except a few modules pushed across the threshold
    x = (clean * 0.5 + 0.25 + 0.2 * (torch.rand(clean.shape, generator=g, dtype=torch.float64) - 0.5)).clone()
    n, p, (x0, y0) = qr.size, P, qr.geometry.origin
    broken = [(10, 10), (12, 15), (20, 11), (9, 22), (3, 3)]
    for r, c in broken:
        x[:, :, y0 + r * p:y0 + (r + 1) * p, x0 + c * p:x0 + (c + 1) * p] = 1.0 - clean[0, 0, y0 + r * p, x0 + c * p]
    x.requires_grad_()
    loss, per_module = srl(x, qr, return_map=True)
    wrong = wrong_modules(x.detach(), qr)[0]
    assert {tuple(rc) for rc in wrong.nonzero().tolist()} == set(broken)
    assert per_module[0][~wrong].abs().max() == 0
    (grad,) = torch.autograd.grad(loss.sum(), x)
    gmod = grad.abs().sum(1)[0, y0:y0 + n * p, x0:x0 + n * p].reshape(n, p, n, p).sum((1, 3))
    assert (gmod[~wrong] == 0).all()
    assert (gmod[wrong] > 0).all()
    outside = grad.abs().sum(1)[0].clone()
    outside[y0:y0 + n * p, x0:x0 + n * p] = 0
    assert outside.max() == 0  # quiet zone excluded
    # the paper's mean over wrong modules: loss = mean of the per-module terms of the 5 wrong modules
    assert loss.item() == pytest.approx(per_module[0][wrong].mean().item())


def test_srl_code_sigma_differs_from_scaled_only_by_kernel_mass(code):
    """On a flat grey image every pixel of a wrong module has the same error, so the code's peak-normalised fixed-σ
    kernel gives exactly its mass Σ K times the scaled (sum-normalised) value; the wrong set is the same."""
    qr, clean = code
    x = torch.full_like(clean, 0.3)
    scaled_loss, scaled = srl(x, qr, return_map=True)
    code_loss, coded = srl(x, qr, sigma_mode="code", return_map=True)
    mass = SRLConfig(sigma_mode="code").kernel(P, dtype=torch.float64).sum()
    wrong = wrong_modules(x, qr)[0]
    assert wrong.sum() == (qr.matrix == 0).sum()  # light modules read dark at 0.3; dark ones are right
    torch.testing.assert_close(scaled[0][wrong], torch.full_like(scaled[0][wrong], 0.4))
    torch.testing.assert_close(coded, scaled * mass)
    torch.testing.assert_close(code_loss, scaled_loss * mass)
    # σ choice: scaled σ = module_px/6 is a sum-1 kernel; the code's is peak 1 with zeroed tails
    k = SRLConfig().kernel(18, dtype=torch.float64)
    assert k.sum().item() == pytest.approx(1.0) and k.max() < 1
    kc = SRLConfig(sigma_mode="code").kernel(18, dtype=torch.float64)
    assert kc.max().item() == 1.0 and (kc[kc > 0] >= 0.1).all()


def test_srl_function_weight_and_reductions(code):
    qr, _ = code
    x = noisy(qr, seed=10)
    _, base = srl(x, qr, return_map=True)
    _, heavy = srl(x, qr, function_weight=4.0, return_map=True)
    fm = torch.as_tensor(qr.function_mask)
    torch.testing.assert_close(heavy[0][fm], 4 * base[0][fm])
    torch.testing.assert_close(heavy[0][~fm], base[0][~fm])
    n_wrong = wrong_modules(x, qr).sum().item()
    all_mean = srl(x, qr, reduction="all").item()
    assert all_mean == pytest.approx(srl(x, qr).item() * n_wrong / qr.size ** 2)
    with pytest.raises(TypeError, match="unknown SRL option"):
        srl(x, qr, sigma=2.0)


# ---- Face2QR adaptive code loss --------------------------------------------------------------------------------

def test_adaptive_face_modules_use_face_kernel_and_weight(code):
    qr, clean = code
    x = torch.full_like(clean, 0.5)
    n = qr.size
    face = torch.zeros(n, n, dtype=torch.bool)
    face[8:17, 8:17] = True
    _, with_face = adaptive_code_loss(x, qr, face=face, return_map=True)
    _, no_face = adaptive_code_loss(x, qr, return_map=True)
    cfg = AdaptiveConfig()
    kf, kb = cfg.kernels(P, dtype=torch.float64)
    # flat 0.5 vs 0/1 targets: every pixel's squared error is 0.25
    torch.testing.assert_close(no_face[0], torch.full((n, n), 15.0 * 0.25 * kb.sum().item() / P ** 2,
                                                      dtype=torch.float64))
    torch.testing.assert_close(with_face[0][face], torch.full((81,), 1.0 * 0.25 * kf.sum().item() / P ** 2,
                                                              dtype=torch.float64))
    torch.testing.assert_close(with_face[0][~face], no_face[0][~face])
    assert kb.sum() > kf.sum()  # the flatter background kernel reaches more of the module


def test_adaptive_target_blueprint_and_errors(code):
    qr, _ = code
    x = noisy(qr, seed=13)
    blueprint = noisy(qr, seed=14)[0, 0]  # H×W grey blueprint
    assert adaptive_code_loss(x, qr, target=x).item() == 0
    for error in ("pixel_sq", "pixel_abs", "sampled_sq"):
        v = adaptive_code_loss(x, qr, target=blueprint, error=error)
        assert v.item() > 0 and torch.isfinite(v).all()
    mean = adaptive_code_loss(x, qr, target=blueprint, reduction="mean")
    torch.testing.assert_close(mean * qr.size ** 2, adaptive_code_loss(x, qr, target=blueprint))


def test_face_modules_from_pixel_mask(code):
    qr, _ = code
    geo = qr.geometry
    (x0, y0), p = geo.origin, geo.module_px
    mask = np.zeros((geo.image_size[1], geo.image_size[0]), np.float32)
    mask[y0 + 5 * p:y0 + 9 * p, x0 + 6 * p:x0 + 12 * p] = 1
    mask[y0 + 5 * p:y0 + 9 * p, x0 + 12 * p:x0 + 12 * p + 2] = 1  # partial column: not wholly face
    f = face_modules(mask, qr)[0]
    expected = torch.zeros(qr.size, qr.size, dtype=torch.bool)
    expected[5:9, 6:12] = True
    assert torch.equal(f, expected)
    assert face_modules(mask, qr, coverage=0.3)[0].sum() == 4 * 7


# ---- colour guards ---------------------------------------------------------------------------------------------

def _colour_pair(dtype=torch.float64):
    g = torch.Generator().manual_seed(15)
    ref = (0.2 + 0.6 * torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64)).to(dtype)
    img = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64).to(dtype)
    return img, ref


def _luma(x):
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def test_luminance_only_keeps_reference_chroma():
    img, ref = _colour_pair()
    out = luminance_only(img, ref, gamut="none")
    for space in ("ycbcr", "opponent"):
        torch.testing.assert_close(chroma(out, space), chroma(ref, space), rtol=0, atol=1e-14)
    torch.testing.assert_close(_luma(out), _luma(img), rtol=0, atol=1e-14)
    # from a single luminance channel too
    torch.testing.assert_close(luminance_only(_luma(img)[:, None], ref, gamut="none"), out)
    # desaturate: always in gamut, luminance kept, chroma kept wherever it fits
    out2 = luminance_only(img, ref)
    assert out2.min() >= 0 and out2.max() <= 1
    torch.testing.assert_close(_luma(out2), _luma(img), rtol=0, atol=1e-12)
    fits = ((out >= 0) & (out <= 1)).all(1)
    assert fits.any() and (~fits).any()
    torch.testing.assert_close(chroma(out2)[fits[:, None].expand(-1, 2, -1, -1)],
                               chroma(ref)[fits[:, None].expand(-1, 2, -1, -1)], rtol=0, atol=1e-12)
    # gradients flow to the optimised luminance
    y = _luma(img)[:, None].clone().requires_grad_()
    luminance_only(y, ref).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# ---- VGG fidelity ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vggs(tmp_path_factory):
    """Random VGG16/VGG19 saved with torchvision keys: `features` alone (.pth) and the whole model (.safetensors
    with `features.` prefix and a stray classifier), then loaded back."""
    from safetensors.torch import save_file

    out, tmp = {}, tmp_path_factory.mktemp("vgg")
    torch.manual_seed(0)
    for arch in ("vgg16", "vgg19"):
        src = load_vgg(None, arch, random_init=True)
        plain = {k: v.clone() for k, v in src.features.state_dict().items()}
        assert all(k.split(".")[0].isdigit() for k in plain)
        torch.save(plain, tmp / f"{arch}_features.pth")
        full = {f"features.{k}": v for k, v in plain.items()}
        full["classifier.0.weight"] = torch.zeros(4, 4)
        save_file(full, str(tmp / f"{arch}_full.safetensors"))
        out[arch] = (src, tmp)
    return out


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_loads_torchvision_style_state_dicts(vggs, arch):
    src, tmp = vggs[arch]
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layers = ("relu1_2", "relu3_3", "pool5")
    want = src(x, layers)
    for f in (f"{arch}_features.pth", f"{arch}_full.safetensors"):
        got = load_vgg(tmp / f, arch)(x, layers)
        for n in layers:
            torch.testing.assert_close(got[n], want[n], rtol=0, atol=0)
    other = "vgg19" if arch == "vgg16" else "vgg16"
    with pytest.raises(ValueError, match=arch.upper()):
        load_vgg(tmp / f"{arch}_features.pth", other)


def test_vgg_layout_matches_torchvision_indices():
    v16, v19 = vgg_layer_names("vgg16"), vgg_layer_names("vgg19")
    assert (v16["relu1_2"], v16["relu2_2"], v16["relu3_3"], v16["relu4_3"], v16["pool5"]) == (3, 8, 15, 22, 30)
    assert (v19["relu1_1"], v19["relu2_1"], v19["relu3_1"], v19["relu4_1"], v19["relu5_1"], v19["pool5"]) == (
        1, 6, 11, 20, 29, 36)
    assert len(VGGFeatures("vgg16").features) == 31 and len(VGGFeatures("vgg19").features) == 37


def test_missing_weights_message():
    for arch in ("vgg16", "vgg19"):
        for path in (None, "/nonexistent/models/vgg/nope.pth"):
            with pytest.raises(FileNotFoundError) as err:
                load_vgg(path, arch)
            msg = str(err.value)
            assert "ComfyUI" in msg and "models" in msg and VGG_WEIGHTS[arch][0] in msg
            assert "ssim_loss" in msg


def test_lpips_and_w2(vggs):
    v16, v19 = vggs["vgg16"][0], vggs["vgg19"][0]
    g = torch.Generator().manual_seed(2)
    ref = torch.rand(1, 3, 32, 32, generator=g)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert lpips_loss(ref, ref, v16).item() == 0
    for mode in ("gaussian", "sorted"):
        assert w2_content_loss(ref, ref, v19, mode=mode).item() == 0
        w = w2_content_loss(x, ref, v19, mode=mode)
        assert w.shape == (2,) and (w > 0).all()
    # per item = separate calls (reference broadcast from batch 1)
    torch.testing.assert_close(lpips_loss(x, ref, v16), torch.cat([lpips_loss(x[i:i + 1], ref, v16) for i in (0, 1)]))
    # gradients reach the image and are finite
    xr = x.clone().requires_grad_()
    (lpips_loss(xr, ref, v16).sum() + w2_content_loss(xr, ref, v19).sum()).backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0
    # Gaussian W2 closed form on known 1-D distributions; W ≥ 0
    a = torch.randn(3, 4, 8, 8, generator=g)
    b = 2 + 3 * torch.randn(3, 4, 8, 8, generator=g)
    assert (w2_distance(a, b) >= 0).all() and (w2_distance(a, b, mode="sorted") >= 0).all()
    mu, sd = a.flatten(2).mean(-1), a.flatten(2).std(-1, unbiased=False)
    # b = 1.5 + 2a: mean shifts by 1.5 + μ, spread doubles
    torch.testing.assert_close(w2_distance(a, 1.5 + 2 * a), ((1.5 + mu) ** 2 + sd ** 2).mean(-1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w2_distance(a, a + 0.7, mode="sorted"), torch.full((3,), 0.49), rtol=1e-5, atol=1e-6)


def test_weight_free_fidelity():
    g = torch.Generator().manual_seed(3)
    ref = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim_loss(ref, ref).abs().max() < 1e-12 and pixel_loss(ref, ref).max() == 0
    s = ssim_loss(x, ref)
    assert s.shape == (2,) and (s > 0).all() and (s < 1).all()
    torch.testing.assert_close(fidelity_loss(x, ref), ssim_loss(x, ref) + pixel_loss(x, ref))
    xr = x.clone().requires_grad_()
    loss = fidelity_loss(xr, ref).sum()
    (grad,) = torch.autograd.grad(loss, xr)
    assert fidelity_loss((xr - 0.02 * grad / grad.abs().max()).detach(), ref).sum() < loss
    torch.testing.assert_close(ssim_loss(x.float(), ref.float()).double(), ssim_loss(x, ref), rtol=1e-4, atol=1e-5)
