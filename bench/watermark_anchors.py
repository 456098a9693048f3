"""Classical invisible-watermark libraries as anchors for the hidden-QR benchmark, carrying a QR code's own codewords.

Each anchor embeds the code's interleaved codewords (data + the very RS bytes the symbol carries) as bits; the bits
it reads back are placed into a symbol of the same version, level and mask, rendered and read with zxing — the
same RS correction and decoder our hidden codes get, so "recovered" means the same thing for every method.

    OMP_NUM_THREADS=1 python bench/watermark_anchors.py     # smoke table: astronaut 512², 38 and 32 dB

Libraries (bench/requirements-anchors.txt, installed with --no-deps, see there):
  invisible-watermark dwtDct / dwtDctSvd  Haar DWT of U, 4×4 blocks of the approximation band, quantisation of the
      largest DCT coefficient (dwtDct) or of the DCT block's first singular value (dwtDctSvd) in steps of `scales`;
      the library reads channels 0 and 1 only and its defaults leave Y at 0, so it embeds in U alone. Strength =
      the U scale (default 36). No key. Its encoder swaps the H and V detail bands on the way back (a library bug,
      kept: the anchor is the library as shipped), which caps the PSNR it can reach.
  blind-watermark  Haar DWT of Y, U and V, 4×4 blocks, DCT, block-shuffled (password_img=1), SVD; quantises s0 in
      steps of d1 (36) and s1 in steps of d2 (20); the bits are shuffled with password_wm=1. Both passwords are
      the library's defaults, fixed here. Strength = a factor k on (d1, d2); "blind-watermark" is k = 1, fixed.
Every extractor needs the strength used to embed (its quantisation step): `embed_at_psnr` returns the anchor at
the strength it chose, and that anchor's `extract` is the one to call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from aesthetic_qr.invisible.attacks import ATTACKS, psnr  # noqa: E402
from aesthetic_qr.qr.code import QRCode, place  # noqa: E402
from aesthetic_qr.qr.pixels import ssim_rgb  # noqa: E402
from aesthetic_qr.qr.render import render  # noqa: E402
from aesthetic_qr.scan.decoders import decode  # noqa: E402

RENDER_MODULE_PX = 4  # the rebuilt symbol is a clean synthetic image: 4 px/module reads reliably and fast
REACHED_DB = 0.5      # `embed_at_psnr` calls a target reached within this many dB


# ---------------------------------------------------------------------------------------------------------------
# anchors

@dataclass(frozen=True)
class Anchor:
    """One method at one strength. embed: H×W×3 uint8 RGB + 0/1 bits → uint8 RGB; extract: picture, n_bits → bits.
    strength_range None: the strength is fixed (a library default the benchmark reports as is)."""

    name: str
    strength: float
    strength_range: tuple[float, float] | None
    _embed: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    _extract: Callable[[np.ndarray, int, float], np.ndarray]

    def embed(self, picture: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return self._embed(picture, np.asarray(bits, dtype=np.uint8), self.strength)

    def extract(self, picture: np.ndarray, n_bits: int) -> np.ndarray:
        return np.asarray(self._extract(picture, int(n_bits), self.strength), dtype=np.uint8)

    def at(self, strength: float) -> Anchor:
        return replace(self, strength=float(strength))


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """Both libraries take OpenCV BGR images."""
    return np.ascontiguousarray(rgb[..., ::-1])


def _imwm_embed(method: str) -> Callable:
    def embed(picture, bits, scale):
        from imwatermark import WatermarkEncoder  # imports torch (for rivaGan): only when used

        enc = WatermarkEncoder()
        enc.set_watermark("bits", bits.tolist())
        return _bgr(enc.encode(_bgr(picture), method, scales=[0, scale, 0]))
    return embed


def _imwm_extract(method: str) -> Callable:
    def extract(picture, n_bits, scale):
        from imwatermark import WatermarkDecoder

        return WatermarkDecoder("bits", n_bits).decode(_bgr(picture), method, scales=[0, scale, 0])
    return extract


def _blind(k: float):
    """A blind_watermark.WaterMark at (d1, d2) = k·(36, 20), the library's default passwords."""
    import multiprocessing

    set_start = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda *a, **kw: None  # its import forces 'fork' and raises once a
    try:                                                      # start method is set; keep the caller's choice
        import blind_watermark
    finally:
        multiprocessing.set_start_method = set_start
    blind_watermark.bw_notes.close()  # else it prints a banner on first use
    wm = blind_watermark.WaterMark(password_wm=1, password_img=1)
    wm.bwm_core.d1, wm.bwm_core.d2 = 36.0 * k, 20.0 * k
    return wm


def _blind_embed(picture, bits, k):
    wm = _blind(k)
    wm.read_img(img=_bgr(picture))
    wm.read_wm(bits.astype(bool), mode="bit")
    return _bgr(np.clip(np.rint(wm.embed()), 0, 255).astype(np.uint8))  # it returns float BGR


def _blind_extract(picture, n_bits, k):
    return _blind(k).extract(embed_img=_bgr(picture), wm_shape=n_bits, mode="bit")


ANCHORS: dict[str, Anchor] = {
    "invisible-watermark dwtDct": Anchor("invisible-watermark dwtDct", 36.0, (2.0, 1000.0),
                                         _imwm_embed("dwtDct"), _imwm_extract("dwtDct")),
    "invisible-watermark dwtDctSvd": Anchor("invisible-watermark dwtDctSvd", 36.0, (2.0, 1000.0),
                                            _imwm_embed("dwtDctSvd"), _imwm_extract("dwtDctSvd")),
    "blind-watermark": Anchor("blind-watermark", 1.0, None, _blind_embed, _blind_extract),
    "blind-watermark d1/d2 ×k": Anchor("blind-watermark d1/d2 ×k", 1.0, (0.05, 30.0), _blind_embed, _blind_extract),
}


@dataclass
class Embedded:
    picture: np.ndarray  # the marked picture, uint8 RGB
    anchor: Anchor       # at the strength used: call its `extract`
    psnr: float          # achieved, dB
    reached: bool        # |psnr − target| ≤ REACHED_DB (False for a fixed anchor far from it, or a capped method)


def embed_at_psnr(anchor: Anchor, picture: np.ndarray, bits: np.ndarray, target_db: float, steps: int = 8,
                  tol_db: float = 0.1) -> Embedded:
    """Embed at the strength whose PSNR is nearest `target_db`.

    A bracketed search in log strength: the next try is where PSNR = a − 20·log10(strength) (a quantiser's
    error scales with its step) predicts the target, or the bracket's midpoint if that falls outside it. Stops
    within `tol_db` or after `steps` embeds; returns the nearest try. A fixed anchor embeds once."""
    if anchor.strength_range is None:
        out = anchor.embed(picture, bits)
        p = psnr(picture, out)
        return Embedded(out, anchor, p, abs(p - target_db) <= REACHED_DB)
    lo, hi = (math.log(s) for s in anchor.strength_range)
    s = min(max(math.log(anchor.strength), lo), hi)
    best: Embedded | None = None
    for _ in range(steps):
        a = anchor.at(math.exp(s))
        out = a.embed(picture, bits)
        p = psnr(picture, out)
        if best is None or abs(p - target_db) < abs(best.psnr - target_db):
            best = Embedded(out, a, p, abs(p - target_db) <= REACHED_DB)
        if abs(p - target_db) <= tol_db:
            break
        lo, hi = (s, hi) if p > target_db else (lo, s)  # too clean → stronger, too visible → weaker
        guess = s + (p - target_db) / 20.0 * math.log(10.0)
        s = guess if lo < guess < hi else (lo + hi) / 2.0
    return best


# ---------------------------------------------------------------------------------------------------------------
# the QR side: codewords out, a decoded symbol back

def codeword_bits(qr: QRCode) -> np.ndarray:
    """The interleaved codewords as placed (data, then EC), MSB first: what an anchor carries."""
    return np.unpackbits(np.asarray(qr.codewords, dtype=np.uint8))


def code_from_bits(qr: QRCode, bits: np.ndarray) -> str | None:
    """Place extracted codeword bits into a symbol of `qr`'s version, level and mask (function patterns and
    format from `place`), render it and read it with zxing: the text it decodes after RS, or None."""
    n = 8 * qr.codewords.size
    codewords = np.packbits(np.asarray(bits, dtype=np.uint8)[:n])
    matrix = place(codewords, qr.version, qr.ecl, qr.mask)
    image, _ = render(replace(qr, matrix=matrix), module_px=RENDER_MODULE_PX)  # render reads only the matrix
    result = decode(image, decoders=("zxing",))["zxing"]
    return result.text if result.decoded else None


# ---------------------------------------------------------------------------------------------------------------

def main() -> None:
    import time

    from skimage import data

    from aesthetic_qr.qr import encode

    text = "https://example.com/a/b?c=1"
    picture = data.astronaut()  # 512×512×3 uint8
    qr = encode(text, ecl="M")
    bits = codeword_bits(qr)
    assert code_from_bits(qr, bits) == text
    print(f"payload {text!r}: version {qr.version}-{qr.ecl}, mask {qr.mask}, {qr.codewords.size} codewords = "
          f"{bits.size} bits, {len(qr.blocks)} blocks, corrects {qr.correctable()} codewords per block")
    print("cell: ✓ payload recovered / ✗ not, then the bit error rate in %; search s: embed_at_psnr's wall time")
    print(f"| method | target | strength | PSNR dB | SSIM | search s | {' | '.join(ATTACKS)} |")
    print("|---" * (6 + len(ATTACKS)) + "|")
    for anchor in ANCHORS.values():
        for target in (38.0, 32.0):
            t0 = time.perf_counter()
            emb = embed_at_psnr(anchor, picture, bits, target)
            t_search = time.perf_counter() - t0
            cells = []
            for attack in ATTACKS.values():
                got = emb.anchor.extract(attack(emb.picture), bits.size)
                ok = code_from_bits(qr, got) == text
                cells.append(f"{'✓' if ok else '✗'}{100 * np.mean(got != bits):.0f}")
            flag = "" if emb.reached else " (not reached)"
            print(f"| {anchor.name} | {target:g} | {emb.anchor.strength:.3g} | {emb.psnr:.2f}{flag} | "
                  f"{ssim_rgb(picture, emb.picture):.4f} | {t_search:.1f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
