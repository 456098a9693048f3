"""art.blueprint on a real photograph: fitting, module luminance, binarisation, priorities and the adaptive
halftone blueprint (its invariants, and that zxing-cpp still reads it)."""

import cv2
import numpy as np
import pytest
import zxingcpp
from skimage import data

from aesthetic_qr.art.blueprint import (
    binarize_modules,
    code_layers,
    core_size,
    halftone_blueprint,
    module_luminance,
    module_priority,
    otsu_threshold,
    polarise,
)
from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.pixels import LUMA, fit, luminance
from aesthetic_qr.qr.render import make_geometry, render

MODULE_PX = 12
TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"


@pytest.fixture(scope="module")
def qr():
    code = encode(TEXT, version=5, ecl="M")
    _, geo = render(code, module_px=MODULE_PX, border=4)
    return code.with_geometry(geo)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut().astype(np.float32) / 255.0  # 512×512, the geometry is 540×540


def decode(image) -> list[bytes]:
    u8 = np.clip(np.round(np.asarray(image) * 255), 0, 255).astype(np.uint8)
    return [bytes(r.bytes) for r in zxingcpp.read_barcodes(u8, formats=zxingcpp.BarcodeFormat.QRCode)]


def core_pixels(qr, core_ratio):
    """Per module: the (rows, cols) pixel slices of its centred core."""
    geo = qr.geometry
    p = geo.module_px
    u = core_size(p, core_ratio)
    lo = (p - u) // 2
    ox, oy = geo.origin
    return lambda r, c: (slice(oy + r * p + lo, oy + r * p + lo + u), slice(ox + c * p + lo, ox + c * p + lo + u))


# ---------------------------------------------------------------------------------------------- fitting

def test_fit_cover_crops_centre_and_keeps_aspect():
    geo = make_geometry(21, 4, 4)                        # 116×116
    wide = np.zeros((100, 300, 3), dtype=np.float32)
    wide[:, :100, 0] = 1.0                               # red | green | blue thirds
    wide[:, 100:200, 1] = 1.0
    wide[:, 200:, 2] = 1.0
    out = fit(wide, geo)
    assert out.shape == (116, 116, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 2:-2], np.broadcast_to([0, 1, 0], (116, 112, 3)), atol=1e-5)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    np.testing.assert_allclose(fit(tall, geo)[2:-2], np.broadcast_to([0, 1, 0], (112, 116, 3)), atol=1e-5)


def test_fit_accepts_any_size_uint8_and_masks(qr, astronaut):
    geo = qr.geometry
    for shape in [(37, 53), (512, 512), (900, 301), (540, 540)]:
        pic = cv2.resize(astronaut, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        assert fit(pic, geo).shape == (540, 540, 3)
        assert fit(pic[:, :, 0], geo).shape == (540, 540)
    assert fit((astronaut * 255).astype(np.uint8), geo).max() <= 1.0
    same = cv2.resize(astronaut, (540, 540))
    np.testing.assert_array_equal(fit(same, geo), np.clip(same, 0, 1))


# ---------------------------------------------------------------------------------------------- reading

@pytest.mark.parametrize("sigma_ratio", [0.0, 0.2, 1 / 3, 1.0])
def test_module_luminance_of_flat_image_is_flat(qr, sigma_ratio):
    for rgb in ([0.0, 0.0, 0.0], [0.37, 0.37, 0.37], [0.9, 0.2, 0.5]):
        flat = np.broadcast_to(np.array(rgb, np.float32), (540, 540, 3))
        lum = module_luminance(flat, qr, sigma_ratio=sigma_ratio)
        assert lum.shape == (qr.size, qr.size)
        np.testing.assert_allclose(lum, float(np.dot(rgb, LUMA)), atol=1e-5)
    # a bare geometry plus size works the same, and a flat picture of another size too
    np.testing.assert_allclose(module_luminance(np.full((300, 200, 3), 0.25, np.float32), qr.geometry,
                                                size=qr.size, sigma_ratio=sigma_ratio), 0.25, atol=1e-5)


def test_module_luminance_weights_the_centre(qr):
    """A module dark only at its centre reads darker with a narrow Gaussian than with the plain mean."""
    img, _ = render(qr, module_px=MODULE_PX, border=4, style="centre-square")
    narrow = module_luminance(img, qr, sigma_ratio=0.15)
    box = module_luminance(img, qr, sigma_ratio=0)
    data_dark = (qr.matrix == 1) & ~qr.function_mask
    assert np.all(narrow[data_dark] < box[data_dark])


@pytest.mark.parametrize("style", ["plain", "centre-square", "dots"])
def test_binarisation_recovers_rendered_matrix(qr, style):
    img, _ = render(qr, module_px=MODULE_PX, border=4, style=style)
    lum = module_luminance(img, qr)
    for threshold in ("otsu", 0.5):
        np.testing.assert_array_equal(binarize_modules(lum, threshold), qr.matrix)
    if style == "plain":  # a pure black/white input leaves no error to diffuse
        np.testing.assert_array_equal(binarize_modules(lum, dither=True), qr.matrix)


def test_binarisation_options(astronaut, qr):
    lum = module_luminance(astronaut, qr)
    bits = binarize_modules(lum)
    assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
    np.testing.assert_array_equal(bits, (lum < otsu_threshold(lum)).astype(np.uint8))
    # dithering a flat grey gives a halftone whose dark share follows the grey level
    for g in (0.25, 0.5, 0.75):
        dark = binarize_modules(np.full((37, 37), g), 0.5, dither=True).mean()
        assert abs(dark - (1 - g)) < 0.05
    assert 0.2 < otsu_threshold(np.r_[np.full(50, 0.2), np.full(50, 0.8)]) <= 0.8
    with pytest.raises(QRInputError):
        binarize_modules(lum, "mean")
    with pytest.raises(QRInputError):
        binarize_modules(lum, 1.5)


# ---------------------------------------------------------------------------------------------- priority

@pytest.mark.parametrize("mode", ["qart", "artup", "uniform"])
def test_priority_shape_and_range(astronaut, qr, mode):
    p = module_priority(astronaut, qr, mode)
    assert p.shape == (qr.size, qr.size)
    assert p.min() >= 0 and p.max() <= 1
    if mode == "uniform":
        assert np.all(p == 1)
    else:
        assert p.min() == 0 and p.max() == 1


def test_qart_ranks_texture_above_flat(qr):
    rng = np.random.default_rng(0)
    pic = np.full((540, 540, 3), 0.5, np.float32)
    blocks = rng.integers(0, 2, (45, 23)).astype(np.float32)         # 12-px random blocks on the right
    pic[:, 264:, :] = np.kron(blocks, np.ones((12, 12)))[:540, :276, None]
    p = module_priority(pic, qr, "qart")
    assert p[:, 28:].mean() > 0.5 > p[:, :8].mean()
    assert p[:, :8].max() < p[:, 28:].min()


def test_artup_ranks_edges_and_centre(qr):
    flat = np.full((540, 540, 3), 0.4, np.float32)
    p = module_priority(flat, qr, "artup")        # no edges, no saliency: only the centre term remains
    c = qr.size // 2
    assert p[c, c] == 1 and p[0, 0] == 0 and p[-1, -1] == 0
    square = flat.copy()
    square[48 + 12 * 4:48 + 12 * 10, 48 + 12 * 4:48 + 12 * 10] = 1.0   # a white square off centre
    p = module_priority(square, qr, "artup")
    assert p[4, 6] > p[c, c]                      # its edge beats the bare centre


# ---------------------------------------------------------------------------------------------- halftone

@pytest.mark.parametrize("core_ratio", [1 / 3, 1 / 2])
def test_halftone_invariants_and_decodes(astronaut, qr, core_ratio):
    tb, tw = 0.3, 0.7
    out = halftone_blueprint(astronaut, qr, core_ratio=core_ratio, tau_black=tb, tau_white=tw)
    assert out.shape == (540, 540, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    core = core_pixels(qr, core_ratio)
    for r in range(qr.size):
        for c in range(qr.size):
            assert np.all(out[core(r, c)] == 1 - qr.matrix[r, c]), (r, c)
    inside, in_core, function, code = code_layers(qr, core_ratio)
    plain, _ = render(qr, module_px=MODULE_PX, border=4)
    np.testing.assert_array_equal(out[function], plain[function])      # function patterns whole
    assert np.all(out[~inside] == 1)                                    # quiet zone white
    y = luminance(out)
    picture = inside & ~in_core & ~function
    assert picture.sum() > 0.5 * inside.sum()
    assert not np.any((y[picture] > tb + 1e-6) & (y[picture] < tw - 1e-6))
    assert decode(out) == [qr.payload]


@pytest.mark.parametrize("tb, tw", [(0.3, 0.7), (0.45, 0.55), (0.1, 0.9)])
def test_polarise_empties_the_band_and_keeps_hue(astronaut, tb, tw):
    out = polarise(astronaut, tb, tw)
    y0, y1 = luminance(astronaut), luminance(out)
    band = (y0 > tb) & (y0 < tw)
    assert band.any() and not np.any((y1 > tb + 1e-6) & (y1 < tw - 1e-6))
    clear = (y0 <= tb - 1e-6) | (y0 >= tw + 1e-6)        # off the band edges by more than rounding
    np.testing.assert_array_equal(out[clear], astronaut[clear])
    off_mid = np.abs(y0 - (tb + tw) / 2) > 1e-6           # exact ties may go either way in float32
    nearer_black = band & off_mid & (y0 < (tb + tw) / 2)
    nearer_white = band & off_mid & (y0 > (tb + tw) / 2)
    assert np.all(y1[nearer_black] <= tb + 1e-6) and np.all(y1[nearer_white] >= tw - 1e-6)
    hsv0 = cv2.cvtColor(astronaut, cv2.COLOR_RGB2HSV)
    hsv1 = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    coloured = band & (hsv0[..., 1] > 0.1) & (hsv1[..., 1] > 0.02)
    dh = np.abs(hsv0[..., 0] - hsv1[..., 0])[coloured]
    assert np.minimum(dh, 360 - dh).max() < 1.0


def test_halftone_keep_mask(astronaut, qr):
    geo_keep = np.zeros((540, 540), bool)
    geo_keep[110:230, 200:330] = True                  # the face, in the geometry's frame
    out = halftone_blueprint(astronaut, qr, keep_mask=geo_keep)
    fitted = fit(astronaut, qr.geometry)
    inside, in_core, function, _ = code_layers(qr, 1 / 3)
    untouched = geo_keep & inside & ~function
    assert untouched.sum() > 10000
    np.testing.assert_array_equal(out[untouched], fitted[untouched])
    assert np.all(out[geo_keep & function] == render(qr, module_px=MODULE_PX, border=4)[0][geo_keep & function])
    # outside the mask the usual blueprint
    plain_bp = halftone_blueprint(astronaut, qr)
    np.testing.assert_array_equal(out[~geo_keep], plain_bp[~geo_keep])
    assert decode(out) == [qr.payload]

    # a mask in the picture's frame (512×512) is cropped and resized like the picture
    pic_keep = np.zeros((512, 512), np.float32)
    pic_keep[100:220, 190:310] = 1.0
    out2 = halftone_blueprint(astronaut, qr, keep_mask=pic_keep)
    fitted_keep = fit(pic_keep, qr.geometry)
    solid = (fitted_keep > 1 - 1e-6) & inside & ~function
    assert solid.sum() > 10000
    np.testing.assert_allclose(out2[solid], fitted[solid], atol=1e-5)


def test_halftone_resamples_wrong_size_targets(astronaut, qr):
    for shape in [(300, 700), (1000, 400), (64, 64)]:
        pic = cv2.resize(astronaut, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        out = halftone_blueprint(pic, qr, keep_mask=np.zeros(shape, np.float32))
        assert out.shape == (540, 540, 3)
    np.testing.assert_array_equal(halftone_blueprint((astronaut * 255).round().astype(np.uint8), qr),
                                  halftone_blueprint(np.round(astronaut * 255) / 255, qr))


def test_halftone_errors(astronaut, qr):
    with pytest.raises(QRInputError, match="geometry"):
        halftone_blueprint(astronaut, encode(TEXT, version=5))
    with pytest.raises(QRInputError, match="tau_black < tau_white"):
        halftone_blueprint(astronaut, qr, tau_black=0.7, tau_white=0.3)
    with pytest.raises(QRInputError, match="core_ratio"):
        halftone_blueprint(astronaut, qr, core_ratio=0)
    with pytest.raises(QRInputError, match="H×W"):
        halftone_blueprint(astronaut, qr, keep_mask=np.zeros((2, 3, 4)))
    # tiny cores still get a pixel, full cores give the plain code
    full = halftone_blueprint(astronaut, qr, core_ratio=1.0)
    np.testing.assert_array_equal(full, render(qr, module_px=MODULE_PX, border=4)[0])
    assert core_size(MODULE_PX, 0.01) == 1
