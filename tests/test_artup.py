"""ARTUP: the scanning-probability model (metric and loss), Face2QR marker harmonisation, and the whole pipeline on
real photographs — decoded by real decoders and the simulated-camera suite."""

import dataclasses
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from aesthetic_qr.art import artup as artup_module
from aesthetic_qr.art.artup import ArtupConfig, artup, artup_until_scans
from aesthetic_qr.art.colour import match_luminance, match_luminance_per_cell
from aesthetic_qr.art.markers import harmonize_markers, marker_modules, marker_pixels
from aesthetic_qr.losses.scan_probability import (
    local_mean,
    luminance_for_probability,
    module_scan_probability,
    module_scan_probability_np,
    threshold_probability,
)
from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.pixels import LUMA, fit, luminance, ssim_rgb
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.analysis import analyze, function_kinds
from aesthetic_qr.scan.decoders import decode
from aesthetic_qr.scan.report import verify_image

TEXT = "https://example.com/astronaut"


@pytest.fixture(scope="module")
def clean():
    qr = encode(TEXT, version=5, ecl="M")
    image, geo = render(qr, module_px=10, border=4)
    return qr.with_geometry(geo), image


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut().astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def artup_runs():
    """ARTUP on astronaut and coffee (v5-M, defaults), each with its full verification."""
    out = {}
    for name, pic in (("astronaut", data.astronaut()), ("coffee", data.coffee())):
        result = artup(pic.astype(np.float32) / 255.0, f"https://example.com/{name}",
                       config=ArtupConfig(version=5, ecl="M"))
        out[name] = (result, verify_image(result.image, result.qr.text, result.qr, suite=True))
    return out


def hue(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2HSV)[..., 0]


def hue_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 360
    return np.minimum(d, 360 - d)


# ---------------------------------------------------------------------------------------------------- the model

def test_clean_code_reads_with_certainty_and_inverted_code_does_not(clean):
    qr, image = clean
    p = module_scan_probability_np(image, qr)
    assert p.shape == (qr.size, qr.size) and p.min() > 0.99
    inverted = module_scan_probability_np(1.0 - image, qr)
    assert inverted.max() < 0.01
    # a low-contrast copy sits in between, and the paper's local-only threshold agrees on the ordering
    faint = 0.45 + 0.1 * image
    for g in (0.0, 0.5):
        pf = module_scan_probability_np(faint, qr, global_weight=g)
        assert 0.4 < pf.mean() < 0.95


def test_threshold_probability_is_the_truncated_normal_cdf_and_inverts():
    lum = torch.linspace(0, 1, 101)
    t = torch.full_like(lum, 0.4)
    light = torch.ones_like(lum, dtype=torch.bool)
    p = threshold_probability(lum, t, light, 0.2)
    assert p[0] == 0 and abs(float(p[-1]) - 1) < 1e-6 and bool((p.diff() >= 0).all())
    assert abs(float(threshold_probability(torch.tensor([0.4]), torch.tensor([0.4]), light[:1], 0.2)) - 0.5) < 0.1
    back = luminance_for_probability(p, t, light, 0.2)
    assert torch.allclose(back[5:-5], lum[5:-5], atol=1e-3)
    dark = threshold_probability(lum, t, ~light, 0.2)
    assert torch.allclose(dark, 1 - p)


def test_local_mean_matches_a_clipped_box_filter():
    rng = np.random.default_rng(0)
    x = rng.random((1, 23, 31)).astype(np.float32)
    got = local_mean(torch.from_numpy(x), 7)[0].numpy()
    ref = cv2.boxFilter(x[0], -1, (7, 7), normalize=False, borderType=cv2.BORDER_CONSTANT) / cv2.boxFilter(
        np.ones_like(x[0]), -1, (7, 7), normalize=False, borderType=cv2.BORDER_CONSTANT)
    assert np.allclose(got, ref, atol=1e-5)


def test_model_is_batched_and_accepts_channels_last(clean):
    qr, image = clean
    t = torch.from_numpy(np.stack([image, 0.45 + 0.1 * image])).permute(0, 3, 1, 2)
    batched = module_scan_probability(t, qr)
    assert batched.shape == (2, qr.size, qr.size)
    assert np.allclose(batched[1].numpy(), module_scan_probability_np(0.45 + 0.1 * image, qr), atol=1e-6)
    assert torch.allclose(module_scan_probability(t.permute(0, 2, 3, 1), qr, channels_last=True), batched)
    with pytest.raises(ValueError, match="geometry"):
        module_scan_probability(t[:, :, :-8], qr)


def hinge(image: torch.Tensor, qr, p_min: float = 0.95) -> torch.Tensor:
    """ARTUP's constraint P ≥ p_min as a loss: the mean over modules of relu(p_min − P)."""
    return torch.relu(p_min - module_scan_probability(image, qr)).mean()


def test_model_gradient_is_finite_and_adam_raises_the_probability(clean):
    qr, image = clean
    faint = torch.from_numpy(0.45 + 0.1 * image).permute(2, 0, 1)[None].contiguous()
    x = faint.clone().requires_grad_(True)
    loss = hinge(x, qr)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    before = float(module_scan_probability(faint, qr).mean())
    opt = torch.optim.Adam([x], lr=0.02)
    for _ in range(15):
        opt.zero_grad()
        hinge(x.clamp(0, 1), qr).backward()
        opt.step()
    with torch.no_grad():
        after = float(module_scan_probability(x.clamp(0, 1), qr).mean())
    assert after > before + 0.1, (before, after)


# ---------------------------------------------------------------------------------------------------- markers

@pytest.fixture(scope="module")
def picture_code(astronaut, clean):
    qr, _ = clean
    return qr, fit(astronaut, qr.geometry)


def test_harmonisation_only_touches_markers_and_makes_finders_read(picture_code):
    qr, picture = picture_code
    before = analyze(picture, qr)
    out = harmonize_markers(picture, qr, lam=0.8)
    sel, _ = marker_pixels(picture.shape[:2], qr, marker_modules(qr))
    assert np.array_equal(out[~sel], picture[~sel])
    assert before.function_errors["finder"] + before.function_errors["separator"] > 0  # the picture alone fails
    after = analyze(out, qr)
    assert after.function_errors["finder"] == after.function_errors["separator"] == 0
    assert after.function_errors["alignment"] == 0 and after.finders_intact


def test_harmonisation_follows_face2qr_lambda(picture_code):
    qr, picture = picture_code
    sel, light = marker_pixels(picture.shape[:2], qr, marker_modules(qr))
    lit, dark = sel & light, sel & ~light
    for lam in (0.0, 0.5, 0.8, 1.0):
        out = harmonize_markers(picture, qr, lam=lam)
        assert out[lit].min() >= 0.5 * (1 + lam) - 1e-6 and out[dark].max() <= 0.5 * (1 - lam) + 1e-6
        # pixels already past the bound keep their value (and colour)
        keep_lit = lit[..., None] & (picture >= 0.5 * (1 + lam))
        keep_dark = dark[..., None] & (picture <= 0.5 * (1 - lam))
        assert np.array_equal(out[keep_lit], picture[keep_lit]) and np.array_equal(out[keep_dark], picture[keep_dark])
    # λ = 1: pure black and white markers; λ = 0 is the weakest correct marker, not the identity
    one = harmonize_markers(picture, qr, lam=1.0)
    assert set(np.unique(one[sel])) <= {0.0, 1.0}
    assert not np.array_equal(harmonize_markers(picture, qr, lam=0.0), picture)
    # more λ, more marker contrast
    contrast = [float(harmonize_markers(picture, qr, lam=lam)[lit].mean() - harmonize_markers(
        picture, qr, lam=lam)[dark].mean()) for lam in (0.0, 0.4, 0.8)]
    assert contrast[0] < contrast[1] < contrast[2]
    with pytest.raises(QRInputError, match="λ"):
        harmonize_markers(picture, qr, lam=1.5)


def test_harmonisation_options_and_luminance_mode(picture_code):
    qr, picture = picture_code
    kinds = function_kinds(qr)
    assert not marker_modules(qr, include_alignment=False)[kinds["alignment"]].any()
    assert marker_modules(qr, include_timing=True)[kinds["timing"]].all()
    assert not marker_modules(qr, include_separators=False)[kinds["separator"]].any()
    out = harmonize_markers(picture, qr, lam=0.8, mode="luminance")
    sel, light = marker_pixels(picture.shape[:2], qr, marker_modules(qr))
    y = luminance(out)
    assert y[sel & light].min() >= 0.9 - 1e-4 and y[sel & ~light].max() <= 0.1 + 1e-4
    # a rescaled copy is handled at its own scale
    big = cv2.resize(picture, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    assert analyze(harmonize_markers(big, qr), qr).finders_intact
    # the quiet zone option clamps the border as light
    qz = harmonize_markers(picture, qr, quiet_zone=True)
    x0 = qr.geometry.origin[0]
    assert qz[:x0].min() >= 0.9 - 1e-6


# ---------------------------------------------------------------------------------------------------- colour stage

@pytest.mark.parametrize("mode", ["paper", "saturated"])
def test_colour_stage_hits_the_luminance_and_keeps_the_hue(mode):
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0.05, 0.95, (2000, 3)).astype(np.float32)
    target = rng.uniform(0, 1, 2000).astype(np.float32)
    out = match_luminance(rgb, target, mode)
    assert np.allclose(out @ LUMA, target, atol=2e-4)
    assert out.min() >= 0 and out.max() <= 1
    ok = (out.max(1) - out.min(1) > 0.02) & (rgb.max(1) - rgb.min(1) > 0.02)
    assert hue_distance(hue(out[ok][None])[0], hue(rgb[ok][None])[0]).max() < 0.5
    with pytest.raises(QRInputError):
        match_luminance(rgb, target, "lab")


def test_colour_per_cell_takes_the_mode_that_keeps_each_cell():
    """Half pale (the astronaut's grey suit), half strong colour (the coffee's red cup), every other 16-px cell
    lightened: each cell is wholly paper or wholly saturated, both modes are used, the luminance is the target, the
    untouched pixels are the picture's, and the whole keeps more SSIM than either mode alone."""
    pic = np.concatenate([data.astronaut()[100:228, 150:278], data.coffee()[80:208, 250:378]], axis=1)
    rgb = pic.astype(np.float32) / 255
    cells = (np.arange(128)[:, None] // 16) * 16 + np.arange(256)[None, :] // 16
    moved = (cells // 16 + cells % 16) % 2 == 0
    target = np.where(moved, np.clip(luminance(rgb) + 0.25, 0, 1), luminance(rgb))
    out = match_luminance_per_cell(rgb, target, moved, cells)
    assert np.allclose(out @ np.asarray(LUMA, np.float32), target, atol=2e-4)
    assert np.array_equal(out[~moved], rgb[~moved])
    whole = {}
    for mode in ("paper", "saturated"):
        whole[mode] = rgb.copy()
        whole[mode][moved] = match_luminance(rgb[moved], target[moved], mode)
    used = set()
    for k in np.unique(cells[moved]):
        sel = cells == k
        kind = [m for m in whole if np.array_equal(out[sel], whole[m][sel])]
        assert kind, k
        used.add(kind[0])
    assert used == {"paper", "saturated"}
    u8 = lambda x: (x * 255 + 0.5).astype(np.uint8)  # noqa: E731
    assert ssim_rgb(pic, u8(out)) > max(ssim_rgb(pic, u8(w)) for w in whole.values())


# ---------------------------------------------------------------------------------------------------- ARTUP

@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_artup_scans_robustly(artup_runs, name):
    result, rep = artup_runs[name]
    assert rep.decoders["zxing"].match and rep.decoders["wechat"].match, rep.to_text()
    assert rep.suite.ssr["zxing"] >= 0.95 and rep.suite.ssr["wechat"] >= 0.95, rep.to_text()
    summary = result.to_dict()
    assert result.min_p >= result.params["p_min"] - 0.01
    assert summary["camera_blur"] > 0 and summary["min_p_camera"] >= result.params["p_min"] - 0.01
    assert result.timings["total"] < 60.0  # a guard against pathologies; bench/bench_artup.py measures speed


def test_artup_looks_more_like_the_picture_than_the_code(artup_runs):
    for result, _ in artup_runs.values():
        plain, _ = render(result.qr, result.qr.geometry.module_px, result.qr.geometry.border, multiple=8)
        y = luminance(result.picture)
        ssim_artup = structural_similarity(luminance(result.image), y, data_range=1.0)
        ssim_plain = structural_similarity(luminance(plain), y, data_range=1.0)
        assert ssim_artup > ssim_plain + 0.25, (ssim_artup, ssim_plain)


def test_artup_moves_pixels_only_towards_their_module_colour_and_keeps_hue(artup_runs):
    result, _ = artup_runs["astronaut"]
    qr, geo = result.qr, result.qr.geometry
    y0, g = luminance(result.picture), result.gray
    assert np.allclose(luminance(result.image), g, atol=2e-3)  # the colour stage hits the grayscale target
    from aesthetic_qr.losses.scan_probability import light_map
    light = light_map(qr).numpy()
    assert (g[light] >= y0[light] - 1e-5).all() and (g[~light] <= y0[~light] + 1e-5).all()
    # outside the 1-module light band around the symbol the picture is untouched
    band = (qr.geometry.border - 1) * geo.module_px
    assert np.array_equal(result.image[:band], result.picture[:band])
    # hue kept wherever the colour is neither clipped nor grey
    src, out = result.picture, result.image
    ok = ((src.max(-1) - src.min(-1)) > 0.1) & ((out.max(-1) - out.min(-1)) > 0.05) & (out.max(-1) < 0.999) & (
        out.min(-1) > 0.001)
    assert ok.mean() > 0.2
    assert np.percentile(hue_distance(hue(out)[ok], hue(src)[ok]), 99) < 2.0


def test_artup_paper_mode_and_a_given_code(astronaut):
    paper = ArtupConfig(adjust="probability", markers="harmonize", quiet_width=None, iterations=4)
    first = artup(astronaut, "paper mode", config=dataclasses.replace(paper, version=4, ecl="Q"))
    assert first.min_p >= first.params["p_min"] - 0.01
    again = artup(astronaut, qr=first.qr, config=paper)
    assert again.qr is first.qr and again.follow is None
    assert np.allclose(again.image, first.image, atol=1e-5)
    res = decode(again.image, ("zxing", "wechat"), expected="paper mode")
    assert all(r.match for r in res.values()), res
    seen = []
    artup(astronaut, "progress", config=ArtupConfig(version=2, iterations=3), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(QRInputError, match="adjust"):
        artup(astronaut, "x", config=ArtupConfig(adjust="magic"))
    with pytest.raises(QRInputError):
        artup(astronaut)
    with pytest.raises(QRInputError, match="ArtupConfig"):
        artup(astronaut, "x", config={"p_min": 0.9})


# ---------------------------------------------------------------------------------------------------- the config

FLOAT_FIELDS = [f.name for f in dataclasses.fields(ArtupConfig) if "float" in str(f.type)]


def test_config_float_fields_are_the_expected_ones():
    assert {"p_min", "function_p_min", "sigma_s", "sigma_t", "window", "global_weight", "beta_sigma", "lam",
            "quiet_width", "camera_blur"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_config_rejects_non_finite_floats_by_name(name, bad):
    with pytest.raises(QRInputError, match=rf"^{name} ") as err:
        ArtupConfig(**{name: bad})
    assert "\n" not in str(err.value)
    if name == "p_min":  # a per-module p_min too
        with pytest.raises(QRInputError, match=r"^p_min "):
            ArtupConfig(p_min=np.array([[0.9, bad], [0.9, 0.9]]))


@pytest.mark.parametrize("kwargs, message", [
    ({"p_min": 1.5}, "p_min must be in [0, 1], got 1.5"),
    ({"function_p_min": -0.1}, "function_p_min must be in [0, 1], got -0.1"),
    ({"sigma_t": 0.0}, "sigma_t must be > 0 (the threshold's spread in luminance), got 0.0"),
    ({"sigma_s": -1.0}, "sigma_s must be ≥ 0 (module units; 0 samples the centre only), got -1.0"),
    ({"window": 0.0}, "window must be > 0 modules, got 0.0"),
    ({"global_weight": 2.0}, "global_weight must be in [0, 1], got 2.0"),
    ({"camera_blur": -0.5}, "camera_blur must be ≥ 0 modules (or None for auto), got -0.5"),
    ({"quiet_width": -1.0}, "quiet_width must be ≥ 0 modules (or None for the whole border), got -1.0"),
    ({"iterations": 0}, "iterations must be ≥ 1, got 0"),
    ({"colour": "sepia"}, "colour 'sepia' is not one of paper, saturated"),
    ({"markers": "round"}, "markers 'round' is not one of crisp, harmonize, model"),
    ({"quiet_zone": "grey"}, "quiet_zone 'grey' is not one of model, white, picture"),
    ({"lam": 1.5}, "λ must be in [0, 1]"),
    ({"p_min": np.full((3, 3), 1.2)}, "p_min must be in [0, 1], got an array from 1.2"),
])
def test_config_validation_messages(kwargs, message):
    with pytest.raises(QRInputError) as err:
        ArtupConfig(**kwargs)
    assert str(err.value).startswith(message), str(err.value)
    with pytest.raises(QRInputError):  # replace validates too
        dataclasses.replace(ArtupConfig(), **kwargs)


def test_config_is_frozen_and_params_come_from_it():
    config = ArtupConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.p_min = 0.5
    params = ArtupConfig(p_min=np.full((21, 21), 0.9), priority=np.zeros((8, 8))).to_dict()
    assert set(params) == {f.name for f in dataclasses.fields(ArtupConfig)}
    assert params["p_min"] == pytest.approx(0.9) and params["priority"] == "map"
    assert config.to_dict() == {**dataclasses.asdict(config)}


def test_retry_raises_p_min_and_keeps_the_code(astronaut, monkeypatch):
    """The first attempt does not decode: the retry runs with replace(config, p_min=0.9) on the first attempt's
    code, so the reshuffle runs once."""
    calls, follows, decodes = [], [], []
    real_artup, real_follow = artup_module.artup, artup_module.follow_picture

    def spy_artup(picture, text=None, *, qr=None, config, progress=None):
        result = real_artup(picture, text, qr=qr, config=config, progress=progress)
        calls.append({"text": text, "qr": qr, "config": config, "result": result})
        return result

    def spy_follow(*args, **kwargs):
        follows.append(kwargs)
        return real_follow(*args, **kwargs)

    def fake_decode(image, decoders, expected=None):
        decodes.append(image)
        return {name: SimpleNamespace(match=len(decodes) > 1) for name in decoders}

    monkeypatch.setattr(artup_module, "artup", spy_artup)
    monkeypatch.setattr(artup_module, "follow_picture", spy_follow)
    monkeypatch.setattr("aesthetic_qr.scan.decoders.decode", fake_decode)
    monkeypatch.setattr("aesthetic_qr.scan.camera.run_suite",
                        lambda image, payload, decoders, **kw: SimpleNamespace(ssr={d: 1.0 for d in decoders}))
    config = ArtupConfig(version=2, ecl="L", iterations=2, seed=3)
    result, attempts = artup_until_scans(astronaut, "retry", config=config)
    assert [a["p_min"] for a in attempts] == [0.85, 0.9]
    assert [a["clean_decode"] for a in attempts] == [False, True]
    assert len(follows) == 1 and follows[0]["seed"] == 3 and follows[0]["ecl"] == "L"
    first, second = calls
    assert first["text"] == "retry" and first["qr"] is None and first["config"] is config
    assert second["text"] is None and second["qr"] is first["result"].qr
    assert second["config"] == dataclasses.replace(config, p_min=0.9)
    assert result is second["result"] and result.qr is first["result"].qr and result.follow is None
    assert result.params["p_min"] == 0.9 and result.config.p_min == 0.9
