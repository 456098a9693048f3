"""The SSIM polish (art/polish.py): its SSIM gradient is skimage's SSIM differentiated, it raises the SSIM to the
picture, moves only the free modules' pixels and keeps every free module's blurred centre reads; `art` keeps a
polished result only when it passes the suite again."""

import dataclasses

import numpy as np
import pytest
from skimage import data

from aesthetic_qr.art.fidelity import ArtConfig, art
from aesthetic_qr.art.polish import CORE, READ_SIGMAS, polish, ssim_and_gradient
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.code import Geometry
from aesthetic_qr.qr.pixels import luminance, opencv, ssim_map

TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"
PASSING = ((0.25, 0.8, 0.8),)   # a level the test crop passes at in the picture's texture (see test_fidelity)


def test_gradient_is_the_ssim_maps_derivative():
    rng = np.random.default_rng(0)
    cv2 = opencv()
    ref = cv2.GaussianBlur(rng.random((40, 48)), (0, 0), 2.0)
    x = 0.6 * ref + 0.1 + 0.05 * rng.random(ref.shape)
    windows = np.zeros(ref.shape)
    windows[3:-3, 3:-3] = 1
    total, grad = ssim_and_gradient(ref, x, windows)
    assert total == pytest.approx(ssim_map(ref, x)[3:-3, 3:-3].sum(), rel=1e-9)
    eps = 1e-6
    for i, j in ((10, 10), (3, 30), (20, 5), (0, 0), (39, 47)):   # inside, at and past the window border
        bumped = x.copy()
        bumped[i, j] += eps
        numeric = (ssim_and_gradient(ref, bumped, windows)[0] - total) / eps
        assert grad[i, j] == pytest.approx(numeric, rel=1e-3, abs=1e-6)


@pytest.fixture(scope="module")
def case():
    """A v3 code at 10 px per module on the camera picture, every data module blended halfway to its colour."""
    qr = encode(TEXT[:30], ecl="M")
    n, p = qr.size, 10
    ref = luminance(data.camera()[100:100 + n * p + 40, 100:100 + n * p + 40, None].repeat(3, axis=2))
    qr = qr.with_geometry(Geometry(p, 0, (20, 20), (ref.shape[1], ref.shape[0])))
    data_modules = ~qr.function_mask.astype(bool)
    free = data_modules.copy()
    free[: n // 2, : n // 2] = False                       # a quarter of the data modules held fixed
    colour = np.kron(np.where(qr.matrix.astype(bool), 0.0, 1.0), np.ones((p, p)))
    gray = ref.copy()
    inside = gray[20:20 + n * p, 20:20 + n * p]
    blend = np.kron(data_modules, np.ones((p, p), bool))
    inside[blend] = 0.5 * inside[blend] + 0.5 * colour[blend]
    return ref, gray.astype(np.float32), qr, free


def _reads(img, qr):
    cv2 = opencv()
    n, p, (x0, y0) = qr.size, qr.geometry.module_px, qr.geometry.origin
    rows = np.ix_(y0 + np.arange(n) * p + (p - 1) // 2, x0 + np.arange(n) * p + (p - 1) // 2)
    return [cv2.GaussianBlur(img.astype(np.float32), (0, 0), s * p, borderType=cv2.BORDER_REPLICATE)[rows]
            for s in READ_SIGMAS]


def test_polish_raises_ssim_and_keeps_the_reads(case):
    ref, gray, qr, free = case
    out = polish(ref, gray, qr, free, iterations=20)
    assert out.shape == gray.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    before, after = ssim_map(ref, gray).mean(), ssim_map(ref, out).mean()
    assert after > before + 0.01, (before, after)
    n, p, (x0, y0) = qr.size, qr.geometry.module_px, qr.geometry.origin
    moved = np.zeros(gray.shape, bool)
    moved[y0:y0 + n * p, x0:x0 + n * p] = np.kron(free, np.ones((p, p), bool))
    assert np.array_equal(out[~moved], gray[~moved])       # held modules, function patterns, outside: untouched
    assert not np.array_equal(out[moved], gray[moved])
    dark = qr.matrix.astype(bool)
    for now, then in zip(_reads(out, qr), _reads(gray, qr)):
        worse = np.where(dark, now - then, then - now)[free]   # a dark module's read lighter, a light one's darker
        assert worse.max() < 0.01, worse.max()
    # no pixel of a free module's core crosses that core's extreme in the input
    inner = np.abs(np.arange(p) - (p - 1) / 2) <= CORE * p
    cores = [img[y0:y0 + n * p, x0:x0 + n * p].reshape(n, p, n, p)[:, inner][:, :, :, inner] for img in (out, gray)]
    after_core, before_core = cores
    assert (after_core.max(axis=(1, 3)) <= before_core.max(axis=(1, 3)) + 1e-6)[free & dark].all()
    assert (after_core.min(axis=(1, 3)) >= before_core.min(axis=(1, 3)) - 1e-6)[free & ~dark].all()


def test_no_iterations_or_nothing_free_is_the_input(case):
    ref, gray, qr, free = case
    assert np.array_equal(polish(ref, gray, qr, free, iterations=0), gray)
    assert np.array_equal(polish(ref, gray, qr, np.zeros_like(free), iterations=20), gray)


def _picture():
    return np.ascontiguousarray(data.astronaut()[40:360, 40:440])


def test_art_keeps_the_polish_only_when_it_passes(torch_one_thread, monkeypatch):
    """Polished: the saved pixels are the polish's, verified (a higher SSIM than without it). A polish the suite
    refuses (here: one that erases the code) leaves the search's verified pixels, still passing."""
    import aesthetic_qr.art.fidelity as fidelity

    config = ArtConfig(ecls=("H",), levels=PASSING, escalate=False)
    plain = art(_picture(), TEXT, dataclasses.replace(config, polish_iterations=0))
    assert not plain.polished and not any(a.get("polish") for a in plain.attempts)
    res = art(_picture(), TEXT, config)
    assert res.passed and res.polished and res.ssim > plain.ssim
    assert res.attempts[-1]["polish"] and res.attempts[-1]["pass"] and res.to_json()["polished"] is True

    monkeypatch.setattr(fidelity, "polish", lambda ref, gray, qr, free, iterations: ref)   # the code erased
    refused = art(_picture(), TEXT, config)
    assert refused.passed and not refused.polished and refused.attempts[-1]["pass"] is False
    assert np.array_equal(refused.image, plain.image) and refused.ssim == plain.ssim


def test_a_refused_polish_moves_on_to_the_next_attempt(torch_one_thread, monkeypatch):
    """When the suite refuses the polish of the passing attempt, the attempt the search would have tried next
    (here: the firmer style at the same level) is verified and polished, and kept when it keeps more."""
    import aesthetic_qr.art.fidelity as fidelity

    real, calls = fidelity._polished, []

    def refuse_the_first(*args):
        calls.append(args[3] is not None)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(fidelity, "_polished", refuse_the_first)
    res = art(_picture(), TEXT, ArtConfig(ecls=("H",), levels=PASSING, escalate=False))
    polishes = [a for a in res.attempts if a.get("polish")]
    assert len(calls) == 2 and [a["pass"] for a in polishes] == [False, True]
    assert res.passed and res.polished and res.function_style == "firm" == polishes[-1]["function_style"]
    first = next(a for a in res.attempts if a["pass"] and not a.get("polish"))
    assert first["function_style"] == "picture" and res.ssim > first["ssim"]
