"""qr.pixels: files are read as a viewer shows them, and every image kind converts by one rule."""

import numpy as np
import pytest
from PIL import Image

from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.code import Geometry
from aesthetic_qr.qr.pixels import (
    load_picture,
    luminance,
    module_pixels,
    ssim_map,
    ssim_maps,
    to_float_rgb,
    to_gray_u8,
    to_uint8,
)
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.decoders import decode

TEXT = "https://example.com/pixels"


def test_a_code_drawn_on_a_transparent_sheet_reads_as_on_paper(tmp_path):
    image, _ = render(encode(TEXT, ecl="M"), module_px=6, border=4)
    dark = image[:, :, 0] < 0.5
    rgba = np.zeros(dark.shape + (4,), np.uint8)
    rgba[..., 3] = np.where(dark, 255, 0)                  # black modules, transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "code.png")
    picture = load_picture(tmp_path / "code.png")
    assert picture.shape == dark.shape + (3,) and picture[~dark].min() == 255
    assert decode(picture, ("zxing",), expected=TEXT)["zxing"].match


def test_exif_orientation_is_applied(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255                                      # left half white
    exif = Image.Exif()
    exif[0x0112] = 6                                        # rotate 90° clockwise to display
    Image.fromarray(wide).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    picture = load_picture(tmp_path / "turned.jpg")
    assert picture.shape == (40, 20, 3)                     # as a viewer shows it
    assert picture[:20].mean() > 200 and picture[20:].mean() < 60


def test_sixteen_bit_and_gray_convert_by_their_range():
    u16 = np.full((2, 2), 65535, np.uint16)
    assert to_float_rgb(u16).min() == 1.0 and to_gray_u8(u16).min() == 255
    assert luminance(np.full((2, 2, 3), 255, np.uint8)).min() == pytest.approx(1.0)
    assert to_uint8(np.full((2, 2, 4), 0.0, np.float32)).min() == 255   # fully transparent: white


def test_an_unreadable_file_is_one_clear_error(tmp_path):
    (tmp_path / "x.png").write_text("not a picture")
    with pytest.raises(QRInputError, match="cannot read image"):
        load_picture(tmp_path / "x.png")


def test_a_picture_above_the_explicit_limit_is_one_clear_error_and_pil_never_warns(tmp_path, monkeypatch):
    import warnings

    from aesthetic_qr.qr import pixels

    assert pixels.MAX_PICTURE_PIXELS < 2 * Image.MAX_IMAGE_PIXELS  # ours binds before PIL's own refusal
    Image.new("RGB", (60, 50), (128, 0, 0)).save(tmp_path / "big.png")  # 3000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)     # PIL would warn (> 2000) but not refuse (< 4000)
    monkeypatch.setattr(pixels, "MAX_PICTURE_PIXELS", 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail here
        assert load_picture(tmp_path / "big.png").shape == (50, 60, 3)
    monkeypatch.setattr(pixels, "MAX_PICTURE_PIXELS", 2500)
    with pytest.raises(QRInputError, match=r"big.png'?: it is 60×50 pixels \(0.003 megapixels\), more than the "
                                           r"0.0025 megapixels this pack reads; shrink it first"):
        load_picture(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)     # PIL itself refuses above 2000: still our one line
    with pytest.raises(QRInputError, match="big.png'?: it is more than 0.002 megapixels, more than the 0.0025 "):
        load_picture(tmp_path / "big.png")


def test_gray_and_sixteen_bit_files_load_as_rgb(tmp_path):
    Image.fromarray(np.full((5, 7), 100, np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(np.full((5, 7), 65535, np.uint16)).save(tmp_path / "deep.png")
    gray, deep = load_picture(tmp_path / "gray.png"), load_picture(tmp_path / "deep.png")
    assert gray.shape == deep.shape == (5, 7, 3) and gray.dtype == deep.dtype == np.uint8
    assert (gray == 100).all() and (deep == 255).all()


def test_ssim_is_skimages_number_faster():
    """`ssim_rgb` is skimage's structural_similarity (RGB, data range 255, its defaults) to rounding, on any
    size; every report and benchmark quotes it."""
    from skimage import data
    from skimage.metrics import structural_similarity

    from aesthetic_qr.qr.pixels import ssim_rgb

    a = data.astronaut()[:333, :517]
    b = np.clip(a.astype(int) + np.random.default_rng(0).integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert abs(ssim_rgb(a, b) - structural_similarity(a, b, channel_axis=-1, data_range=255)) < 1e-9
    assert ssim_rgb(a, a) == pytest.approx(1.0)
    with pytest.raises(QRInputError, match="two H×W×3 pictures of one size"):
        ssim_rgb(a, b[:-1])


def test_module_pixels_are_the_selected_modules_blown_up():
    rng = np.random.default_rng(3)
    mask = rng.random((21, 21)) > 0.5
    geo = Geometry(5, 2, (7, 4), (130, 120))
    got = module_pixels((120, 130), geo, mask)
    want = np.zeros((120, 130), bool)
    want[4:4 + 105, 7:7 + 105] = np.kron(mask, np.ones((5, 5), bool))
    assert np.array_equal(got, want)


def test_ssim_maps_share_the_reference():
    rng = np.random.default_rng(4)
    ref, a, b = (rng.random((40, 50)) for _ in range(3))
    maps = ssim_maps(ref, (a, b))
    assert np.allclose(maps[0], ssim_map(ref, a)) and np.allclose(maps[1], ssim_map(ref, b))
    assert np.allclose(ssim_map(ref, a, dtype=np.float32), ssim_map(ref, a), atol=1e-4)
