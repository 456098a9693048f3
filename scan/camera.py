"""Simulated-camera scan suite: many degraded views of one image, each decoded by real decoders.

The scan success rate (SSR) of a decoder is the fraction of views whose decode returned the expected payload
(strict: a decode of some other text, or a decode when nothing matches, does not count).

Two groups of views, both deterministic for a given `seed`:

camera  — what a phone does to a printed or on-screen code. Everything starts from a working copy of the image
          at most `work_px` (400) pixels on its longer side (area-averaged), and sizes that depend on the code
          are given in modules, so the suite behaves the same for a 512² and a 1024² render:
          scale_3.0ppm / 2.5 / 2.0   area-downscale to that many pixels per module
          blur_0.20m / 0.35m         Gaussian blur, σ in modules (σ = 0.2 and 0.35 module)
          jpeg_q30 / q50 / q70       JPEG round trip at 3.5 px/module (colour, 4:2:0, cv2.imencode)
          brightness_0.6 / 1.4       x·b, clipped
          contrast_0.6 / 1.4         (x − 0.5)·c + 0.5, clipped
          noise_0.08                 additive Gaussian noise σ = 0.08 (per channel, seeded)
          rotate_15 / 30 / 45        in-plane rotation, canvas expanded, white fill
          tilt_x / tilt_y            perspective: one side of the image shortened to 75 % (a 30–40° tilt)
          occlusion                  a flat skin-tone patch, 12 % of the symbol side, over data modules away
                                     from finders, timing and format strips (position drawn from the seed)
          phone_a                    3 ppm, 8° rotation, blur σ 0.6 px, brightness 0.8, noise 0.03, JPEG 50
          phone_b                    tilt, 2.5 ppm, contrast 0.7, JPEG 40
qrverify — the 37 presets of antfu/qr-verify (the SSR tool DiffQRCoder reports), see `qrverify_presets`.

qr-verify's own rule is "pass if ANY preset decodes ANY text"; `SuiteResult.qrverify_pass` applies that rule
with the payload checked, and the per-preset outcomes give a graded rate as well.

Decodes run in a small thread pool (zxing-cpp and OpenCV both release the GIL), one WeChat detector per thread.

Cost (2 cores, bench/bench_verify.py): views are built at ≤ 400 px (qr-verify's at 300 px), so the input size
barely matters. A code that scans everywhere costs ~130 ms for all 58 views × 2 decoders; every view that fails
costs WeChat 20–95 ms (it retries binarisers, and scales for views ≥ 320 px), so a blank page costs ~0.5 s and a
picture-heavy art code that fails many blurred qr-verify presets ~1.5–2.5 s. In an optimisation loop, run
``groups=("camera",)`` (21 views) and keep the full suite for the final check.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..qr.optional import opencv
from ..qr.pixels import to_gray_u8, to_uint8
from .decoders import DEFAULT_DECODERS, DecodeResult, decode_gray

WORK_PX = 400
QRVERIFY_SIDE = 300
QRVERIFY_CONTRAST = (6.0, 3.0, 1.5)
QRVERIFY_BLUR = (0.5, 1.0, 1.5, 2.0)
QRVERIFY_BRIGHTNESS = (0.9, 1.2, 1.4)
GROUPS = ("camera", "qrverify")




# ---------------------------------------------------------------------------------------------------------------
# images

def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    cv2 = opencv()
    if (w, h) == (img.shape[1], img.shape[0]):
        return img
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, w), max(1, h)), interpolation=interp)


def _lut(img: np.ndarray, fn) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    table = np.clip(np.round(fn(x) * 255.0), 0, 255).astype(np.uint8)
    return opencv().LUT(img, table)


def _brightness(img, b):
    return _lut(img, lambda x: x * b)


def _contrast(img, c):
    return _lut(img, lambda x: (x - 0.5) * c + 0.5)


def _blur(img, sigma):
    if sigma <= 0:
        return img
    return opencv().GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def _jpeg(img, quality):
    cv2 = opencv()
    bgr = img[:, :, ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out[:, :, ::-1] if out.ndim == 3 else out


def _noise(img, sigma, rng):
    n = rng.standard_normal(size=img.shape, dtype=np.float32)
    n *= np.float32(sigma * 255.0)
    n += img
    n += np.float32(0.5)
    return np.clip(n, 0, 255, out=n).astype(np.uint8)


def _fill(img):
    return (255, 255, 255) if img.ndim == 3 else 255


def _rotate(img, degrees):
    """Rotate about the centre, canvas grown to hold the whole rotated image, white outside."""
    cv2 = opencv()
    h, w = img.shape[:2]
    a = math.radians(degrees)
    cw = int(math.ceil(abs(w * math.cos(a)) + abs(h * math.sin(a))))
    ch = int(math.ceil(abs(w * math.sin(a)) + abs(h * math.cos(a))))
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    m[0, 2] += (cw - w) / 2.0
    m[1, 2] += (ch - h) / 2.0
    return cv2.warpAffine(img, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=_fill(img))


def _tilt(img, axis: str, shrink: float = 0.75):
    """Perspective view: the right (axis 'x') or top (axis 'y') side shortened to `shrink`, white outside."""
    cv2 = opencv()
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    d = (1.0 - shrink) / 2.0
    if axis == "x":
        dst = np.float32([[0, 0], [w * 0.85, h * d], [w * 0.85, h * (1 - d)], [0, h]])
    else:
        dst = np.float32([[w * d, h * 0.15], [w * (1 - d), h * 0.15], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=_fill(img))


# ---------------------------------------------------------------------------------------------------------------
# qr-verify

def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(y):
    y = np.clip(y, 0.0, 1.0)
    return np.where(y <= 0.0031308, y * 12.92, 1.055 * y ** (1 / 2.4) - 0.055)


def _lstar(y):
    e, k = 216 / 24389, 24389 / 27
    return np.where(y > e, 116 * np.cbrt(y) - 16, k * y)


def _lstar_inv(lum):
    e, k = 216 / 24389, 24389 / 27
    return np.where(lum > k * e, ((lum + 16) / 116) ** 3, lum / k)


def _vips_gauss_kernel(sigma: float) -> np.ndarray:
    """libvips' integer Gaussian mask (what sharp's blur(σ) uses): taps exp(−x²/2σ²) kept while ≥ min_ampl 0.2,
    each rounded to 20·v, normalised by their sum."""
    sig2 = 2.0 * sigma * sigma
    x = 0
    while x < max(1, int(8 * sigma)) and math.exp(-(x * x) / sig2) >= 0.2:
        x += 1
    r = max(x - 1, 0)
    taps = np.array([round(20 * math.exp(-(i * i) / sig2)) for i in range(-r, r + 1)], dtype=np.float64)
    return taps / taps.sum()


def qrverify_gray(image) -> np.ndarray:
    """qr-verify's base image: shorter side resized to 300 px (never enlarged), sharp-style greyscale."""
    img = to_uint8(image)
    h, w = img.shape[:2]
    s = QRVERIFY_SIDE / min(w, h)
    if s < 1.0:
        img = _resize(img, round(w * s), round(h * s))
    if img.ndim == 3:
        lin = _srgb_to_linear(img.astype(np.float32) / 255.0)
        y = lin[:, :, 0] * 0.2126 + lin[:, :, 1] * 0.7152 + lin[:, :, 2] * 0.0722
        img = np.clip(np.round(_linear_to_srgb(y) * 255.0), 0, 255).astype(np.uint8)
    return img


def qrverify_preset(gray: np.ndarray, contrast: float = 1.0, blur: float = 0.0, brightness: float = 1.0):
    """Apply one qr-verify preset to the 300 px gray base, the way sharp executes it.

    qr-verify (src/scan.ts) calls `.grayscale()`, `.linear(c, 128 − 128c)`, `.modulate({brightness})`,
    `.blur(σ)` — but sharp runs its pipeline in a fixed order whatever the call order: greyscale, resize,
    blur, modulate, linear. So: blur first, with libvips' truncated integer Gaussian (σ = 0.5 gives a 1-tap
    mask, i.e. no blur at all; σ = 1, 1.5, 2 give 3, 5, 7 taps); then brightness multiplies CIE L* (modulate
    works in LCh; for gray this is Y → L*·b → Y, clipped), then contrast x → (x − 128)·c + 128 on 8-bit values,
    clipped — i.e. (x − 0.5)·c + 0.5 about the 128/255 pivot. This is *not* the CSS-filter reading (brightness
    x·b in sRGB, blur radius in px): L* scaling lifts mid-greys a little more than x·b does (0.5 → 0.73 at
    b = 1.4, vs 0.70), and sharp's σ is a standard deviation.
    """
    out = gray
    if blur:
        k = _vips_gauss_kernel(blur)
        if k.size > 1:
            out = opencv().sepFilter2D(out, -1, k, k, borderType=opencv().BORDER_REPLICATE)
    if brightness != 1.0 or contrast != 1.0:
        def fn(x, b=brightness, c=contrast):
            if b != 1.0:
                x = np.round(_linear_to_srgb(_lstar_inv(_lstar(_srgb_to_linear(x)) * b)) * 255.0) / 255.0
            if c != 1.0:
                x = (np.round(x * 255.0) * c + 128.0 * (1.0 - c)) / 255.0
            return x
        out = _lut(out, fn)
    return out


def qrverify_presets() -> list[tuple[str, dict]]:
    """The 37 presets of antfu/qr-verify ≥ 0.1.3 ('high' tolerance): raw, then contrast × blur × brightness
    in its createPreprocessCombinations order. (qr-verify shuffles them and reuses one sharp object, so its
    'raw' preset inherits the previous preset's settings unless it comes first — we run raw as raw.)"""
    out = [("qv_raw", {})]
    for c in QRVERIFY_CONTRAST:
        for bl in QRVERIFY_BLUR:
            for br in QRVERIFY_BRIGHTNESS:
                out.append((f"qv_c{c:g}_bl{bl:g}_br{br:g}", {"contrast": c, "blur": bl, "brightness": br}))
    return out


# ---------------------------------------------------------------------------------------------------------------
# where the code is

@dataclass(frozen=True)
class Placement:
    """Where the symbol sits in the (original) image: top-left corner and module pitch, in pixels."""

    origin: tuple[float, float]
    pitch: float
    modules: int          # modules per side of the symbol (quiet zone excluded)
    source: str           # 'geometry', 'zxing' or 'assumed'


def locate(image, qr=None, module_px: float | None = None) -> Placement:
    """Module pitch and origin: from `qr.geometry` when given, else from a zxing read, else a version-5 code with
    a 4-module quiet zone filling the image (45 modules across)."""
    h, w = np.asarray(image).shape[:2]
    if qr is not None and getattr(qr, "geometry", None) is not None:
        g = qr.geometry
        sx = w / g.image_size[0]
        return Placement((g.origin[0] * sx, g.origin[1] * h / g.image_size[1]), g.module_px * sx, qr.size,
                         "geometry")
    if module_px is not None and qr is not None:
        side = qr.size * module_px
        return Placement(((w - side) / 2, (h - side) / 2), float(module_px), qr.size, "assumed")
    try:
        import zxingcpp  # noqa: PLC0415
        found = zxingcpp.read_barcodes(to_gray_u8(image), formats=zxingcpp.BarcodeFormat.QRCode)
        for b in found:
            if b.format != zxingcpp.BarcodeFormat.QRCode:
                continue
            v = int(b.extra.get("Version"))
            n = 17 + 4 * v
            p = b.position
            pts = np.array([[p.top_left.x, p.top_left.y], [p.top_right.x, p.top_right.y],
                            [p.bottom_right.x, p.bottom_right.y], [p.bottom_left.x, p.bottom_left.y]], float)
            side = np.mean(np.linalg.norm(pts - np.roll(pts, 1, axis=0), axis=1))
            pitch = module_px or side / n
            return Placement((float(pts[:, 0].min()), float(pts[:, 1].min())), float(pitch), n, "zxing")
    except Exception:
        pass
    modules = 37
    pitch = float(module_px) if module_px else min(w, h) / (modules + 8)
    side = modules * pitch
    return Placement(((w - side) / 2, (h - side) / 2), pitch, modules, "assumed")


# ---------------------------------------------------------------------------------------------------------------
# the views

def camera_variants(image, placement: Placement, seed: int = 0, work_px: int = WORK_PX):
    """[(name, uint8 image)] of the camera group, deterministic for `seed`."""
    img = to_uint8(image)
    h, w = img.shape[:2]
    s = min(1.0, work_px / max(w, h))
    base = _resize(img, round(w * s), round(h * s))
    bh, bw = base.shape[:2]
    pitch = placement.pitch * s                       # module pitch in the working image
    rng = np.random.default_rng(seed)

    def at_ppm(src, ppm):
        f = min(1.0, ppm / pitch)
        return _resize(src, round(src.shape[1] * f), round(src.shape[0] * f))

    out = []
    for ppm in (3.0, 2.5, 2.0):
        out.append((f"scale_{ppm:.1f}ppm", at_ppm(base, ppm)))
    for sm in (0.20, 0.35):
        out.append((f"blur_{sm:.2f}m", _blur(base, sm * pitch)))
    small = at_ppm(base, 3.5)
    for q in (30, 50, 70):
        out.append((f"jpeg_q{q}", _jpeg(small, q)))
    for b in (0.6, 1.4):
        out.append((f"brightness_{b:g}", _brightness(base, b)))
    for c in (0.6, 1.4):
        out.append((f"contrast_{c:g}", _contrast(base, c)))
    out.append(("noise_0.08", _noise(base, 0.08, rng)))
    for deg in (15, 30, 45):
        out.append((f"rotate_{deg}", _rotate(base, deg)))
    out.append(("tilt_x", _tilt(base, "x")))
    out.append(("tilt_y", _tilt(base, "y")))

    # occlusion: a patch whose top-left module lies in [9, n − side): it never touches the finders, their
    # separators, the timing patterns or the format strips (all within modules 0-8 of a finder's corner)
    n = placement.modules
    side_m = max(2.0, 0.12 * n)
    lo, hi = 9.0, max(9.0, n - side_m)
    my, mx = rng.uniform(lo, hi, size=2)
    ox, oy = placement.origin[0] * s, placement.origin[1] * s
    x0, y0 = int(round(ox + mx * pitch)), int(round(oy + my * pitch))
    x1, y1 = int(round(x0 + side_m * pitch)), int(round(y0 + side_m * pitch))
    occ = base.copy()
    occ[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = (224, 172, 150) if occ.ndim == 3 else 186
    out.append(("occlusion", occ))

    a = _rotate(at_ppm(base, 3.0), 8)
    a = _blur(a, 0.6)
    a = _brightness(a, 0.8)
    a = _noise(a, 0.03, rng)
    out.append(("phone_a", _jpeg(a, 50)))
    b = at_ppm(_tilt(base, "y", 0.8), 2.5)
    b = _contrast(b, 0.7)
    out.append(("phone_b", _jpeg(b, 40)))
    return out


def qrverify_variants(image):
    """[(name, uint8 gray image)] of the 37 qr-verify presets."""
    gray = qrverify_gray(image)
    return [(name, qrverify_preset(gray, **kw)) for name, kw in qrverify_presets()]


# ---------------------------------------------------------------------------------------------------------------
# running it

@dataclass
class VariantOutcome:
    name: str
    group: str
    size: tuple[int, int]                       # (width, height) the decoders saw
    results: dict[str, DecodeResult] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "size": list(self.size),
                "results": {k: v.to_dict() for k, v in self.results.items()}}


@dataclass
class SuiteResult:
    decoders: tuple[str, ...]
    expected: str | bytes | None
    variants: list[VariantOutcome]
    ssr: dict[str, float]                        # per decoder, over every view run
    ssr_by_group: dict[str, dict[str, float]]    # group → decoder → rate
    qrverify_pass: dict[str, bool]               # qr-verify's rule (any preset), payload checked
    placement: Placement | None
    time_ms: float
    decode_ms: dict[str, float]                  # total decoder time per decoder (summed over threads)
    errors: dict[str, str] = field(default_factory=dict)  # decoder → why it could not run

    @property
    def min_ssr(self) -> float:
        return min(self.ssr.values()) if self.ssr else 0.0

    def failures(self, decoder: str) -> list[str]:
        return [v.name for v in self.variants if decoder in v.results and not v.results[decoder].ok]

    def to_dict(self, per_variant: bool = True) -> dict:
        exp = self.expected.decode("latin-1") if isinstance(self.expected, bytes) else self.expected
        out = {"decoders": list(self.decoders), "expected": exp, "ssr": self.ssr,
               "ssr_by_group": self.ssr_by_group, "qrverify_pass": self.qrverify_pass,
               "time_ms": round(self.time_ms, 2), "decode_ms": {k: round(v, 2) for k, v in self.decode_ms.items()},
               "n_variants": len(self.variants), "errors": self.errors,
               "failures": {d: self.failures(d) for d in self.decoders},
               "placement": None if self.placement is None else {
                   "origin": list(self.placement.origin), "pitch": self.placement.pitch,
                   "modules": self.placement.modules, "source": self.placement.source}}
        if per_variant:
            out["variants"] = [v.to_dict() for v in self.variants]
        return out


_pool: ThreadPoolExecutor | None = None


def _executor(workers: int) -> ThreadPoolExecutor | None:
    global _pool
    if workers <= 1:
        return None
    if _pool is None or _pool._max_workers != workers:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qr-suite")
    return _pool


def build_variants(image, groups=GROUPS, qr=None, module_px=None, seed=0, work_px=WORK_PX):
    """[(group, name, uint8 image)] for the requested groups, plus the placement used (None if not needed)."""
    views, placement = [], None
    for g in groups:
        if g == "camera":
            placement = locate(image, qr, module_px)
            views += [("camera", n, v) for n, v in camera_variants(image, placement, seed, work_px)]
        elif g == "qrverify":
            views += [("qrverify", n, v) for n, v in qrverify_variants(image)]
        else:
            raise ValueError(f"unknown group {g!r}; known: {', '.join(GROUPS)}")
    return views, placement


def run_suite(image, expected, decoders=DEFAULT_DECODERS, *, groups=GROUPS, qr=None, module_px=None,
              seed: int = 0, workers: int | None = None, work_px: int = WORK_PX) -> SuiteResult:
    """Decode every view of `image` with every decoder and report scan success rates.

    expected: the payload (str or bytes); None counts any decode as success (qr-verify's lenient rule).
    qr: a QRCode whose `.geometry` says where the modules are (else zxing locates the code, or a version-5
    code filling the image is assumed) — only the module-relative camera views need it.
    workers: decode threads (default: CPU count, at most 4).
    """
    t0 = time.perf_counter()
    if isinstance(decoders, str):
        decoders = (decoders,)
    decoders = tuple(decoders)
    views, placement = build_variants(image, groups, qr, module_px, seed, work_px)
    grays = [to_gray_u8(v) for _, _, v in views]
    jobs = [(i, d) for i in range(len(views)) for d in decoders]
    # the slowest decoder's jobs first, so both threads stay busy to the end
    jobs.sort(key=lambda j: j[1] != "wechat")
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    ex = _executor(workers)
    run = lambda job: decode_gray(grays[job[0]], job[1], expected)  # noqa: E731
    results = list(ex.map(run, jobs)) if ex is not None else [run(j) for j in jobs]

    outcomes = [VariantOutcome(n, g, (v.shape[1], v.shape[0])) for g, n, v in views]
    for (i, d), r in zip(jobs, results):
        outcomes[i].results[d] = r
    ssr, by_group, qv_pass, dec_ms, errors = {}, {}, {}, {}, {}
    for d in decoders:
        oks = [o.results[d].ok for o in outcomes]
        ssr[d] = float(np.mean(oks)) if oks else 0.0
        dec_ms[d] = float(sum(o.results[d].time_ms for o in outcomes))
        errs = {o.results[d].error for o in outcomes if o.results[d].error}
        if errs:
            errors[d] = sorted(errs)[0]
        for g in groups:
            g_oks = [o.results[d].ok for o in outcomes if o.group == g]
            by_group.setdefault(g, {})[d] = float(np.mean(g_oks)) if g_oks else 0.0
        if "qrverify" in groups:
            qv_pass[d] = any(o.results[d].ok for o in outcomes if o.group == "qrverify")
    return SuiteResult(decoders, expected, outcomes, ssr, by_group, qv_pass, placement,
                       (time.perf_counter() - t0) * 1000.0, dec_ms, errors)
