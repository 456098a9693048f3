"""Real QR decoders behind one call: zxing-cpp, OpenCV's WeChat detector and (optional) zbar.

WeChat runs in worker processes (`qr.wechat`): it segfaults on some pictures, and a crash must cost one unread
picture, not the host. Both libraries are imported lazily, so a missing `zxingcpp` or `cv2` never breaks
importing the package; the decoder is then reported as unavailable (`DecodeResult.error` says why) instead of
raising. zbar (pyzbar over the zbar C library) is a third, independent reader for checks; it is not installed
with the pack, because pip cannot install its C library (`apt install libzbar0` / `brew install zbar`, then
`pip install pyzbar`).

Images may be float in [0, 1] or uint8, gray (H×W or H×W×1), RGB (H×W×3) or RGBA (alpha is dropped). Both
decoders binarise luminance, so the image is converted once to 8-bit gray with the Rec.601 weights
0.299/0.587/0.114 — the same weights zxing-cpp and OpenCV use internally — and that gray image is what each
decoder sees.

`expected` may be a str (compared with the decoded text) or bytes (compared with zxing's raw bytes; for WeChat,
which only returns text, with its UTF-8 and Latin-1 encodings). With several results in one image, the decode
matches if any of them equals the expectation.

Each decoder is compared on what it can return. zxing-cpp returns the payload's bytes, so every payload compares
whole. WeChat's Python binding returns text cut at the first NUL character: for a payload holding a NUL it is
compared on the part before the NUL only, and a match says so (`DecodeResult.limitation`), so a code WeChat
reads right is not called a wrong payload, and the report can tell that WeChat confirmed only a prefix.

An image larger than `MAX_DECODE_SIDE` on its longest side is shrunk (area averaging) before decoding, as a
scanner's camera would see it; `DecodeResult.downscaled` says so. (WeChat hung for a minute on a 10000² picture.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..qr.errors import QRInputError
from ..qr.optional import opencv
from ..qr.pixels import to_gray_u8
from . import wechat

DEFAULT_DECODERS = ("zxing", "wechat")
KNOWN_DECODERS = ("zxing", "zxing_pure", "wechat", "zbar")
MAX_DECODE_SIDE = 2048  # longest side decoders are given; larger images are shrunk first (a camera never sees more)
TEXT_UNTIL_NUL = ("wechat",)  # decoders whose results end at the payload's first NUL character
OPTIONAL_DECODERS = ("zbar",)  # not installed with the pack: asking for one that is missing is an error


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
    limitation: str | None = None   # the match covers only the part of the payload this decoder can return
    downscaled: str | None = None   # "W×H → w×h" when the image was shrunk for decoding

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


def _loaded(name: str, label: str, load, install: str):
    """`load()`'s value, cached in `_state[name]`; a failure is cached too and raised as ImportError saying how to
    install it."""
    if name not in _state:
        try:
            _state[name] = load()
        except Exception as e:  # ImportError, or a broken binary
            _state[name] = ImportError(f"{label} is not usable ({type(e).__name__}: {e}); install {install}")
    v = _state[name]
    if isinstance(v, Exception):
        raise v
    return v


def _load_zxing():
    import zxingcpp  # noqa: PLC0415
    bf = zxingcpp.BarcodeFormat
    # zxing-cpp 3.x: `QRCode` is the family (Model 1/2, Micro, rMQR) and a Model 2 read reports format QRCode;
    # asking for `QRCodeModel2` with is_pure=True returns an invalid empty result (3.1.1). So search the family and
    # keep Model 2 results only.
    keep = {bf.QRCode} | ({bf.QRCodeModel2} if hasattr(bf, "QRCodeModel2") else set())
    return zxingcpp, bf.QRCode, keep


def _load_zbar():
    from pyzbar import pyzbar  # noqa: PLC0415  (ImportError also when the zbar C library is missing)
    return pyzbar.decode, [pyzbar.ZBarSymbol.QRCODE]


def _zxing():
    """(the zxingcpp module, the format to search, the formats to keep), or raise ImportError with a reason."""
    return _loaded("zxing", "zxing-cpp", _load_zxing, "it with `pip install zxing-cpp`")


def _zbar():
    """(pyzbar's decode function, the QR symbol type), or raise ImportError with a reason."""
    return _loaded("zbar", "zbar", _load_zbar,
                   "the zbar library (`apt install libzbar0`, `brew install zbar`) and `pip install pyzbar`")


def available(name: str) -> tuple[bool, str | None]:
    """(usable, reason if not) for a decoder name."""
    try:
        if name in ("zxing", "zxing_pure"):
            _zxing()
        elif name == "zbar":
            _zbar()
        elif name == "wechat":
            _run_wechat(np.zeros((21, 21), np.uint8))
        else:
            return False, f"unknown decoder {name!r}; known: {', '.join(KNOWN_DECODERS)}"
    except ImportError as e:
        return False, str(e)
    return True, None


def require(decoders) -> None:
    """Raise QRInputError (one line) naming the first decoder of `decoders` that cannot run, and why."""
    for name in decoders:
        ok, why = available(name)
        if not ok:
            raise QRInputError(f"decoder {name} is not available: {why}")


def require_optional(decoders) -> None:
    """`require` for the `OPTIONAL_DECODERS` among `decoders`, the ones a user installs and asks for by name (a
    missing zxing or WeChat is reported by the verification instead)."""
    require([name for name in decoders if name in OPTIONAL_DECODERS])


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


def _comparable(name: str, expected):
    """(the part of `expected` decoder `name` can return, why it is only a part or None)."""
    if expected is None or name not in TEXT_UNTIL_NUL:
        return expected, None
    nul = b"\x00" if isinstance(expected, (bytes, bytearray)) else "\x00"
    if nul not in expected:
        return expected, None
    cut = expected.index(nul)
    unit = "bytes" if isinstance(expected, (bytes, bytearray)) else "characters"
    return expected[:cut], (f"{name} returns the text only up to the first NUL: {cut} of the payload's "
                            f"{len(expected)} {unit} (those before the NUL) were compared, the rest could not be")


def _shrink(gray: np.ndarray) -> tuple[np.ndarray, str | None]:
    """`gray` with its longest side at most MAX_DECODE_SIDE (area averaging), and a note when it was shrunk."""
    h, w = gray.shape
    if max(h, w) <= MAX_DECODE_SIDE:
        return gray, None
    scale = MAX_DECODE_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    try:
        cv2 = opencv()
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    except ImportError:  # no OpenCV: the mean of each whole-pixel cell
        ys = np.linspace(0, h, size[1] + 1).astype(np.int64)
        xs = np.linspace(0, w, size[0] + 1).astype(np.int64)
        sums = np.add.reduceat(np.add.reduceat(gray.astype(np.float32), ys[:-1], axis=0), xs[:-1], axis=1)
        small = (sums / (np.diff(ys)[:, None] * np.diff(xs)[None, :]) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(small), f"{w}×{h} → {size[0]}×{size[1]}"


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


def _run_zbar(gray: np.ndarray):
    read, symbols = _zbar()
    return [(b.data.decode("utf-8", "replace"), bytes(b.data), None, None) for b in read(gray, symbols=symbols)]


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
        elif name == "zbar":
            found = _run_zbar(gray)
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
        comparable, limitation = _comparable(name, expected)
        hits = [f for f in found if _matches(comparable, f[0], f[1])]
        res.match = bool(hits)
        if hits:
            pick = hits[0]
            res.limitation = limitation
    res.text, _, res.version, res.ecl = pick
    return res


def decode(image, decoders=DEFAULT_DECODERS, expected=None, *, fast: bool = False) -> dict[str, DecodeResult]:
    """Decode `image` with each named decoder; never raises for unreadable images or missing libraries.

    decoders: names from KNOWN_DECODERS — "zxing" (zxing-cpp with its default search: rotations, downscaling,
    inverted codes; QR Model 2 only, Micro QR and rMQR results are dropped), "zxing_pure" (zxing with
    `is_pure=True`: a perfectly aligned synthetic code, no search; it takes the first dark pixel as the corner,
    so anything dark in the quiet zone breaks it), "wechat" (OpenCV-contrib WeChatQRCode without its CNN
    models: the whole image is one candidate, so it reads one code per image) and "zbar" (optional, see above).
    expected: the payload (str or bytes) to check; `match` stays None without it.
    fast: zxing skips the inverted-image pass (light-on-dark codes are then missed).
    An image longer than MAX_DECODE_SIDE is shrunk first (`DecodeResult.downscaled`).
    """
    if isinstance(decoders, str):
        decoders = (decoders,)
    gray, downscaled = _shrink(to_gray_u8(image))
    results = {name: decode_gray(gray, name, expected, fast=fast) for name in decoders}
    for res in results.values():
        res.downscaled = downscaled
    return results
