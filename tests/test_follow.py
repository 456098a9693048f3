"""Following a real picture: better agreement than the plain code, search picks the best, the face is kept."""

import numpy as np
import pytest
from skimage import data

from aesthetic_qr.art.blueprint import binarize_modules, module_luminance
from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.render import make_geometry, render
from aesthetic_qr.scan.decoders import decode

PICTURE = data.astronaut().astype(np.float32) / 255
TEXT = "https://example.com/astronaut"


def agreement(qr, target):
    data_modules = qr.module_block >= 0
    return float((qr.matrix.astype(bool) == target)[data_modules].mean())


def scans(qr):
    image, _ = render(qr, module_px=6)
    return all(r.match for r in decode(image, ("zxing", "wechat"), expected=qr.text.encode()).values())


def test_follows_the_picture_better_than_the_plain_code():
    result = follow_picture(TEXT, PICTURE, version=5, ecl="L", mask=None)
    plain = encode(TEXT, version=result.qr.version, ecl="L", mask=result.qr.mask)
    assert agreement(result.qr, result.target) > agreement(plain, result.target) + 0.15
    assert result.qr.text == TEXT and scans(result.qr)
    assert len(result.candidates) == 8
    best = max(c["weighted_match"] for c in result.candidates)
    assert [c for c in result.candidates if c["mask"] == result.qr.mask][0]["weighted_match"] == best


def test_version_search_uses_the_extra_capacity():
    small = follow_picture(TEXT, PICTURE, ecl="M", mask=2)
    larger = follow_picture(TEXT, PICTURE, ecl="M", mask=2, extra_versions=3)
    assert larger.qr.version > small.qr.version
    assert larger.report.match_fraction > small.report.match_fraction and scans(larger.qr)


def test_target_of_any_size_is_resampled_to_the_module_grid():
    wide = np.repeat(PICTURE, 2, axis=1)[:300]  # 300×1024, a different aspect
    result = follow_picture(TEXT, wide, version=4, ecl="L", mask=0, module_px=8, border=4, multiple=8)
    geo = make_geometry(result.qr.size, 8, 4, 8)
    assert result.qr.geometry == geo
    assert np.array_equal(result.target, binarize_modules(module_luminance(wide, geo, result.qr.size)).astype(bool))


def test_face_region_is_pinned_first_and_reported():
    h, w = PICTURE.shape[:2]
    y, x = np.mgrid[:h, :w]
    face = ((y - 0.35 * h) ** 2 + (x - 0.5 * w) ** 2 < (0.15 * h) ** 2).astype(np.float32)
    result = follow_picture("face kept", PICTURE, version=6, ecl="M", mask=None, fixed=face)
    assert result.fixed.sum() > 20 and result.report.fixed_unmet == 0
    assert (result.qr.matrix.astype(bool) == result.target)[result.fixed & (result.qr.module_block >= 0)].all()
    assert scans(result.qr)

    crowded = follow_picture("a payload that fills most of the code", PICTURE, version=5, ecl="H", mask=0,
                             fixed=np.ones((h, w), np.float32))
    assert crowded.report.fixed_unmet > 0 and crowded.report.fixed_requested > crowded.report.free_bits
    assert "could not be honoured" in crowded.report.to_text()


def test_url_fragment_mode_needs_a_url():
    with pytest.raises(QRInputError, match="http"):
        follow_picture("not a url", PICTURE, url_fragment=True)
    result = follow_picture(TEXT, PICTURE, ecl="L", mask=1, url_fragment=True)
    assert result.qr.text.startswith(TEXT + "#") and scans(result.qr)


def test_dont_care_region_spends_no_free_bits_there():
    h, w = PICTURE.shape[:2]
    logo = np.zeros((h, w), np.float32)
    logo[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 1
    result = follow_picture(TEXT, PICTURE, version=5, ecl="L", mask=0, dont_care=logo)
    assert result.report.status[h // 2 * result.qr.size // h, result.qr.size // 2] == 0
    assert result.report.requested < (result.qr.module_block >= 0).sum()
    assert scans(result.qr)
