"""The SR-MPGD / IDSE refinement loop without ComfyUI, on a stand-in decoder whose latent is the picture at one
pixel per 4×4 block: early stop when the verifier passes, best iterate, progress and interruption."""

import numpy as np
import pytest
import torch

from aesthetic_qr.diffusion.latent_refine import LatentRefineConfig, idse_start, refine_latent
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.analysis import analyze

BLOCK = 4


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def decoder(z: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(z, scale_factor=BLOCK, mode="nearest")


@pytest.fixture(scope="module")
def code():
    qr = encode("https://example.com/refine", version=2, ecl="M")
    image, geo = render(qr, module_px=2 * BLOCK, border=2, multiple=BLOCK)
    return qr.with_geometry(geo), image


def corrupted_latent(qr, image: np.ndarray, codewords: int, seed: int = 0) -> torch.Tensor:
    """The clean code at latent resolution with `codewords` codewords of block 0 read wrong (grey, wrong side)."""
    rng = np.random.default_rng(seed)
    img = image.copy()
    geo = qr.geometry
    chosen = rng.choice(np.unique(qr.module_codeword[(qr.module_block == 0)]), codewords, replace=False)
    for cw in chosen:
        for r, c in zip(*np.nonzero((qr.module_block == 0) & (qr.module_codeword == cw))):
            y, x = geo.origin[1] + r * geo.module_px, geo.origin[0] + c * geo.module_px
            img[y:y + geo.module_px, x:x + geo.module_px] = 0.6 if qr.matrix[r, c] else 0.4  # reads wrong
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    return torch.nn.functional.avg_pool2d(t, BLOCK)


def test_sr_mpgd_stops_as_soon_as_the_code_reads(code):
    qr, image = code
    z0 = corrupted_latent(qr, image, codewords=12)
    start = analyze(decoder(z0)[0].permute(1, 2, 0).numpy(), qr, heatmap=False)
    assert not start.decodable
    ticks = []
    result = refine_latent(z0, decoder, qr, LatentRefineConfig(iterations=300, step=50.0, check_every=5),
                           progress=lambda i, n, preview: ticks.append((i, n, preview is not None)))
    assert result.passed and result.iterations < 300
    assert result.best.iteration == result.iterations and result.best.min_margin >= 1
    assert all(result.best.decoded.values())
    assert [t[0] for t in ticks] == list(range(1, result.iterations + 1)) and ticks[0][2]
    losses = [c.loss for c in result.history[1:]]
    assert losses[-1] < losses[0]
    final = analyze(result.image, qr, heatmap=False)
    assert final.decodable and "passed" in result.summary()


def test_a_latent_that_already_reads_is_returned_untouched(code):
    qr, image = code
    z0 = torch.nn.functional.avg_pool2d(torch.from_numpy(image).permute(2, 0, 1)[None], BLOCK)
    result = refine_latent(z0, decoder, qr, LatentRefineConfig(step=50.0))
    assert result.iterations == 0 and result.passed
    torch.testing.assert_close(result.latent, z0)


def test_best_iterate_is_kept_when_the_budget_runs_out(code):
    qr, image = code
    z0 = corrupted_latent(qr, image, codewords=12, seed=1)
    result = refine_latent(z0, decoder, qr, LatentRefineConfig(iterations=3, step=1.0, check_every=1))
    assert not result.passed and result.iterations == 3
    assert result.best.score() == max(c.score() for c in result.history)
    assert "best iterate kept" in result.summary()


def test_progress_can_interrupt(code):
    qr, image = code

    class Stop(Exception):
        pass

    def stop_at_3(i, n, preview):
        if i == 3:
            raise Stop

    with pytest.raises(Stop):
        refine_latent(corrupted_latent(qr, image, 12), decoder, qr, LatentRefineConfig(iterations=50, step=1.0),
                      progress=stop_at_3)


def test_idse_with_face_mask_and_blueprint_lowers_its_loss(code):
    qr, image = code
    harmonised = idse_start(image * 0.5 + 0.25, qr)  # a washed-out picture: markers get pushed back to B/W
    assert harmonised.shape == image.shape and np.abs(harmonised - (image * 0.5 + 0.25)).max() > 0.1
    z0 = corrupted_latent(qr, image, codewords=12, seed=2)
    h, w = image.shape[:2]
    face = torch.zeros(h, w)
    face[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 1
    blueprint = torch.from_numpy(image).permute(2, 0, 1)[None]
    cfg = LatentRefineConfig(method="idse", iterations=40, step=0.01, check_every=10, margin=99)  # never passes
    result = refine_latent(z0, decoder, qr, cfg, blueprint=blueprint, face=face)
    losses = [c.loss for c in result.history[1:]]
    assert result.iterations == 40 and losses[-1] < 0.9 * losses[0]
    with pytest.raises(ValueError, match="method"):
        LatentRefineConfig(method="adam")
