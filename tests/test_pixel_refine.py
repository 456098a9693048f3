"""Pixel-space refinement: a real picture becomes a code that scans under the camera suite, stays close to the
picture, and keeps the picture's colours."""

import numpy as np
import pytest
import torch
from skimage import data

from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.art.pixel_refine import PixelRefineConfig, pixel_refine
from aesthetic_qr.qr.pixels import fit, luminance
from aesthetic_qr.scan.report import verify_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_refined_picture_scans_and_stays_close():
    picture = data.coffee().astype(np.float32) / 255
    code = follow_picture("coffee time", picture, version=3, ecl="M", module_px=8, priority="artup").qr
    result = pixel_refine(picture, code, PixelRefineConfig(iterations=300, check_every=20, target_ssr=0.9))
    assert result.stopped_early and min(result.best_ssr.values()) >= 0.9
    report = verify_image(result.image, code.text, code, suite=True, min_ssr=0.8)
    assert all(r.match for r in report.decoders.values()), report.to_text()
    assert report.passed, report.to_text()

    fitted = fit(picture, code.geometry)
    geo, side = code.geometry, code.size * code.geometry.module_px
    x0, y0 = geo.origin
    inside = (slice(y0, y0 + side), slice(x0, x0 + side))
    # closer to the picture than the plain black/white code is
    from aesthetic_qr.qr.render import render

    plain, _ = render(code, geo.module_px, geo.border, multiple=8)
    err_refined = np.abs(luminance(result.image)[inside] - luminance(fitted)[inside]).mean()
    err_plain = np.abs(luminance(plain)[inside] - luminance(fitted)[inside]).mean()
    assert err_refined < 0.75 * err_plain
    # chroma is the picture's (luminance-only optimisation), up to gamut desaturation
    def chroma(img):
        return img - luminance(img)[..., None]
    mid = (luminance(result.image) > 0.15) & (luminance(result.image) < 0.85)
    cos = (chroma(result.image)[inside] * chroma(result.start)[inside]).sum(-1)
    assert (cos[mid[inside]] >= -1e-6).mean() > 0.98


def test_without_geometry_is_a_clear_error():
    from aesthetic_qr.qr import encode

    with pytest.raises(ValueError, match="geometry"):
        pixel_refine(np.zeros((32, 32, 3), np.float32), encode("x"))


def test_runs_under_comfyui_inference_mode():
    """ComfyUI executes prompts inside torch.inference_mode(); the refinement must still get gradients."""
    picture = data.coffee().astype(np.float32) / 255
    code = follow_picture("inference", picture, version=2, ecl="L", module_px=6).qr
    with torch.inference_mode():
        result = pixel_refine(picture, code, PixelRefineConfig(iterations=6, check_every=3))
    assert result.iterations >= 3 and np.isfinite(result.image).all()
    assert not np.array_equal(result.image, result.start)
