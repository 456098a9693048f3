"""Reshuffle benchmarks: controlled modules vs QArt's table, agreement with pictures, time per reshuffle.

    python bench/bench_reshuffle.py
"""

import statistics
import time

import numpy as np
from skimage import data
from skimage.metrics import structural_similarity

from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import fit, luminance
from aesthetic_qr.qr.render import render
from aesthetic_qr.qr.reshuffle import reshuffle, reshuffle_url

URL = "https://example.com/"  # 20 bytes, as in QArt's table
QART = {(3, "L"): 43, (3, "M"): 27, (3, "Q"): 13, (3, "H"): 2, (5, "L"): 63, (5, "M"): 46, (5, "Q"): 28,
        (5, "H"): 16, (10, "L"): 72, (10, "M"): 55, (10, "Q"): 37, (10, "H"): 28}


def controlled_modules() -> None:
    rng = np.random.default_rng(0)
    print("Controlled modules, share of data+EC modules (20-byte payload, random target)")
    print(f"{'code':>5} | {'QArt':>5} | {'ours, URL#digits':>16} | {'ours, padding only (URL)':>24} | "
          f"{'padding only (text)':>19}")
    print("-" * 84)
    for (version, ecl), qart in QART.items():
        size = 17 + 4 * version
        target = rng.random((size, size)) < 0.5
        url_code, url_report = reshuffle_url(URL, version, ecl, 2, target)
        data_modules = (url_code.module_block >= 0).sum()
        _, pad_report = reshuffle(encode(URL, version=version, ecl=ecl, mask=2), target)
        _, text_report = reshuffle(encode("twenty chars of text", version=version, ecl=ecl, mask=2), target)
        assert url_report.pinned == url_report.free_bits and pad_report.pinned == pad_report.free_bits
        print(f"{version:>3}-{ecl} | {qart:>4}% | {100 * url_report.pinned / data_modules:>15.1f}% | "
              f"{100 * pad_report.pinned / data_modules:>23.1f}% | {100 * text_report.pinned / data_modules:>18.1f}%")


def ssim_to_picture(qr, picture) -> float:
    image, geo = render(qr, qr.geometry.module_px, qr.geometry.border, multiple=8)
    return structural_similarity(luminance(image), luminance(fit(picture, geo)), data_range=1.0)


def agreement() -> None:
    pictures = {"astronaut": data.astronaut(), "camera": data.camera(), "coffee": data.coffee(),
                "chelsea": data.chelsea()}
    print("\nAgreement with the picture, v5-L, mask search (share of data modules equal to the target; SSIM of "
          "the blueprint vs the picture)")
    print(f"{'picture':>10} | {'plain match':>11} | {'reshuffled':>10} | {'URL mode':>8} | {'plain SSIM':>10} | "
          f"{'reshuffled SSIM':>15}")
    print("-" * 82)
    for name, pic in pictures.items():
        pic = (np.stack([pic] * 3, -1) if pic.ndim == 2 else pic).astype(np.float32) / 255
        result = follow_picture(URL, pic, version=5, ecl="L", mask=None, module_px=8)
        url_result = follow_picture(URL, pic, version=5, ecl="L", mask=None, module_px=8, url_fragment=True)
        plain = encode(URL, version=5, ecl="L", mask=result.qr.mask).with_geometry(result.qr.geometry)
        sel = plain.module_block >= 0
        plain_match = (plain.matrix.astype(bool) == result.target)[sel].mean()
        ours = (result.qr.matrix.astype(bool) == result.target)[sel].mean()
        url = (url_result.qr.matrix.astype(bool) == url_result.target)[sel].mean()
        print(f"{name:>10} | {plain_match:>11.3f} | {ours:>10.3f} | {url:>8.3f} | "
              f"{ssim_to_picture(plain, pic):>10.3f} | {ssim_to_picture(result.qr, pic):>15.3f}")


def timing() -> None:
    rng = np.random.default_rng(1)
    print("\nTime per reshuffle (one mask, random target, median of 7; full = picture in, 8-mask search)")
    print(f"{'code':>5} | {'reshuffle ms':>12} | {'full ms':>8}")
    print("-" * 32)
    pic = data.astronaut().astype(np.float32) / 255
    for version in (5, 10, 20):
        qr = encode("https://example.com/a", version=version, ecl="M", mask=3)
        target = rng.random((qr.size, qr.size)) < 0.5
        prio = rng.random((qr.size, qr.size))
        reshuffle(qr, target, prio)
        times = []
        for _ in range(7):
            t = time.perf_counter()
            reshuffle(qr, target, prio)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        follow_picture("https://example.com/a", pic, version=version, ecl="M", mask=None, module_px=6)
        full = time.perf_counter() - t
        print(f"{version:>3}-M | {1000 * statistics.median(times):>12.1f} | {1000 * full:>8.0f}")


if __name__ == "__main__":
    controlled_modules()
    agreement()
    timing()
