"""Verification costs: one decode per decoder, module analysis, and the full simulated-camera suite
(21 camera views + 37 qr-verify presets, both decoders, decodes in a thread pool), at 512² and 1024².

    python bench/bench_verify.py [--repeats 5]

Three images per size: a plain version-5-M code (every view decodes), a "centre-square" art-like render
(some views fail) and a blank page (every view fails: failed WeChat searches are the expensive case).
"""

import argparse
import os

import numpy as np
from timing import median_ms

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.analysis import analyze
from aesthetic_qr.scan.camera import build_variants, run_suite
from aesthetic_qr.scan.decoders import decode_gray, to_gray_u8

PAYLOAD = "https://example.com/aesthetic-qr"


def images(side: int):
    qr = encode(PAYLOAD, version=5, ecl="M")
    module_px = side // (qr.size + 8)
    out = []
    for style in ("plain", "centre-square"):
        img, geo = render(qr, module_px=module_px, border=4, style=style, multiple=side)
        img = img[:side, :side]
        out.append((style, img, qr.with_geometry(geo)))
    out.append(("blank", np.ones((side, side, 3), np.float32), None))
    return out


def row(label: str, img: np.ndarray, qr, repeats: int) -> str:
    gray = to_gray_u8(img)
    t_zx = median_ms(lambda: decode_gray(gray, "zxing", PAYLOAD), repeats)
    t_pure = median_ms(lambda: decode_gray(gray, "zxing_pure", PAYLOAD), repeats)
    t_wc = median_ms(lambda: decode_gray(gray, "wechat", PAYLOAD), repeats)
    t_an = median_ms(lambda: analyze(img, qr), repeats) if qr is not None else float("nan")
    t_views = median_ms(lambda: build_variants(img, qr=qr), repeats)
    t_suite = median_ms(lambda: run_suite(img, PAYLOAD, qr=qr), repeats)
    t_one = median_ms(lambda: run_suite(img, PAYLOAD, qr=qr, workers=1), max(1, repeats // 2))
    res = run_suite(img, PAYLOAD, qr=qr)
    return (f"{label:>22} | {t_zx:8.2f} | {t_pure:10.2f} | {t_wc:8.2f} | {t_an:8.2f} | {t_views:6.1f} | "
            f"{t_suite:8.1f} | {t_one:11.1f} | {res.ssr['zxing']:.2f} / {res.ssr['wechat']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPU(s); median of {args.repeats} runs after one warm-up\n")
    header = (f"{'image':>22} | {'zxing':>8} | {'zxing pure':>10} | {'wechat':>8} | {'analysis':>8} | "
              f"{'views':>6} | {'suite':>8} | {'suite 1 thr':>11} | ssr zxing / wechat")
    print(header)
    print("-" * len(header))
    for side in (512, 1024):
        for name, img, qr in images(side):
            print(row(f"{name} {side}²", img, qr, args.repeats))
    print("\nAll times in ms. 'views' builds the 58 degraded images; 'suite' = views + 116 decodes on "
          f"{min(4, os.cpu_count() or 1)} threads; 'suite 1 thr' = the same on one thread.")


if __name__ == "__main__":
    main()
