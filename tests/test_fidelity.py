"""`art` (art/fidelity.py): ARTUP plus the error-correction budget, placed inside the picture. The outputs decode
with zxing and WeChat, keep the input's size, leave the picture outside the code untouched, and spend no more than
correctable − margin codewords per block, exactly on the modules left as the picture."""

import dataclasses
import math

import numpy as np
import pytest
from skimage import data

from aesthetic_qr.art.fidelity import ArtConfig, art, spend_budget
from aesthetic_qr.art.texture import (
    DARK_MAX,
    FINDER_FRAME,
    LIGHT_MIN,
    function_and_strip,
    squeeze,
    strip_pixels,
)
from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.pixels import luminance
from aesthetic_qr.qr.render import placement
from aesthetic_qr.scan.decoders import decode

TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"
# a level the test crop passes at with the function patterns in the picture's texture (at the default first level,
# with light modules at p_min 0.7, both squeezed styles fail there)
PASSING = ((0.25, 0.8, 0.8),)


def _picture() -> np.ndarray:
    """A 320×400 (H×W, not square) crop of the astronaut: the code goes in the middle, picture left and right."""
    return np.ascontiguousarray(data.astronaut()[40:360, 40:440])


@pytest.fixture(scope="module")
def result(torch_one_thread):
    # one level, one error-correction level: the fast path (the search itself is the bench's job)
    return art(_picture(), TEXT, ArtConfig(ecls=("H",), levels=PASSING, escalate=False))


def _code_box(res):
    g = res.qr.geometry
    q = int(round(1.0 * g.module_px))
    side = res.qr.size * g.module_px
    return g.origin[1] - q, g.origin[1] + side + q, g.origin[0] - q, g.origin[0] + side + q


def test_decodes_and_keeps_size(result):
    pic = _picture()
    assert result.image.dtype == np.uint8 and result.image.shape == pic.shape
    got = decode(result.image, ("zxing", "wechat"), expected=TEXT)
    assert got["zxing"].match and got["wechat"].match
    assert all(result.clean.values())
    g = result.qr.geometry
    assert tuple(g.image_size) == (pic.shape[1], pic.shape[0])
    # as large as fits: one more pixel per module would not fit the shorter side with its strip
    assert (g.module_px + 1) * (result.qr.size + 2) > min(pic.shape[:2]) >= g.module_px * (result.qr.size + 2)


def test_outside_untouched(result):
    pic = _picture()
    y0, y1, x0, x1 = _code_box(result)
    outside = np.ones(pic.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert outside.sum() > 0.2 * outside.size
    assert np.array_equal(result.image[outside], pic[outside])


def test_strip_drawn_only_beside_the_finders(result):
    """The default strip frames the three finders and their separators; the rest of a full strip is the picture's
    own bytes in the output, and the corner without a finder gets no strip at all."""
    pic = _picture()
    full = strip_pixels(pic.shape[:2], result.qr, 1.0, "full")
    drawn = strip_pixels(pic.shape[:2], result.qr, 1.0, "finders")
    assert result.strip == "finders" == result.to_json()["strip"]
    assert (drawn <= full).all() and 0 < drawn.sum() < 0.5 * full.sum()
    assert np.array_equal(result.image[full & ~drawn], pic[full & ~drawn])
    g, n, p = result.qr.geometry, result.qr.size, result.qr.geometry.module_px
    x0, y0 = g.origin
    above, left = y0 - p // 2, x0 - p // 2                       # the strip's middle line above / left of the symbol
    cols = x0 + p * np.arange(n) + p // 2                        # module centres along the top edge
    assert drawn[above, cols[:FINDER_FRAME]].all() and drawn[above, cols[-FINDER_FRAME:]].all()
    assert not drawn[above, cols[FINDER_FRAME:-FINDER_FRAME]].any()
    assert drawn[y0 + p * np.arange(FINDER_FRAME) + p // 2, left].all()
    below_corner = (y0 + n * p + p // 2, x0 + n * p - p // 2)    # under the bottom-right module: no finder there
    assert full[below_corner] and not drawn[below_corner]
    with pytest.raises(QRInputError, match="strip 'none' is not one of finders, full"):
        strip_pixels(pic.shape[:2], result.qr, 1.0, "none")


def test_budget_within_margin(result):
    t = result.qr.correctable()
    assert result.correctable == t
    assert len(result.errors_per_block) == len(result.qr.blocks) == len(result.margin)
    spare = math.ceil(result.spare_share * t - 1e-9)
    for spent, margin in zip(result.errors_per_block, result.margin):
        assert margin == t - spent and margin >= spare and spent <= t - spare
    assert sum(result.errors_per_block) > 0          # the budget was spent
    # what a scanner reads on the clean output stays within what the blocks correct
    assert max(result.read_errors_per_block) <= t
    j = result.to_json()
    for key in ("pass", "ssim", "ssr", "seconds", "version", "ecl", "mask", "errors_per_block", "margin",
                "robustness"):
        assert key in j
    assert j["ecl"] == "H" and set(j["ssr"]) == {"zxing", "wechat"}


def test_spent_modules_are_the_picture(result):
    """Property: every module of a spent codeword is the input, pixel for pixel; and the spent modules are exactly
    the (t − spare) costliest codewords' modules of each block (gradient-free: the mask alone)."""
    pic = _picture()
    qr, kept = result.qr, result.kept
    p = qr.geometry.module_px
    x0, y0 = qr.geometry.origin
    n = qr.size
    sym_out = result.image[y0:y0 + n * p, x0:x0 + n * p].reshape(n, p, n, p, 3)
    sym_in = pic[y0:y0 + n * p, x0:x0 + n * p].reshape(n, p, n, p, 3)
    same = (sym_out == sym_in).all(axis=(1, 3, 4))
    assert kept.any() and same[kept].all()
    # no function module is ever left as the picture; kept data modules come in whole codewords
    assert not (kept & qr.function_mask.astype(bool)).any()
    blk, cw = qr.module_block, qr.module_codeword
    for b in range(len(qr.blocks)):
        words = {int(w) for w in np.unique(cw[(blk == b) & kept])}
        assert len(words) == result.errors_per_block[b]
        for w in words:
            assert kept[(blk == b) & (cw == w)].all()


def test_squeeze_keeps_order_and_texture_inside_the_bands():
    y = np.linspace(0, 1, 1001)
    for light, lo, hi in ((False, 0.0, DARK_MAX), (True, LIGHT_MIN, 1.0)):
        out = squeeze(y, np.full(y.shape, light))
        assert out.min() >= lo - 1e-9 and out.max() <= hi + 1e-9
        assert (np.diff(out) > 0).all()                          # strictly monotone: no two tones merge
    # the end that already reads is nearly untouched: deep shadows in a dark module, highlights in a light one
    assert abs(squeeze(np.array([0.02]), np.array([False]))[0] - 0.02) < 0.002
    assert abs(squeeze(np.array([0.98]), np.array([True]))[0] - 0.98) < 0.002
    texture = 0.5 + 0.1 * np.random.default_rng(0).standard_normal(400)
    for light in (False, True):
        assert np.corrcoef(texture, squeeze(texture, np.full(400, light)))[0, 1] > 0.97


def test_function_patterns_and_strip_carry_the_picture_squeezed(result):
    """The fixture's code passed with the first style: every function module and the strip show the picture's
    own texture (luminance strongly correlated with the input's), dark under DARK_MAX, light over LIGHT_MIN."""
    assert result.function_style == "picture" == result.attempts[0]["function_style"]
    pic = _picture()
    sel, light, undrawn = function_and_strip(pic.shape[:2], result.qr, 1.0)
    y_in, y_out = luminance(pic.astype(np.float32) / 255), luminance(result.image.astype(np.float32) / 255)
    assert (y_out[sel & ~light] <= DARK_MAX + 2 / 255).all() and (y_out[sel & light] >= LIGHT_MIN - 2 / 255).all()
    for side in (light, ~light):
        assert np.corrcoef(y_in[sel & side], y_out[sel & side])[0, 1] > 0.9
    g, n = result.qr.geometry, result.qr.size
    data_pixels = np.zeros(pic.shape[:2], bool)                  # data modules are ARTUP's and the budget's
    data_pixels[g.origin[1]:g.origin[1] + n * g.module_px, g.origin[0]:g.origin[0] + n * g.module_px] = np.kron(
        ~result.qr.function_mask.astype(bool), np.ones((g.module_px, g.module_px), bool))
    assert not (sel & data_pixels).any()
    # the timing patterns are not drawn: the picture's own bytes (zxing, WeChat and zbar do not read them)
    n_timing = 2 * (n - 16)
    assert undrawn.sum() == n_timing * g.module_px ** 2 and not (undrawn & sel).any()
    assert np.array_equal(result.image[undrawn], pic[undrawn])


def test_a_style_that_fails_falls_back_at_the_same_level(monkeypatch):
    """If the suite refuses the picture's texture, the firmer style is tried at the same level before the level
    rises (ARTUP's crisp patterns only when asked for); the result names the style it was made with."""
    import aesthetic_qr.art.fidelity as fidelity

    real, calls = fidelity.verify, []

    def refuse_the_first(img, qr, *args, **kwargs):
        clean, suite, ok = real(img, qr, *args, **kwargs)
        calls.append(ok)
        return clean, suite, ok and len(calls) > 1

    monkeypatch.setattr(fidelity, "verify", refuse_the_first)
    two = PASSING + ((0.5, 0.85, 0.85),)
    res = art(_picture(), TEXT, ArtConfig(ecls=("H",), levels=two, polish_iterations=0))
    search = [a for a in res.attempts if not a.get("polish")]
    assert [(a["level"], a["function_style"]) for a in search] == [(0, "picture"), (0, "firm")]
    assert res.function_style == "firm" and res.passed
    calls.clear()
    crisp = art(_picture(), TEXT, ArtConfig(ecls=("H",), levels=two, function_style="crisp", polish_iterations=0))
    assert [(a["level"], a["function_style"]) for a in crisp.attempts] == [(0, "crisp"), (1, "crisp")]
    assert crisp.function_style == "crisp" and crisp.passed


def test_spend_budget_picks_costliest():
    qr = encode(TEXT, ecl="Q")
    rng = np.random.default_rng(0)
    cost = rng.random((qr.size, qr.size))
    cost[qr.module_block < 0] = 0
    kept, counts = spend_budget(qr, cost, spare=4)
    t = qr.correctable()
    assert counts == [t - 4] * len(qr.blocks)
    for b in range(len(qr.blocks)):
        sel = qr.module_block == b
        word_cost = np.bincount(qr.module_codeword[sel], weights=cost[sel])
        chosen = set(np.unique(qr.module_codeword[sel & kept]).tolist())
        assert chosen == set(np.argsort(-word_cost)[:t - 4].tolist())
    zero, counts0 = spend_budget(qr, np.zeros_like(cost), spare=0)   # nothing costs: nothing is spent
    assert not zero.any() and counts0 == [0] * len(qr.blocks)


def test_placement():
    p, x0, y0 = placement((512, 512), 33)
    assert p == 14 and x0 == y0 == (512 - 33 * 14) // 2
    p, x0, y0 = placement((300, 500), 37, code_scale=0.5)
    assert p == 3 and (x0, y0) == ((500 - 111) // 2, (300 - 111) // 2)
    with pytest.raises(QRInputError, match="too small"):
        placement((60, 60), 37)


@pytest.mark.parametrize("field, value", [
    ("ecls", ("M", "X")), ("ecls", ()), ("levels", ((0.5, 1.5),)), ("levels", ((float("nan"), 0.9),)),
    ("levels", ((0.5, 0.9, 0.0),)), ("levels", ((0.5, 0.9, 0.8, 0.7),)), ("levels", ((0.5,),)),
    ("robustness", 99), ("robustness", -1), ("cost", "mse"), ("code_scale", 0.0), ("code_scale", float("inf")),
    ("quiet_width", float("nan")), ("quiet_width", -1.0), ("iterations", 0), ("camera_ssr", 1.5),
    ("decoders", ("zbarcode",)), ("max_seconds", float("nan")), ("max_seconds", -1.0), ("colour", "vivid"),
    ("escalate", "yes"), ("budget", 1), ("function_style", "bold"), ("strip", "none"),
    ("polish_iterations", -1), ("polish_iterations", 501), ("polish_iterations", 2.5), ("polish_iterations", True),
])
def test_config_validation(field, value):
    with pytest.raises(QRInputError) as err:
        ArtConfig(**{field: value})
    message = str(err.value)
    assert field in message and "\n" not in message
    with pytest.raises(QRInputError):
        dataclasses.replace(ArtConfig(), **{field: value})


def test_a_level_pair_means_the_same_p_min_for_light_modules():
    cfg = ArtConfig(levels=((0.5, 0.9), (1, 0.95, 0.85)))
    assert cfg.levels == ((0.5, 0.9, 0.9), (1.0, 0.95, 0.85))
    assert all(lv[2] < lv[1] for lv in ArtConfig().levels[:-1]) and ArtConfig().levels[-1][1:] == (0.995, 0.995)


def test_light_modules_take_the_light_p_min(torch_one_thread):
    """At one level with nothing spent, a lower light p_min moves the light data modules less and leaves the dark
    ones' forcing as it was."""
    pic = _picture()
    y0 = luminance(pic)

    def moved(light):
        res = art(pic, TEXT, ArtConfig(ecls=("H",), levels=((1.0, 0.9, light),), escalate=False,
                                       polish_iterations=0))
        qr, g = res.qr, res.qr.geometry
        p, (x0, yo) = g.module_px, g.origin
        side = qr.size * p
        d = np.abs(luminance(res.image) - y0)[yo:yo + side, x0:x0 + side].reshape(qr.size, p, qr.size, p)
        d = d.mean(axis=(1, 3))
        data = ~qr.function_mask.astype(bool)
        dark = qr.matrix.astype(bool)
        return res, d[data & ~dark].mean(), d[data & dark].mean()

    same, light_same, dark_same = moved(0.9)
    low, light_low, dark_low = moved(0.6)
    assert same.p_min == low.p_min == 0.9 and (same.light_p_min, low.light_p_min) == (0.9, 0.6)
    assert light_low < 0.8 * light_same
    assert abs(dark_low - dark_same) < 0.1 * dark_same
    assert low.to_json()["light_p_min"] == 0.6


def test_a_decoder_that_cannot_run_is_refused_before_any_work(monkeypatch):
    from aesthetic_qr.scan import decoders

    monkeypatch.setitem(decoders._state, "zbar", ImportError("zbar is not usable (test)"))
    with pytest.raises(QRInputError, match="^decoder zbar is not available: zbar is not usable \\(test\\)$"):
        art(_picture(), TEXT, ArtConfig(decoders=("zxing", "wechat", "zbar")))


def test_bad_inputs():
    with pytest.raises(QRInputError, match="config"):
        art(_picture(), TEXT, config={"ecls": ("H",)})
    with pytest.raises(QRInputError, match="text"):
        art(_picture(), "")


def test_the_zxing_screen_refuses_without_wechat_and_agrees_with_the_full_check(result):
    """zxing reads every view first; an image it fails (here: camera_ssr 1, and zxing misses a view of the
    fixture) is refused with zxing's views only, exactly as the full check refuses it; one it passes gets every
    decoder's full suite."""
    from aesthetic_qr.art.fidelity import verify

    assert result.ssr["zxing"] < 1.0 <= result.ssr["wechat"]          # the fixture's own outcome
    clean, screened, ok = verify(result.image, result.qr, ("zxing", "wechat"), 1.0, screen=True)
    assert all(clean.values()) and not ok and set(screened.ssr) == {"zxing"}
    _, full, full_ok = verify(result.image, result.qr, ("zxing", "wechat"), 1.0)
    assert not full_ok and full.failures("zxing") == screened.failures("zxing")
    _, passed, ok = verify(result.image, result.qr, ("zxing", "wechat"), 0.95, screen=True)
    assert ok and set(passed.ssr) == {"zxing", "wechat"} and passed.ssr == result.ssr
