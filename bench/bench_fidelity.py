"""`art` (ARTUP + the error-correction budget, art/fidelity.py) against a plain code and ARTUP, 1:1 on the same
pictures, payloads and placement, verified with the full suite.

    OMP_NUM_THREADS=1 python bench/bench_fidelity.py            # 12 skimage pictures × 2 payloads
    OMP_NUM_THREADS=1 python bench/bench_fidelity.py --quick    # astronaut and coffee only
    ... --methods plain,artup,art,art_r2 --payloads short --save /tmp/fid   # a subset; PNGs and JSON rows

Pictures: scikit-image's astronaut, camera, chelsea, coffee, rocket, immunohistochemistry, hubble_deep_field,
brick, grass, gravel, logo and colorwheel, centre-cropped to a square and resized to 512² (area / bicubic); the
defaults of `art` were never tuned on them. Payloads: a 44-character and an 87-character URL.

Every method draws its code at the same place: the symbol plus a 1-module quiet strip centred in the picture, as
large as fits (`qr.render.placement`, whole pixels per module); every pixel outside it is the picture's.
  plain    the standard code (level M, mask by penalty) in black and white, the strip white
  reshuffle  the code (level M) whose free bits follow the picture (`follow_picture`, ARTUP's priority; the
           QArt / ARTUP binary stage), in black and white, the strip white; halftone, pixel and diffqrcoder
           start from the same code
  halftone the Text2QR / Face2QR adaptive-halftone blueprint (`halftone_blueprint`)
  pixel    pixel-space SRL refinement (`pixel_refine`, ours: camera degradations in the loss, suite-gated)
  diffqrcoder  a re-implementation of DiffQRCoder's published personalisation script (its settings: Adam on
           the pixels, SRL as released + MSE, 1000 steps, finder corners pasted; see DIFFQR_*), not verified
  artup    `artup_until_scans` (its defaults: level M, p_min 0.85 escalating, camera-group check) run on the
           crop where the code goes (module size as above, border 1) and pasted back
  art      `art` with its defaults (robustness 0, escalating until the full suite passes)
  art_rK   `art` starting at robustness level K (escalating from there)
  art_nopolish   `art` without the SSIM polish of its passing result (polish_iterations=0)
  art_nobudget   `art` with budget=False (no codewords spent: ARTUP's stages, art's placement and verification)
  art_crisp  `art` with ARTUP's crisp function patterns and strip only (function_style="crisp")
  art_fullstrip  `art` with the light strip drawn all the way round the symbol (strip="full"), not only beside
           the finders
  art_zbar `art` verified with zbar too (decoders zxing, wechat and zbar: each must pass the suite)
  art_scale08  `art` with the code and its strip on 0.8 of the shorter side (code_scale=0.8; not 1:1 with the rest)
  art_M / art_Q / art_H   `art` with one error-correction level only
  art_l0 … art_l8  `art` held at one robustness level of its ladder (no climbing): the knob's Pareto table
SSIM: skimage `structural_similarity` on the whole picture, RGB, data range 255, output vs input. SSR: the full
`run_suite` (21 camera views + 37 qr-verify presets), payload checked, per decoder. zbar: the same 58 views read by
a third decoder that neither tuning nor `art`'s verification ever used (`apt install libzbar0`, `pip install
pyzbar`), "-" when it is not installed; not part of pass. pass: strict clean decode with
zxing and WeChat and SSR ≥ 95 % on both. s: wall time to make the output, verification included for art (its
loop verifies), and ARTUP's own camera-group checks included for artup; the final full-suite check of the table
is not timed. Run with OMP_NUM_THREADS=1; torch runs one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402

from aesthetic_qr.art.artup import ArtupConfig, artup_until_scans  # noqa: E402
from aesthetic_qr.art.blueprint import halftone_blueprint  # noqa: E402
from aesthetic_qr.art.fidelity import DEFAULT_LEVELS, ArtConfig, art  # noqa: E402
from aesthetic_qr.art.follow import follow_picture  # noqa: E402
from aesthetic_qr.art.pixel_refine import pixel_refine  # noqa: E402
from aesthetic_qr.losses.srl import SRLConfig, srl  # noqa: E402
from aesthetic_qr.qr import encode  # noqa: E402
from aesthetic_qr.qr.pixels import load_picture, ssim_rgb  # noqa: E402
from aesthetic_qr.qr.render import placement  # noqa: E402
from aesthetic_qr.scan.camera import run_suite  # noqa: E402
from aesthetic_qr.scan.decoders import available, decode  # noqa: E402

PICTURES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
            "brick", "grass", "gravel", "logo", "colorwheel")
QUICK = ("astronaut", "coffee")
PAYLOADS = {"short": "https://github.com/aesthetic-qr/aesthetic-qr",
            "long": "https://example.org/aesthetic-qr/docs/getting-started/installation?lang=en&ref=readme-1"}
SIDE = 512
QUIET = 1


def square(img: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Centre square crop, resized to side² (area when shrinking, bicubic when enlarging), uint8 RGB."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        a = img[:, :, 3:4].astype(np.float32) / 255
        img = (img[:, :, :3] * a + 255 * (1 - a) + 0.5).astype(np.uint8)
    h, w = img.shape[:2]
    s = min(h, w)
    img = np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA if s > side else cv2.INTER_CUBIC)


def picture(name: str) -> np.ndarray:
    return square(np.asarray(getattr(data, name)()))


def _crop_box(pic: np.ndarray, n: int):
    p, ox, oy = placement(pic.shape[:2], n, QUIET)
    q = QUIET * p
    return p, (oy - q, oy + n * p + q, ox - q, ox + n * p + q), (ox, oy)


def _placed_geometry(qr, p, origin, pic):
    from aesthetic_qr.qr.code import Geometry
    return qr.with_geometry(Geometry(p, QUIET, origin, (pic.shape[1], pic.shape[0])))


def _black_and_white(qr, p: int) -> np.ndarray:
    """The symbol and its QUIET strip as a uint8 RGB crop: black and white modules, the strip white."""
    q = QUIET * p
    out = np.full(((qr.size + 2 * QUIET) * p,) * 2 + (3,), 255, np.uint8)
    out[q:q + qr.size * p, q:q + qr.size * p] = (np.kron(1 - qr.matrix, np.ones((p, p), np.uint8)) * 255)[:, :, None]
    return out


def _paste(pic: np.ndarray, crop: np.ndarray, box) -> np.ndarray:
    """`pic` with the float [0, 1] (or uint8) `crop` written into `box`."""
    y0, y1, x0, x1 = box
    if crop.dtype != np.uint8:
        crop = (np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8)
    if crop.shape[:2] != (y1 - y0, x1 - x0):
        raise RuntimeError(f"a method drew {crop.shape[:2]} for a crop of {(y1 - y0, x1 - x0)}")
    out = pic.copy()
    out[y0:y1, x0:x1] = crop
    return out


def _row(pic: np.ndarray, crop: np.ndarray, qr, p: int, box, origin, t0: float, detail: str) -> dict:
    """A method's result: `crop` pasted into the picture, the code placed, the time since `t0`."""
    return {"image": _paste(pic, crop, box), "qr": _placed_geometry(qr, p, origin, pic),
            "seconds": time.perf_counter() - t0, "detail": f"v{qr.version}{qr.ecl} {detail}".rstrip()}


def _on_reshuffled(pic: np.ndarray, text: str, draw) -> dict:
    """A method drawn from the code (level M) reshuffled towards the part of the picture it covers:
    `draw(crop as float, code at the crop's geometry, module px)` → (drawn crop, detail)."""
    t0 = time.perf_counter()
    n = encode(text, ecl="M", mask=0).size
    p, box, origin = _crop_box(pic, n)
    y0, y1, x0, x1 = box
    crop = pic[y0:y1, x0:x1].astype(np.float32) / 255
    qr = follow_picture(text, crop, ecl="M", module_px=p, border=QUIET, multiple=1, priority="artup").qr
    drawn, detail = draw(crop, qr, p)
    return _row(pic, drawn, qr, p, box, origin, t0, detail)


def run_plain(pic: np.ndarray, text: str) -> dict:
    t0 = time.perf_counter()
    qr = encode(text, ecl="M")
    p, box, origin = _crop_box(pic, qr.size)
    return _row(pic, _black_and_white(qr, p), qr, p, box, origin, t0, "")


def run_reshuffle(pic: np.ndarray, text: str) -> dict:
    return _on_reshuffled(pic, text, lambda crop, qr, p: (_black_and_white(qr, p), f"m{qr.mask}"))


def run_halftone(pic: np.ndarray, text: str) -> dict:
    return _on_reshuffled(pic, text, lambda crop, qr, p: (halftone_blueprint(crop, qr), f"m{qr.mask}"))


def run_pixel(pic: np.ndarray, text: str) -> dict:
    def draw(crop, qr, p):
        refined = pixel_refine(crop, qr)
        return refined.image, f"{refined.iterations} steps"
    return _on_reshuffled(pic, text, draw)


# DiffQRCoder's published personalisation (run_personalized_qrcode.py; facts in ../shared/notes/methods.md): Adam
# on the RGB pixels from the picture, lr 0.01, 1000 steps, 1e12 · SRL (its released form) + 1e8 · MSE to the
# picture, pixels clamped to [0, 1] after each step, then the code's three finder corners (8 × 8 modules less one
# pixel) pasted from the black-and-white code. It has no quiet zone: the strip stays the picture.
DIFFQR_STEPS, DIFFQR_LR, DIFFQR_CODE_WEIGHT, DIFFQR_CONTENT_WEIGHT = 1000, 0.01, 1e12, 1e8


def _personalised(crop: np.ndarray, qr, p: int) -> tuple[np.ndarray, str]:
    target = torch.from_numpy(crop).permute(2, 0, 1)[None]
    x = target.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=DIFFQR_LR)
    code_loss = SRLConfig.public_code()
    for _ in range(DIFFQR_STEPS):
        opt.zero_grad()
        loss = (DIFFQR_CODE_WEIGHT * srl(x, qr, code_loss).sum()
                + DIFFQR_CONTENT_WEIGHT * torch.nn.functional.mse_loss(x, target))
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    out = x.detach()[0].permute(1, 2, 0).numpy()
    code = _black_and_white(qr, p).astype(np.float32) / 255
    q, far, corner = QUIET * p, QUIET * p + qr.size * p, 8 * p - 1
    for rows, cols in ((slice(q, q + corner), slice(q, q + corner)), (slice(q, q + corner), slice(far - corner, far)),
                       (slice(far - corner, far), slice(q, q + corner))):
        out[rows, cols] = code[rows, cols]
    return out, f"{DIFFQR_STEPS} steps"


def run_diffqrcoder(pic: np.ndarray, text: str) -> dict:
    return _on_reshuffled(pic, text, _personalised)


def run_artup(pic: np.ndarray, text: str) -> dict:
    t0 = time.perf_counter()
    n = encode(text, ecl="M", mask=0).size
    p, box, origin = _crop_box(pic, n)
    y0, y1, x0, x1 = box
    res, attempts = artup_until_scans(pic[y0:y1, x0:x1], text, config=ArtupConfig(module_px=p, border=QUIET,
                                                                                    multiple=1))
    return _row(pic, res.image, res.qr, p, box, origin, t0, f"p_min {attempts[-1]['p_min']:g}")


def run_art(pic: np.ndarray, text: str, **kw) -> dict:
    r = art(pic, text, ArtConfig(**kw))
    j = r.to_json()
    return {"image": r.image, "qr": r.qr, "seconds": r.seconds, "json": j,
            "detail": f"v{j['version']}{j['ecl']} m{j['mask']} lvl {j['robustness']} spent {j['errors_per_block']}"
                      f"/{j['correctable']}{' polished' if j['polished'] else ''}"}


METHODS = {
    "plain": run_plain,
    "reshuffle": run_reshuffle,
    "halftone": run_halftone,
    "pixel": run_pixel,
    "diffqrcoder": run_diffqrcoder,
    "artup": run_artup,
    "art": run_art,
    "art_r2": lambda pic, text: run_art(pic, text, robustness=2),
    "art_r4": lambda pic, text: run_art(pic, text, robustness=4),
    "art_nopolish": lambda pic, text: run_art(pic, text, polish_iterations=0),
    "art_nobudget": lambda pic, text: run_art(pic, text, budget=False),
    "art_crisp": lambda pic, text: run_art(pic, text, function_style="crisp"),
    "art_fullstrip": lambda pic, text: run_art(pic, text, strip="full"),
    "art_zbar": lambda pic, text: run_art(pic, text, decoders=("zxing", "wechat", "zbar")),
    "art_scale08": lambda pic, text: run_art(pic, text, code_scale=0.8),
    "art_M": lambda pic, text: run_art(pic, text, ecls=("M",)),
    "art_Q": lambda pic, text: run_art(pic, text, ecls=("Q",)),
    "art_H": lambda pic, text: run_art(pic, text, ecls=("H",)),
}
# the fidelity ↔ robustness knob: art held at one robustness level (no climbing), level by level
METHODS.update({f"art_l{k}": (lambda pic, text, k=k: run_art(pic, text, robustness=k, escalate=False))
                for k in range(len(DEFAULT_LEVELS))})


def evaluate(pic: np.ndarray, row: dict) -> dict:
    img, qr = row["image"], row["qr"]
    clean = decode(img, ("zxing", "wechat"), expected=qr.payload)
    suite = run_suite(img, qr.payload, ("zxing", "wechat") + (("zbar",) if available("zbar")[0] else ()), qr=qr)
    outside = np.ones(pic.shape[:2], bool)
    g = qr.geometry
    q = int(round(QUIET * g.module_px))
    side = qr.size * g.module_px
    outside[g.origin[1] - q:g.origin[1] + side + q, g.origin[0] - q:g.origin[0] + side + q] = False
    return {"ssim": ssim_rgb(pic, img), "zxing": suite.ssr["zxing"], "wechat": suite.ssr["wechat"],
            "zbar": suite.ssr.get("zbar"), "clean": all(r.match for r in clean.values()),
            "pass": all(r.match for r in clean.values()) and min(suite.ssr["zxing"], suite.ssr["wechat"]) >= 0.95,
            "outside_untouched": bool((img[outside] == pic[outside]).all())}


def _share(v: float | None) -> str:
    return f"{'-':>6s}" if v is None else f"{v:6.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="astronaut and coffee only")
    ap.add_argument("--pictures", default="", help="comma-separated skimage.data names (or file stems with --dir)")
    ap.add_argument("--dir", default="", help="use the PNG/JPEG files of this directory instead (e.g. a tuning set)")
    ap.add_argument("--payloads", default="short,long")
    ap.add_argument("--methods", default="plain,artup,art,art_crisp,art_r2,art_nobudget")
    ap.add_argument("--save", default="", help="directory for PNGs and rows.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.dir:
        files = sorted(f for f in os.listdir(a.dir) if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))
        sources = {os.path.splitext(f)[0]: os.path.join(a.dir, f) for f in files}
        names = tuple(a.pictures.split(",")) if a.pictures else tuple(sources)
        if a.quick:
            names = names[:2]
    else:
        sources = {}
        names = QUICK if a.quick else (tuple(a.pictures.split(",")) if a.pictures else PICTURES)
    methods = a.methods.split(",")
    if a.save:
        os.makedirs(a.save, exist_ok=True)
    rows = []
    print(f"{'picture':21s} {'payload':7s} {'method':13s} {'SSIM':>6s} {'zxing':>6s} {'WeChat':>6s} {'zbar':>6s} "
          f"{'pass':>4s} {'s':>5s}  detail")
    for name in names:
        pic = square(load_picture(sources[name])) if name in sources else picture(name)
        for pl in a.payloads.split(","):
            for m in methods:
                made = METHODS[m](pic, PAYLOADS[pl])
                ev = evaluate(pic, made)
                row = {"picture": name, "payload": pl, "method": m, **ev, "seconds": made["seconds"],
                       "detail": made["detail"], "art": made.get("json")}
                rows.append(row)
                print(f"{name:21s} {pl:7s} {m:13s} {ev['ssim']:6.3f} {ev['zxing']:6.3f} {ev['wechat']:6.3f} "
                      f"{_share(ev['zbar'])} {'yes' if ev['pass'] else 'NO':>4s} {made['seconds']:5.2f}  "
                      f"{made['detail']}"
                      f"{'' if ev['outside_untouched'] else '  (pixels outside the code changed!)'}", flush=True)
                if a.save:
                    cv2.imwrite(os.path.join(a.save, f"{name}_{pl}_{m}.png"), made["image"][:, :, ::-1])
    print()
    print(f"{'mean':21s} {'payload':7s} {'method':13s} {'SSIM':>6s} {'zxing':>6s} {'WeChat':>6s} {'zbar':>6s} "
          f"{'pass':>6s} {'s':>5s} {'max s':>5s}")
    for pl in a.payloads.split(",") + ["all"]:
        for m in methods:
            sel = [r for r in rows if r["method"] == m and (pl == "all" or r["payload"] == pl)]
            if not sel:
                continue
            def mean(k, sel=sel):
                return float(np.mean([r[k] for r in sel]))

            zbar = None if any(r["zbar"] is None for r in sel) else mean("zbar")
            print(f"{'':21s} {pl:7s} {m:13s} {mean('ssim'):6.3f} {mean('zxing'):6.3f} {mean('wechat'):6.3f} "
                  f"{_share(zbar)} {sum(r['pass'] for r in sel):>3d}/{len(sel):<2d} {mean('seconds'):5.2f} "
                  f"{max(r['seconds'] for r in sel):5.2f}")
    if a.save:
        with open(os.path.join(a.save, "rows.json"), "w") as f:
            json.dump(rows, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
