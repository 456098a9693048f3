"""ARTUP against the simpler picture codes, on scikit-image pictures, with the full verification suite.

    python bench/bench_artup.py            # the table below, a few minutes on 2 cores
    python bench/bench_artup.py --quick    # astronaut and coffee at v5-M only
    python bench/bench_artup.py --sweep    # also ARTUP's p_min / adjust / global_weight trade-off on 4 cases
    python bench/bench_artup.py --pixel    # also pixel-space SRL refinement (slow)

Methods, all at the same geometry (the largest whole module size that keeps the image within 512 px, 4-module
border, side a multiple of 8), and the same picture-following code where one is used:
  plain     the standard code rendered (the picture is ignored: the SSIM floor)
  qart      the code reshuffled towards the picture (ARTUP binary stage / QArt) and rendered
  halftone  the reshuffled code as a Text2QR/Face2QR adaptive-halftone blueprint (centre third of each module
            set to the bit, the picture polarised elsewhere)
  artup     `art.artup.artup` with its defaults (`ArtupConfig()`)
  pixel     `art.pixel_refine.pixel_refine` on the reshuffled code (with --pixel: tens of seconds per case)
SSR: scan success rate over the full simulated-camera suite (21 camera views + qr-verify's 37 presets), payload
checked, per decoder. SSIM: Rec.601 luminance of the result vs the picture fitted to the same geometry (whole
image, quiet zone included). Time: producing the image (not verifying it), seconds.
"""

import argparse
import sys
import time

import numpy as np
from skimage import data
from skimage.metrics import structural_similarity

from aesthetic_qr.art.artup import ArtupConfig, artup, auto_module_px
from aesthetic_qr.art.blueprint import halftone_blueprint
from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.art.pixel_refine import pixel_refine
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.pixels import fit, luminance
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.camera import run_suite

BORDER, MULTIPLE, SIZE_PX = 4, 8, 512


def rgb(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 4:  # composite over white
        a = a[:, :, :3] * a[:, :, 3:] + (1 - a[:, :, 3:])
    return np.clip(a, 0, 1)


def pictures() -> dict[str, np.ndarray]:
    return {
        "astronaut": rgb(data.astronaut()),
        "coffee": rgb(data.coffee()),
        "chelsea": rgb(data.chelsea()),
        "camera": rgb(data.camera()),
        "dark": rgb(data.astronaut()) * 0.3,            # an under-exposed photograph
        "moon": rgb(data.moon()),                        # dark, low contrast
        "horse": rgb(data.horse()),                      # bright, logo-like silhouette
        "logo": rgb(data.logo()),
    }


def measure(image, qr, picture) -> dict:
    suite = run_suite(image, qr.text, qr=qr)
    ssim = structural_similarity(luminance(image), luminance(picture), data_range=1.0)
    return {"z": suite.ssr["zxing"], "w": suite.ssr["wechat"], "ssim": ssim}


def methods(picture: np.ndarray, text: str, version: int, ecl: str, pixel: bool = False) -> list[tuple[str, dict]]:
    mpx = auto_module_px(17 + 4 * version, BORDER, SIZE_PX)
    rows = []
    t = time.perf_counter()
    plain = encode(text, version=version, ecl=ecl)
    image, geo = render(plain, mpx, BORDER, multiple=MULTIPLE)
    dt = time.perf_counter() - t
    plain = plain.with_geometry(geo)
    fitted = fit(picture, geo)
    rows.append(("plain", {**measure(image, plain, fitted), "t": dt}))

    t = time.perf_counter()
    follow = follow_picture(text, picture, version=version, ecl=ecl, module_px=mpx, border=BORDER,
                            multiple=MULTIPLE, priority="artup")
    image, _ = render(follow.qr, mpx, BORDER, multiple=MULTIPLE)
    dt_follow = time.perf_counter() - t
    rows.append(("qart", {**measure(image, follow.qr, fitted), "t": dt_follow}))

    t = time.perf_counter()
    image = halftone_blueprint(picture, follow.qr)
    rows.append(("halftone", {**measure(image, follow.qr, fitted), "t": dt_follow + time.perf_counter() - t}))

    t = time.perf_counter()
    result = artup(picture, text, config=ArtupConfig(version=version, ecl=ecl, module_px=mpx, border=BORDER,
                                                     multiple=MULTIPLE))
    dt = time.perf_counter() - t
    rows.append(("artup", {**measure(result.image, result.qr, result.picture), "t": dt, "p": result.mean_p}))

    if pixel:
        t = time.perf_counter()
        refined = pixel_refine(picture, follow.qr)
        rows.append(("pixel", {**measure(refined.image, follow.qr, fitted), "t": dt_follow + time.perf_counter() - t}))
    return rows


def table(cases, pics, pixel: bool = False) -> dict[str, list[dict]]:
    print(f"{'picture':>10} {'code':>6} | {'method':>8} | {'SSR zxing':>9} {'WeChat':>7} | {'SSIM':>5} | {'time s':>6}")
    print("-" * 68)
    per_method: dict[str, list[dict]] = {}
    for name, version, ecl in cases:
        text = f"https://example.com/{name}"
        for method, r in methods(pics[name], text, version, ecl, pixel):
            per_method.setdefault(method, []).append(r)
            print(f"{name:>10} {version:>3}-{ecl:<2} | {method:>8} | {100 * r['z']:>8.0f}% {100 * r['w']:>6.0f}% | "
                  f"{r['ssim']:>5.3f} | {r['t']:>6.2f}", flush=True)
        print("-" * 68)
    print(f"{'mean':>17} | {'method':>8} | {'SSR zxing':>9} {'WeChat':>7} | {'SSIM':>5} | {'time s':>6} | "
          f"{'cases ≥95% both':>15}")
    for method, rs in per_method.items():
        both = sum(r["z"] >= 0.95 and r["w"] >= 0.95 for r in rs)
        print(f"{'':>17} | {method:>8} | {100 * np.mean([r['z'] for r in rs]):>8.1f}% "
              f"{100 * np.mean([r['w'] for r in rs]):>6.1f}% | {np.mean([r['ssim'] for r in rs]):>5.3f} | "
              f"{np.mean([r['t'] for r in rs]):>6.2f} | {both:>7} of {len(rs)}")
    return per_method


def sweep(pics) -> None:
    """ARTUP's robustness / fidelity trade-off on astronaut and coffee, v5-M and v6-M."""
    cases = [(n, v) for n in ("astronaut", "coffee") for v in (5, 6)]
    settings = [
        {"adjust": "probability", "global_weight": 0.0, "sigma_t": 0.1, "p_min": 0.95, "quiet_width": None,
         "camera_blur": 0.0},                                           # closest to the paper
        {"adjust": "probability", "global_weight": 0.0, "sigma_t": 0.25, "p_min": 0.95, "quiet_width": None,
         "camera_blur": 0.0},
        {"adjust": "probability", "p_min": 0.85},
        {"adjust": "blend", "p_min": 0.85, "camera_blur": 0.0},
        {"adjust": "blend", "p_min": 0.8},
        {},                                                             # the defaults
        {"adjust": "blend", "p_min": 0.9},
        {"adjust": "blend", "p_min": 0.85, "quiet_width": None},
        {"adjust": "blend", "p_min": 0.85, "global_weight": 0.0},
    ]
    print("\nARTUP settings (mean over astronaut/coffee × v5/v6-M; min over the four cases in brackets)")
    print(f"{'settings':>90} | {'SSR zxing':>13} | {'WeChat':>13} | {'SSIM':>5}")
    for kw in settings:
        zs, ws, ss = [], [], []
        for name, version in cases:
            res = artup(pics[name], f"https://example.com/{name}", config=ArtupConfig(version=version, ecl="M", **kw))
            m = measure(res.image, res.qr, res.picture)
            zs.append(m["z"])
            ws.append(m["w"])
            ss.append(m["ssim"])
        label = ", ".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
        print(f"{label:>90} | {100 * np.mean(zs):>5.1f}% ({100 * min(zs):>3.0f}%) | "
              f"{100 * np.mean(ws):>5.1f}% ({100 * min(ws):>3.0f}%) | {np.mean(ss):>5.3f}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="astronaut and coffee at v5-M only")
    ap.add_argument("--sweep", action="store_true", help="also ARTUP's parameter trade-off")
    ap.add_argument("--pixel", action="store_true", help="also pixel-space SRL refinement (slow)")
    args = ap.parse_args(argv)
    pics = pictures()
    if args.quick:
        cases = [("astronaut", 5, "M"), ("coffee", 5, "M")]
    else:
        cases = [(name, 5, "M") for name in pics] + [
            ("astronaut", 6, "M"), ("coffee", 6, "M"),
            ("astronaut", 3, "L"), ("coffee", 4, "Q"), ("chelsea", 7, "M"), ("camera", 8, "H"),
            ("astronaut", 10, "M"),
        ]
    table(cases, pics, pixel=args.pixel)
    if args.sweep:
        sweep(pics)


if __name__ == "__main__":
    sys.exit(main())
