"""Real QR decoders behind one call: zxing-cpp and OpenCV's WeChat detector.

WeChat runs in worker processes (`qr.wechat`): it segfaults on some pictures, and a crash must cost one unread
picture, not the host. Both libraries are imported lazily, so a missing `zxingcpp` or `cv2` never breaks
importing the package; the decoder is then reported as unavailable (`DecodeResult.error` says why) instead of
raising.

Images may be float in [0, 1] or uint8, gray (H×W or H×W×1), RGB (H×W×3) or RGBA (alpha is dropped). Both
decoders binarise luminance, so the image is converted once to 8-bit gray with the Rec.601 weights
0.299/0.587/0.114 — the same weights zxing-cpp and OpenCV use internally — and that gray image is what each
decoder sees.

`expected` may be a str (compared with the decoded text) or bytes (compared with zxing's raw bytes; for WeChat,
which only returns text, with its UTF-8 and Latin-1 encodings). With several results in one image, the decode
matches if any of them equals the expectation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..qr.pixels import to_gray_u8
from . import wechat

DEFAULT_DECODERS = ("zxing", "wechat")
KNOWN_DECODERS = ("zxing", "zxing_pure", "wechat")


@dataclass
class DecodeResult:
    decoder: str
    decoded: bool = False           # at least one QR code was read
    text: str | None = None         # the first (or the matching) result's text
    texts: list[str] = field(default_factory=list)
    match: bool | None = None       # a result equals `expected`; None when nothing was expected
    version: int | None = None      # as reported by the decoder (zxing only)
    ecl: str | None = None          # 'L', 'M', 'Q', 'H' (zxing only)
    time_ms: float = 0.0
    error: str | None = None        # decoder unavailable or raised; None on a clean run (decoded or not)

    @property
    def ok(self) -> bool:
        """Success under the strict rule: matched if something was expected, else decoded."""
        return bool(self.match) if self.match is not None else self.decoded

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# image conversion

# ---------------------------------------------------------------------------------------------------------------
# lazy back ends

_lock = threading.Lock()
_state: dict[str, object] = {}


def _zxing():
    """The zxingcpp module, or raise ImportError with a reason."""
    if "zxing" not in _state:
        try:
            import zxingcpp  # noqa: PLC0415
            bf = zxingcpp.BarcodeFormat
            # zxing-cpp 3.x: `QRCode` is the family (Model 1/2, Micro, rMQR) and a Model 2 read reports
            # format QRCode; asking for `QRCodeModel2` with is_pure=True returns an invalid empty result
            # (3.1.1). So search the family and keep Model 2 results only.
            keep = {bf.QRCode} | ({bf.QRCodeModel2} if hasattr(bf, "QRCodeModel2") else set())
            _state["zxing"] = (zxingcpp, bf.QRCode, keep)
        except Exception as e:  # ImportError, or a broken binary
            _state["zxing"] = ImportError(f"zxing-cpp is not usable ({type(e).__name__}: {e}); "
                                          f"install it with `pip install zxing-cpp`")
    v = _state["zxing"]
    if isinstance(v, Exception):
        raise v
    return v


def available(name: str) -> tuple[bool, str | None]:
    """(usable, reason if not) for a decoder name."""
    try:
        if name in ("zxing", "zxing_pure"):
            _zxing()
        elif name == "wechat":
            _run_wechat(np.zeros((21, 21), np.uint8))
        else:
            return False, f"unknown decoder {name!r}; known: {', '.join(KNOWN_DECODERS)}"
    except ImportError as e:
        return False, str(e)
    return True, None


# ---------------------------------------------------------------------------------------------------------------
# decoding

def _matches(expected, text: str, raw: bytes | None) -> bool:
    if isinstance(expected, (bytes, bytearray)):
        if raw is not None:
            return bytes(raw) == bytes(expected)
        for enc in ("utf-8", "latin-1"):
            try:
                if text.encode(enc) == bytes(expected):
                    return True
            except UnicodeEncodeError:
                pass
        return False
    if text == expected:
        return True
    return raw is not None and isinstance(expected, str) and raw == expected.encode("utf-8", "surrogatepass")


def _run_zxing(gray: np.ndarray, pure: bool, fast: bool):
    zx, fmt, keep = _zxing()
    # TextMode.Plain: the payload transcoded per its ECI/charset, without the HRI escaping of control characters
    kw = {"formats": fmt}
    if hasattr(zx, "TextMode"):
        kw["text_mode"] = zx.TextMode.Plain
    if pure:
        kw.update(is_pure=True, try_rotate=False, try_downscale=False, try_invert=False)
    elif fast:
        kw.update(try_invert=False)
    found = zx.read_barcodes(gray, **kw)
    out = []
    for b in found:
        if getattr(b, "valid", True) is False or b.format not in keep:
            continue
        extra = getattr(b, "extra", None) or {}
        version = extra.get("Version") if isinstance(extra, dict) else None
        try:
            version = int(version) if version is not None else None
        except (TypeError, ValueError):  # Micro QR reports 'M4'; we restrict to Model 2, but be safe
            version = None
        ecl = (extra.get("ECLevel") if isinstance(extra, dict) else None) or getattr(b, "ec_level", None) or None
        out.append((b.text, bytes(b.bytes), version, ecl))
    return out


def _run_wechat(gray: np.ndarray):
    if isinstance(_state.get("wechat"), Exception):
        raise _state["wechat"]
    try:
        texts = wechat.detect_and_decode(gray)
    except wechat.WeChatUnusable as e:
        with _lock:
            _state["wechat"] = e
        raise
    return [(t, None, None, None) for t in texts]


def decode_gray(gray: np.ndarray, name: str, expected=None, *, fast: bool = False) -> DecodeResult:
    """Decode an already converted uint8 gray image with one decoder."""
    res = DecodeResult(decoder=name)
    t0 = time.perf_counter()
    try:
        if name == "zxing":
            found = _run_zxing(gray, pure=False, fast=fast)
        elif name == "zxing_pure":
            found = _run_zxing(gray, pure=True, fast=fast)
        elif name == "wechat":
            found = _run_wechat(gray)
        else:
            raise ValueError(f"unknown decoder {name!r}; known: {', '.join(KNOWN_DECODERS)}")
    except ImportError as e:
        res.error = f"unavailable: {e}"
        found = []
    except Exception as e:  # a decoder crash is a failed decode, never an exception to the caller
        res.error = f"{type(e).__name__}: {e}"
        found = []
    res.time_ms = (time.perf_counter() - t0) * 1000.0
    if not found:
        if expected is not None:
            res.match = False
        return res
    res.decoded = True
    res.texts = [f[0] for f in found]
    pick = found[0]
    if expected is not None:
        hits = [f for f in found if _matches(expected, f[0], f[1])]
        res.match = bool(hits)
        if hits:
            pick = hits[0]
    res.text, _, res.version, res.ecl = pick
    return res


def decode(image, decoders=DEFAULT_DECODERS, expected=None, *, fast: bool = False) -> dict[str, DecodeResult]:
    """Decode `image` with each named decoder; never raises for unreadable images or missing libraries.

    decoders: names from KNOWN_DECODERS — "zxing" (zxing-cpp with its default search: rotations, downscaling,
    inverted codes; QR Model 2 only, Micro QR and rMQR results are dropped), "zxing_pure" (zxing with
    `is_pure=True`: a perfectly aligned synthetic code, no search; it takes the first dark pixel as the corner,
    so anything dark in the quiet zone breaks it) and "wechat" (OpenCV-contrib WeChatQRCode without its CNN
    models: the whole image is one candidate, so it reads one code per image).
    expected: the payload (str or bytes) to check; `match` stays None without it.
    fast: zxing skips the inverted-image pass (light-on-dark codes are then missed).
    """
    if isinstance(decoders, str):
        decoders = (decoders,)
    gray = to_gray_u8(image)
    return {name: decode_gray(gray, name, expected, fast=fast) for name in decoders}
