"""Codeword reshuffling: every result decodes to the payload, pins exactly the free bits, honours fixed modules."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aesthetic_qr.qr import QRInputError, encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.qr.reshuffle import reshuffle, reshuffle_url
from aesthetic_qr.scan.decoders import decode

QART_SHARE = {(3, "L"): 43, (3, "M"): 27, (3, "Q"): 13, (3, "H"): 2, (5, "L"): 63, (5, "M"): 46, (5, "Q"): 28,
              (5, "H"): 16, (10, "L"): 72, (10, "M"): 55, (10, "Q"): 37, (10, "H"): 28}


def decodes_everywhere(qr, text):
    """zxing must read the code at 4 px/module. WeChat's detector (without its CNN models) sometimes fails to
    locate a noise-like code at particular module sizes (seen: a v7-H code read at 3 and 5 px, missed at 4, 6
    and 8 px, while its plain twin reads at all five), so WeChat counts as reading the matrix at any of 3-6 px."""
    image, _ = render(qr, module_px=4, border=4)
    results = {name: bool(r.match) for name, r in decode(image, ("zxing", "wechat"), expected=text.encode()).items()}
    for module_px in (3, 5, 6):
        if results["wechat"]:
            break
        image, _ = render(qr, module_px=module_px, border=4)
        results["wechat"] = bool(decode(image, ("wechat",), expected=text.encode())["wechat"].match)
    return results


def disc(size, radius_ratio=0.25):
    y, x = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return (y - c) ** 2 + (x - c) ** 2 <= (radius_ratio * size) ** 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t), version=st.integers(1, 12),
       ecl=st.sampled_from("LMQH"),
       mask=st.integers(0, 7), seed=st.integers(0, 2 ** 16), fixed_radius=st.sampled_from([0.0, 0.15, 0.3]))
def test_random_targets_decode_and_pin_the_free_bits(text, version, ecl, mask, seed, fixed_radius):
    try:
        qr = encode(text, version=version, ecl=ecl, mask=mask)
    except QRInputError:
        return
    rng = np.random.default_rng(seed)
    target = rng.random((qr.size, qr.size)) < 0.5
    fixed = disc(qr.size, fixed_radius) if fixed_radius else None
    out, report = reshuffle(qr, target, rng.random((qr.size, qr.size)), fixed=fixed, seed=seed)
    assert out.text == text and out.version == version and out.ecl == ecl and out.mask == mask
    assert report.pinned == report.free_bits == qr.free_bits
    assert np.array_equal(out.matrix[qr.function_mask], qr.matrix[qr.function_mask])
    # pins are never undone by later ones: pinned and already-right modules show the target, impossible ones not
    shows_target = out.matrix.astype(bool) == target
    assert shows_target[np.isin(report.status, (1, 2))].all() and not shows_target[report.status == 3].any()
    assert report.matched == shows_target[report.status > 0].sum()
    assert decodes_everywhere(out, text) == {"zxing": True, "wechat": True}
    if fixed is not None:
        requested_fixed = fixed & (qr.module_block >= 0)
        unmet = requested_fixed & (out.matrix.astype(bool) != target)
        assert report.fixed_requested == requested_fixed.sum() and report.fixed_unmet == unmet.sum()


def test_more_free_bits_means_more_matching_modules():
    rng = np.random.default_rng(1)
    shares = []
    for ecl in "HQML":
        qr = encode("https://example.com/a", version=6, ecl=ecl, mask=3)
        target = rng.random((qr.size, qr.size)) < 0.5
        _, report = reshuffle(qr, target)
        shares.append(report.match_fraction)
    assert shares == sorted(shares) and shares[-1] > 0.8


def test_fixed_disc_is_honoured_up_to_the_free_bits():
    qr = encode("face", version=5, ecl="M", mask=1)
    target = np.ones((qr.size, qr.size), bool)  # a dark face region: far from a random-looking code
    fixed = disc(qr.size, 0.2)
    out, report = reshuffle(qr, target, fixed=fixed)
    requested = fixed & (qr.module_block >= 0)
    assert report.fixed_requested == requested.sum() < qr.free_bits
    assert report.fixed_unmet == 0
    assert out.matrix[requested].all()
    assert decodes_everywhere(out, "face") == {"zxing": True, "wechat": True}

    big = encode("a longer payload that leaves little room", version=5, ecl="H", mask=0)
    out, report = reshuffle(big, np.ones((big.size, big.size), bool), fixed=disc(big.size, 0.45))
    assert report.fixed_requested > big.free_bits and report.fixed_unmet > 0
    assert f"{report.fixed_unmet} could not be honoured" in report.to_text()


def test_dont_care_and_remainder_modules():
    qr = encode("remainder", version=2, ecl="L", mask=5)  # version 2 has 7 remainder bits
    target = np.ones((qr.size, qr.size), bool)
    dont_care = np.zeros_like(target)
    dont_care[: qr.size // 2] = True
    out, report = reshuffle(qr, target, dont_care=dont_care)
    remainder = ~qr.function_mask & (qr.module_block < 0)
    assert remainder.sum() == 7
    assert out.matrix[remainder & ~dont_care].all()
    assert report.requested == ((qr.module_block >= 0) & ~dont_care).sum()
    assert decodes_everywhere(out, "remainder")["zxing"]


@pytest.mark.parametrize("version, ecl", sorted(QART_SHARE))
def test_url_fragment_mode_controls_at_least_qarts_share(version, ecl):
    url = "https://example.com/"  # 20 bytes, as in QArt's table
    rng = np.random.default_rng(version)
    size = 17 + 4 * version
    out, report = reshuffle_url(url, version, ecl, 2, rng.random((size, size)) < 0.5)
    share = 100 * report.pinned / (out.module_block >= 0).sum()
    assert int(share + 0.5) >= QART_SHARE[version, ecl]  # QArt's table rounds to whole percent
    assert report.pinned == report.free_bits
    assert out.text.startswith(url + "#") and out.text[len(url) + 1:].isdigit()
    assert decodes_everywhere(out, out.text) == {"zxing": True, "wechat": True}


def test_target_shape_mismatch_is_a_clear_error():
    qr = encode("x", version=1)
    with pytest.raises(QRInputError, match="resample"):
        reshuffle(qr, np.zeros((25, 25)))
