"""`personalize`: the stop check and the final verdict are one check on the pixels that are saved (issue: its JSON
said stopped_early after 50 of 400 steps, yet its final check gave 71 %/84 % and it exited 1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aesthetic_qr.art import pixel_refine as pr
from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import to_uint8
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.report import verify_image
from aesthetic_qr.tools import cli

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def ssr(report) -> dict:
    return {name: round(value, 6) for name, value in report.suite.ssr.items()}


def saved_and_read_back(image: np.ndarray, tmp_path) -> np.ndarray:
    path = tmp_path / "saved.png"
    cli.save_image(image, path)
    return cli.load_image(str(path))


@pytest.fixture(scope="module")
def code_picture():
    """A picture that already scans (the code itself, drawn at the geometry pixel refinement uses)."""
    qr = encode("https://example.com/p", ecl="M")
    image, geo = render(qr, module_px=6, border=4, multiple=8)
    return image, qr.with_geometry(geo)


def test_the_verdict_is_the_stop_check_on_the_saved_pixels(code_picture, tmp_path):
    picture, qr = code_picture
    result = pr.pixel_refine(picture, qr, pr.PixelRefineConfig(iterations=6, check_every=3))
    assert result.stopped_early and result.iterations == 3 and result.report.passed
    assert np.array_equal(to_uint8(result.image).astype(np.float32) / 255, result.image)  # exactly 8-bit values
    again = verify_image(saved_and_read_back(result.image, tmp_path), qr.text, qr, suite=True,
                         min_ssr=result.report.min_ssr)
    assert again.passed and ssr(again) == ssr(result.report)
    assert result.history[-1].get("verified") is True


def test_a_passing_camera_screen_does_not_stop_a_code_that_fails_verification(monkeypatch, tmp_path):
    """The issue's case, forced: the camera views say 100 % but the full verification fails, so the refinement
    does not claim success, and its verdict is the failing verification of the kept pixels."""
    rng = np.random.default_rng(0)
    picture = rng.random((96, 96, 3)).astype(np.float32)
    qr = follow_picture("https://example.com/noise", picture, version=2, module_px=4, border=4).qr
    monkeypatch.setattr(pr, "_camera_ssr", lambda image, qr, decoders: {d: 1.0 for d in decoders})
    checks = []
    real = pr._verify
    monkeypatch.setattr(pr, "_verify", lambda image, qr, cfg: checks.append(image) or real(image, qr, cfg))
    cfg = pr.PixelRefineConfig(iterations=2, check_every=1, lr=0.0, fidelity_weight=10.0, marker_lambda=0.0)
    result = pr.pixel_refine(picture * 0.2 + 0.4, qr, cfg)  # mid-grey noise: no module reads
    assert not result.stopped_early and not result.report.passed and result.iterations == 2
    assert all(h.get("verified") is False for h in result.history)
    assert any(np.array_equal(c, result.image) for c in checks)  # the verdict was made on the kept pixels
    again = verify_image(saved_and_read_back(result.image, tmp_path), qr.text, qr, suite=True,
                         min_ssr=cfg.target_ssr)
    assert not again.passed and ssr(again) == ssr(result.report)


def test_personalize_json_agrees_with_the_saved_file(code_picture, tmp_path, capsys):
    picture, _ = code_picture
    src, out = tmp_path / "picture.png", tmp_path / "out.png"
    Image.fromarray(to_uint8(picture)).save(src)
    rc = cli.main(["personalize", "--text", "https://example.com/p", "--image", str(src), "--module-px", "6",
                   "--iterations", "4", "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == (0 if result["pass"] else 1)
    assert result["pass"] == result["stopped_early"]
    qr = follow_picture("https://example.com/p", cli.load_image(str(src)), mask=None, module_px=6, border=4,
                        multiple=8, priority="artup").qr
    again = verify_image(cli.load_image(str(out)), qr.text, qr, suite=True, min_ssr=result["min_ssr"])
    assert again.passed == result["pass"]
    assert {n: d["ssr"] for n, d in result["decoders"].items()} == again.suite.ssr
