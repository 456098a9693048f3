"""qr.pixels: files are read as a viewer shows them, and every image kind converts by one rule."""

import numpy as np
import pytest
from PIL import Image

from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.pixels import load_picture, luminance, to_float_rgb, to_gray_u8, to_uint8
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
