"""Scan verification: real decoders, module/codeword error analysis, and the simulated-camera suite."""

import json
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import to_gray_u8
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan import decoders as dec
from aesthetic_qr.scan.analysis import analyze, function_kinds
from aesthetic_qr.scan.camera import (
    build_variants,
    locate,
    qrverify_gray,
    qrverify_preset,
    qrverify_presets,
    run_suite,
)
from aesthetic_qr.scan.decoders import decode
from aesthetic_qr.scan.report import verify_image

TEXT = "https://example.com/aesthetic-qr"


@pytest.fixture(scope="module")
def plain():
    """Version 5-M at 11 px/module, padded to 512²."""
    qr = encode(TEXT, version=5, ecl="M")
    img, geo = render(qr, module_px=11, border=4, multiple=512)
    assert img.shape == (512, 512, 3)
    return qr.with_geometry(geo), img


def flip_codewords(qr, block: int, k: int, rng: np.random.Generator, max_bits: int = 3):
    """A copy of `qr` whose matrix has 1..max_bits modules flipped in each of k distinct codewords of `block`;
    also the number of modules flipped."""
    n_cw = len(qr.blocks[block][0]) + len(qr.blocks[block][1])
    m = qr.matrix.copy()
    flipped = 0
    for c in rng.choice(n_cw, size=k, replace=False):
        rows, cols = np.nonzero((qr.module_block == block) & (qr.module_codeword == c))
        assert len(rows) == 8
        pick = rng.choice(8, size=int(rng.integers(1, max_bits + 1)), replace=False)
        m[rows[pick], cols[pick]] ^= 1
        flipped += len(pick)
    return replace(qr, matrix=m), flipped


def render_flipped(qr, flipped_qr, module_px=4):
    img, geo = render(flipped_qr, module_px=module_px, border=4)
    return img, qr.with_geometry(geo)


# ---------------------------------------------------------------------------------------------------------------
# decoders

def test_decode_rendered_code(plain):
    qr, img = plain
    res = decode(img, expected=TEXT)
    assert set(res) == {"zxing", "wechat"}
    for r in res.values():
        assert r.decoded and r.match and r.text == TEXT and r.error is None and r.time_ms > 0
    assert res["zxing"].version == 5 and res["zxing"].ecl == "M"
    assert decode(img, ("zxing_pure",), expected=TEXT)["zxing_pure"].match


def test_wrong_or_no_expectation(plain):
    _, img = plain
    for r in decode(img, expected="something else").values():
        assert r.decoded and r.match is False and not r.ok
    for r in decode(img).values():
        assert r.decoded and r.match is None and r.ok
    assert decode(img, ("zxing",), expected=TEXT.encode())["zxing"].match  # bytes expectation


@pytest.mark.parametrize("image", [
    np.ones((300, 300, 3), np.float32), np.zeros((256, 256), np.uint8), np.full((64, 80, 1), 0.5, np.float32),
    np.zeros((1, 1, 3), np.uint8), np.random.default_rng(0).random((120, 90, 4)).astype(np.float32),
])
def test_blank_images_decode_nothing(image):
    res = decode(image, ("zxing", "zxing_pure", "wechat"), expected=TEXT)
    for r in res.values():
        assert not r.decoded and r.match is False and r.text is None and r.error is None


def test_image_formats_agree(plain):
    _, img = plain
    u8 = (img * 255).round().astype(np.uint8)
    forms = [img, u8, u8[:, :, 0], img[:, :, :1], np.dstack([u8, np.full(u8.shape[:2], 255, np.uint8)]),
             img[:, :, 0] > 0.5]
    for f in forms:
        assert np.array_equal(to_gray_u8(f), u8[:, :, 0])
        assert all(r.match for r in decode(f, expected=TEXT).values())


def test_several_codes_match_any():
    a, _ = render(encode("first code"), module_px=6)
    b, _ = render(encode("second code"), module_px=6)
    both = np.concatenate([a, b], axis=1)
    res = decode(both, ("zxing",), expected="second code")["zxing"]
    assert sorted(res.texts) == ["first code", "second code"]
    assert res.match and res.text == "second code"
    # WeChat without its CNN detector treats the whole image as one candidate and reads neither
    assert decode(both, ("wechat",), expected="second code")["wechat"].error is None


def test_unavailable_decoder_is_reported_not_raised(plain, monkeypatch):
    _, img = plain
    monkeypatch.setitem(dec._state, "zxing", ImportError("zxing-cpp is not usable (test)"))
    monkeypatch.setitem(dec._state, "wechat", ImportError("OpenCV (cv2) is not usable (test)"))
    res = decode(img, ("zxing", "wechat", "nope"), expected=TEXT)
    assert res["zxing"].error.startswith("unavailable: zxing-cpp")
    assert res["wechat"].error.startswith("unavailable: OpenCV")
    assert "unknown decoder" in res["nope"].error
    assert not any(r.decoded or r.match for r in res.values())
    assert dec.available("zxing") == (False, "zxing-cpp is not usable (test)")


ZBAR = dec.available("zbar")


@pytest.mark.skipif(not ZBAR[0], reason=f"zbar is not installed: {ZBAR[1]}")
def test_zbar_reads_a_rendered_code_and_checks_the_payload(plain):
    qr, img = plain
    res = decode(img, ("zxing", "zbar"), expected=TEXT)["zbar"]
    assert res.decoded and res.match and res.text == TEXT and res.error is None
    assert decode(img, ("zbar",), expected=TEXT.encode())["zbar"].match            # bytes compare whole
    assert decode(img, ("zbar",), expected="something else")["zbar"].match is False
    assert not decode(np.ones((200, 200), np.uint8) * 255, ("zbar",), expected=TEXT)["zbar"].decoded
    report = verify_image(img, TEXT, qr, decoders=("zxing", "wechat", "zbar"))
    assert report.passed and set(report.to_dict()["decoders"]) == {"zxing", "wechat", "zbar"}


def test_a_missing_zbar_is_reported_by_decode_and_refused_by_require(plain, monkeypatch):
    """zbar is optional: decode reports it unavailable (as for the others), and `require` — what `art` and the
    nodes call for a decoder the user asked for — raises one line saying how to install it."""
    _, img = plain
    monkeypatch.setitem(dec._state, "zbar", ImportError("Unable to find zbar shared library (test)"))
    assert decode(img, ("zbar",), expected=TEXT)["zbar"].error == "unavailable: Unable to find zbar shared library " \
                                                                  "(test)"
    dec.require(("zxing", "wechat"))
    with pytest.raises(dec.QRInputError) as err:
        dec.require(("zxing", "zbar"))
    message = str(err.value)
    assert message.startswith("decoder zbar is not available: Unable to find zbar") and "\n" not in message


# ---- payloads a decoder cannot return whole, and images larger than a scanner sees

def _code(text: str, module_px: int = 6):
    qr = encode(text, ecl="L")
    img, geo = render(qr, module_px=module_px, border=4)
    return qr.with_geometry(geo), img


@pytest.mark.parametrize("payload", ["a\x00b", "abc\x00", "\x00xyz", "h\u00e9\x00llo"])
def test_a_nul_payload_is_compared_on_what_each_decoder_returns(payload):
    qr, img = _code(payload)
    res = decode(img, expected=payload)
    assert res["zxing"].match and res["zxing"].text == payload and res["zxing"].limitation is None  # bytes: whole
    wechat = res["wechat"]  # WeChat's text ends at the NUL: a match on the part before it, said so
    assert wechat.text == payload.split("\x00")[0] and wechat.match
    assert "up to the first NUL" in wechat.limitation and f"of the payload's {len(payload)} characters" in \
        wechat.limitation
    assert decode(img, expected=payload.encode())["wechat"].match  # a bytes expectation likewise
    report = verify_image(img, payload, qr)
    assert report.passed, report.to_text()
    assert report.verdict()["decoders"]["wechat"]["limitation"] == wechat.limitation
    assert "wechat: decoded, payload matches as far as this decoder can return it" in report.to_text()
    assert any("up to the first NUL" in note for note in report.notes)
    suite = run_suite(img, payload, qr=qr, groups=("camera",))
    assert min(suite.ssr.values()) >= 0.9, suite.ssr  # every WeChat view was a wrong payload before


def test_a_nul_payload_never_passes_on_a_prefix_alone():
    qr, img = _code("a\x00b")
    alone = verify_image(img, "a\x00b", decoders=("wechat",))  # nothing compared the whole payload
    assert not alone.passed and any("no decoder compared the whole payload" in r for r in alone.reasons)
    _, other = _code("a\x00c")  # the same prefix, another payload: zxing tells them apart
    report = verify_image(other, "a\x00b")
    assert not report.passed and report.reasons == ["zxing did not read the payload"]
    _, short = _code("a")  # a code of the prefix only
    assert not verify_image(short, "a\x00b").passed
    _, wrong = _code("x\x00b")  # another prefix: WeChat's comparison fails too
    assert decode(wrong, ("wechat",), expected="a\x00b")["wechat"].match is False


def test_a_large_image_is_decoded_downscaled_and_the_report_says_so(monkeypatch):
    qr, img = _code(TEXT, module_px=8)
    big = cv2.resize((img * 255).astype(np.uint8), (3000, 3000), interpolation=cv2.INTER_NEAREST)
    seen = []
    real = dec.wechat.detect_and_decode
    monkeypatch.setattr(dec.wechat, "detect_and_decode", lambda gray: seen.append(gray.shape) or real(gray))
    res = decode(big, expected=TEXT)
    assert seen == [(2048, 2048)] and all(r.match for r in res.values())
    assert {r.downscaled for r in res.values()} == {"3000×3000 → 2048×2048"}
    report = verify_image(big, TEXT)
    assert report.passed and report.notes == ["the image was downscaled for decoding (3000×3000 → 2048×2048, area "
                                              "averaging): a scanner never sees more than 2048 px"]
    assert report.to_text().endswith("note: " + report.notes[0]) and report.to_dict()["notes"] == report.notes
    wide = decode(np.ones((500, 4100), np.uint8), ("zxing",))["zxing"]  # the longest side counts, aspect kept
    assert wide.downscaled == "4100×500 → 2048×250"
    assert decode(img, expected=TEXT)["zxing"].downscaled is None  # a normal picture is decoded as it is


def test_downscaling_without_opencv_averages_whole_pixel_cells(monkeypatch):
    def no_opencv():
        raise ImportError("no OpenCV (test)")

    monkeypatch.setattr(dec, "opencv", no_opencv)
    gray = np.zeros((4100, 3000), np.uint8)
    gray[:, 1500:] = 200
    small, note = dec._shrink(gray)
    assert small.shape == (2048, 1499) and note == "3000×4100 → 1499×2048"
    assert small[:, :740].max() == 0 and small[:, 760:].min() == 200


def test_package_imports_without_decoder_libraries():
    code = (
        "import sys; sys.modules['zxingcpp'] = None; sys.modules['cv2'] = None\n"
        "import numpy as np\n"
        "from aesthetic_qr.qr import encode\nfrom aesthetic_qr.scan import decoders, analysis, camera\n"
        "from aesthetic_qr.qr.render import render\n"
        "q = encode('hi'); img, geo = render(q, module_px=4)\n"
        "r = decoders.decode(img, expected='hi')\n"
        "assert not r['zxing'].decoded and 'zxing-cpp' in r['zxing'].error, r\n"
        "assert not r['wechat'].decoded and 'cv2' in r['wechat'].error, r\n"
        "assert analysis.analyze(img, q.with_geometry(geo)).decodable\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------------------------------------------
# analysis

@pytest.mark.parametrize("version", [1, 2, 6, 7, 14, 40])
def test_function_kinds_partition_the_function_mask(version):
    qr = encode("A", version=version, ecl="L")
    kinds = function_kinds(qr)
    total = sum(m.astype(int) for m in kinds.values())
    assert total.max() == 1 and np.array_equal(total.astype(bool), qr.function_mask)
    assert kinds["finder"].sum() == 147 and kinds["format"].sum() == 30 and kinds["dark_module"].sum() == 1
    assert kinds["version"].sum() == (36 if version >= 7 else 0)


def test_format_positions_match_the_encoder():
    from aesthetic_qr.qr.layout import template
    from aesthetic_qr.scan.analysis import _format_copies
    for v in (1, 9, 33):
        tpl = template(v)
        for copy, (rows, cols) in enumerate(_format_copies(tpl.size)):
            assert set(zip(rows.tolist(), cols.tolist())) == set(
                zip(tpl.format_rows[copy].tolist(), tpl.format_cols[copy].tolist()))


def test_clean_render_reads_perfectly(plain):
    qr, img = plain
    for a in (analyze(img, qr), analyze(img, qr, threshold="global"),
              analyze((img[:, :, 0] * 255).astype(np.uint8), qr, threshold=0.3)):
        assert a.decodable and a.min_margin == qr.correctable() == 12
        assert a.block_errors == [0, 0] and a.data_module_errors == 0 and a.quiet_zone_dark == 0
        assert not any(a.function_errors.values()) and a.format_copy_errors == (0, 0)
        assert np.array_equal(a.read, qr.matrix)
    # a rescaled copy still lines up (geometry scales with the image)
    import cv2
    half = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
    assert analyze(half, qr).module_error_rate == 0.0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.integers(1, 10), ecl=st.sampled_from("LMQH"), seed=st.integers(0, 2**32 - 1),
       extra=st.integers(-3, 2), threshold=st.sampled_from(["local", "global"]))
def test_codeword_error_count_is_exact(version, ecl, seed, extra, threshold):
    qr = encode("VERIFY 42", version=version, ecl=ecl)
    rng = np.random.default_rng(seed)
    t = qr.correctable()
    block = int(rng.integers(len(qr.blocks)))
    k = max(0, t + extra)
    flipped_qr, n_modules = flip_codewords(qr, block, k, rng)
    img, ref = render_flipped(qr, flipped_qr, module_px=3)
    a = analyze(img, ref, threshold=threshold, heatmap=False)
    expected = [0] * len(qr.blocks)
    expected[block] = k
    assert a.block_errors == expected
    assert a.block_bit_errors[block] == n_modules == a.data_module_errors
    assert a.block_margin[block] == t - k and a.min_margin == min(t - k, t)
    assert not any(a.function_errors.values()) and a.format_ok
    assert a.decodable == (k <= t)


@pytest.mark.parametrize("version,ecl", [(1, "L"), (1, "H"), (2, "M"), (3, "M"), (5, "Q"), (7, "H"), (10, "L")])
def test_decodable_verdict_agrees_with_zxing_at_capacity(version, ecl):
    qr = encode("CAPACITY 7", version=version, ecl=ecl)
    t = qr.correctable()
    rng = np.random.default_rng(version * 10 + "LMQH".index(ecl))
    for trial in range(3):
        for k in (t, t + 1, t + 2):
            block = int(rng.integers(len(qr.blocks)))
            flipped_qr, _ = flip_codewords(qr, block, k, rng)
            img, ref = render_flipped(qr, flipped_qr)
            a = analyze(img, ref, heatmap=False)
            assert a.block_errors[block] == k and a.decodable == (k <= t)
            names = ("zxing", "zxing_pure", "wechat") if k == t else ("zxing", "zxing_pure")
            res = decode(img, names, expected=qr.text)
            for name, r in res.items():
                # zxing corrects exactly floor(ec/2) codeword errors per block: never fewer, never more
                assert r.ok == a.decodable, (name, k, t, trial)
                assert not (r.decoded and not r.match)  # no miscorrection to another payload either


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.integers(1, 20), ecl=st.sampled_from("LMQH"), seed=st.integers(0, 2**32 - 1),
       extra=st.sampled_from([-1, 0, 1, 2]))
def test_decodable_verdict_agrees_with_zxing_property(version, ecl, seed, extra):
    qr = encode("PROPERTY", version=version, ecl=ecl)
    rng = np.random.default_rng(seed)
    k = qr.correctable() + extra
    block = int(rng.integers(len(qr.blocks)))
    flipped_qr, _ = flip_codewords(qr, block, k, rng)
    img, ref = render_flipped(qr, flipped_qr, module_px=3)
    a = analyze(img, ref, heatmap=False)
    assert a.block_errors[block] == k
    assert decode(img, ("zxing",), expected=qr.text)["zxing"].ok == a.decodable == (extra <= 0)


def test_function_and_format_errors_are_counted_separately():
    from aesthetic_qr.scan.analysis import _format_copies
    qr = encode("FORMAT", version=2, ecl="M")
    (r1, c1), (r2, c2) = _format_copies(qr.size)
    m = qr.matrix.copy()
    m[r1[:3], c1[:3]] ^= 1                        # 3 bits in copy 1: still within BCH(15,5)'s reach
    img, geo = render(replace(qr, matrix=m), module_px=4)
    a = analyze(img, qr.with_geometry(geo))
    assert a.format_copy_errors == (3, 0) and a.format_ok and a.decodable and a.finders_intact
    assert a.function_errors["format"] == 3 and a.data_module_errors == 0 and sum(a.block_errors) == 0
    assert all(r.match for r in decode(img, ("zxing", "zxing_pure", "wechat"), expected=qr.text).values())

    m[3, 3] ^= 1                                  # the centre of the top-left finder
    img, geo = render(replace(qr, matrix=m), module_px=4)
    a = analyze(img, qr.with_geometry(geo))
    assert a.function_errors["finder"] == 1 and not a.finders_intact and a.decodable
    # (zxing-cpp 3.1 then finds no code at all on this clean image; WeChat still reads it)
    assert decode(img, ("wechat",), expected=qr.text)["wechat"].match

    m[r2[:4], c2[:4]] ^= 1
    m[r1[3:4], c1[3:4]] ^= 1                      # 4 + 4: neither copy readable
    img, geo = render(replace(qr, matrix=m), module_px=4)
    a = analyze(img, qr.with_geometry(geo))
    assert a.format_copy_errors == (4, 4) and not a.format_ok and not a.decodable
    assert a.min_margin == qr.correctable()     # the data itself is intact


def test_heatmap_colours_and_json(plain):
    qr, _ = plain
    rng = np.random.default_rng(1)
    flipped_qr, _ = flip_codewords(qr, 0, 3, rng, max_bits=1)
    img, geo = render(flipped_qr, module_px=11, border=4, multiple=512)
    a = analyze(img, qr.with_geometry(geo))
    assert a.heatmap.shape == img.shape and a.heatmap.dtype == np.float32
    assert 0 <= a.heatmap.min() and a.heatmap.max() <= 1
    ox, oy = geo.origin
    for r, c in np.argwhere(a.wrong)[:3]:
        px = a.heatmap[oy + r * 11 + 5, ox + c * 11 + 5]
        assert px[0] > 0.6 and px[1] < 0.3
    r, c = np.argwhere(~a.wrong)[100]
    px = a.heatmap[oy + r * 11 + 5, ox + c * 11 + 5]
    assert px[1] > px[0] and px[1] > px[2]
    assert np.allclose(a.heatmap[2, 2], img[2, 2] * 0.45)  # quiet zone: only dimmed
    d = json.loads(json.dumps(a.to_dict()))
    assert d["block_errors"] == [3, 0] and d["decodable"] and "samples" not in d
    assert len(json.loads(json.dumps(a.to_dict(arrays=True)))["read"]) == qr.size


# ---------------------------------------------------------------------------------------------------------------
# camera suite

def test_suite_on_plain_code(plain):
    qr, img = plain
    res = run_suite(img, TEXT, qr=qr)
    assert set(res.ssr) == {"zxing", "wechat"}
    assert min(res.ssr.values()) >= 0.9, res.to_dict(per_variant=False)
    assert all(res.qrverify_pass.values())
    assert len(res.variants) == 21 + 37 and len({v.name for v in res.variants}) == 58
    d = json.loads(json.dumps(res.to_dict()))
    assert d["n_variants"] == 58 and d["variants"][0]["results"]["zxing"]["decoded"] in (True, False)
    # the wrong payload never counts, whatever decodes
    assert all(v == 0.0 for v in run_suite(img, "another payload", groups=("camera",), qr=qr).ssr.values())


def test_suite_on_blank_image():
    res = run_suite(np.ones((512, 512, 3), np.float32), TEXT)
    assert res.ssr == {"zxing": 0.0, "wechat": 0.0} and not any(res.qrverify_pass.values())
    assert res.placement.source == "assumed"


def test_suite_time_512(plain):
    qr, img = plain
    best = min(run_suite(img, TEXT, qr=qr).time_ms for _ in range(3))
    assert best < 1000.0, f"suite took {best:.0f} ms"


def test_suite_is_deterministic(plain):
    qr, img = plain
    a, _ = build_variants(img, qr=qr, seed=3)
    b, _ = build_variants(img, qr=qr, seed=3)
    c, _ = build_variants(img, qr=qr, seed=4)
    assert [n for _, n, _ in a] == [n for _, n, _ in b]
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(a, b))
    noisy = [n for (_, n, x), (_, _, y) in zip(a, c) if not np.array_equal(x, y)]
    assert set(noisy) == {"noise_0.08", "occlusion", "phone_a"}
    assert max(max(v.shape[:2]) for _, _, v in a) <= 400 * 1.42  # rotation grows the ≤400 px work image


def test_camera_views_follow_the_module_grid():
    qr = encode(TEXT, version=5, ecl="M")
    for module_px in (6, 20):
        img, geo = render(qr, module_px=module_px)
        views, placement = build_variants(img, groups=("camera",), qr=qr.with_geometry(geo))
        sizes = {n: v.shape[1] for _, n, v in views}
        modules = qr.size + 8
        assert abs(sizes["scale_3.0ppm"] / modules - 3.0) < 0.05
        assert abs(sizes["scale_2.0ppm"] / modules - 2.0) < 0.05
        assert placement.source == "geometry" and placement.pitch == module_px
        assert locate(img).pitch == pytest.approx(module_px) and locate(img).source == "zxing"


def test_qrverify_presets_and_sharp_semantics():
    presets = qrverify_presets()
    assert len(presets) == 37 and presets[0] == ("qv_raw", {})
    assert {tuple(sorted(kw.items())) for _, kw in presets[1:]} == {
        (("blur", bl), ("brightness", br), ("contrast", c))
        for c in (6.0, 3.0, 1.5) for bl in (0.5, 1.0, 1.5, 2.0) for br in (0.9, 1.2, 1.4)}
    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    assert qrverify_gray(np.zeros((600, 900, 3), np.float32)).shape == (300, 450)   # shorter side → 300
    assert qrverify_gray(np.zeros((100, 120), np.uint8)).shape == (100, 120)        # never enlarged
    assert np.array_equal(qrverify_preset(ramp, blur=0.5), ramp)                    # libvips: 1-tap mask
    c6 = qrverify_preset(ramp, contrast=6.0)[0]
    assert c6[128] == 128 and c6[140] == 200 and c6[100] == 0 and c6[150] == 255
    b14 = qrverify_preset(ramp, brightness=1.4)[0]
    assert b14[0] == 0 and 180 <= b14[128] <= 190 and b14[200] == 255                # L*·1.4, not x·1.4
    step = np.zeros((8, 9), np.uint8)
    step[:, 4] = 220
    assert np.allclose(qrverify_preset(step, blur=1.0)[4, 3:6], np.array([12, 20, 12]) / 44 * 220, atol=1)
