"""Pictures and the module grid: the one place that converts images, weighs luminance and maps pixels to modules.

Every package reads pictures and modules through these functions (`losses.grid` is the torch mirror), so there
is one rule for each:

* luminance is Rec.601, Y = 0.299 R + 0.587 G + 0.114 B, the weights scanners binarise with (`LUMA`);
* an image is float [0, 1] or uint8 (uint16 and wider integers are scaled from their range), gray, RGB or RGBA;
  transparency is composited on white (a code drawn on a transparent sheet reads as on paper);
* a file is loaded with its EXIF orientation applied (what every viewer shows);
* a code without pixel geometry is refused with one message (`require_geometry`);
* a picture is fitted to a code by cover-cropping: the largest centred window with the geometry's aspect
  ratio, resampled to the geometry's size (`fit`); an image that already carries the code must have the code's
  aspect ratio within a pixel, and a mask drawn on a picture its picture's (`require_same_aspect`), so that it is
  fitted like its picture and never stretched;
* a file larger than `MAX_PICTURE_PIXELS` is refused with one line (`load_picture`).
"""

from __future__ import annotations

import numpy as np

from .code import Geometry, QRCode
from .errors import QRInputError
from .optional import opencv

__all__ = ["LUMA", "MAX_PICTURE_PIXELS", "cover_crop", "fit", "load_picture", "luminance", "module_centres",
           "module_coverage", "module_grid", "module_means", "module_pixels", "picture_modules", "pixel_modules",
           "require_geometry", "require_same_aspect", "ssim_map", "ssim_maps", "ssim_rgb", "symbol_pixels",
           "to_float_rgb", "to_gray_u8", "to_uint8"]

LUMA = (0.299, 0.587, 0.114)
_LUMA = np.array(LUMA, dtype=np.float64)
_GEOMETRY_MISSING = ("the QR code has no pixel geometry: render it first (AQR_Encode does) or attach one with "
                     "qr.with_geometry(make_geometry(...))")


# ----------------------------------------------------------------------------------------------- conversion

def _as_float(a: np.ndarray) -> np.ndarray:
    """Values as float32 in [0, 1], whatever the dtype."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):  # uint16 (16-bit PNG) and wider: their range; small ints: 0–255
        top = 65535.0 if a.size and int(a.max()) > 255 else 255.0
        return a.astype(np.float32) / np.float32(top)
    return np.clip(a.astype(np.float32, copy=False), 0.0, 1.0)


def to_float_rgb(image, name: str = "image") -> np.ndarray:
    """H×W×3 float32 in [0, 1] from any supported image (gray, RGB, RGBA on white; see the module docstring)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise QRInputError(f"{name} must be an H×W×3 picture (or gray H×W, or RGBA), got shape "
                           f"{tuple(np.shape(image))}")
    f = _as_float(arr)
    if f.shape[2] == 4:  # RGBA: composite on white
        alpha = f[:, :, 3:]
        f = f[:, :, :3] * alpha + (1.0 - alpha)
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(f, dtype=np.float32)


def luminance(image) -> np.ndarray:
    """H×W float32 Rec.601 luminance in [0, 1] of any supported image (a gray image is its own luminance)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return _as_float(a)
    return (to_float_rgb(a).astype(np.float64) @ _LUMA).astype(np.float32)


def to_gray_u8(image) -> np.ndarray:
    """C-contiguous uint8 H×W luminance (what decoders are given)."""
    a = np.asarray(image)
    if a.ndim == 2 and a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return (np.clip(luminance(a), 0.0, 1.0) * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def to_uint8(image) -> np.ndarray:
    """8-bit copy for files and previews: gray stays H×W, colour becomes H×W×3 (alpha composited on white)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        return np.ascontiguousarray(a)
    f = _as_float(a) if a.ndim == 2 else to_float_rgb(a)
    return (f * np.float32(255) + np.float32(0.5)).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- fidelity

SSIM_WINDOW = 7   # skimage's default: a uniform 7×7 window, sample covariance, K1 0.01, K2 0.03


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, dtype=np.float64) -> np.ndarray:
    """Per-pixel SSIM of two H×W planes, exactly skimage's `structural_similarity` terms (its defaults) computed
    with OpenCV box filters, about 2.5× faster; the borders (3 px) are what skimage leaves out of its mean.
    `dtype` float32: twice as fast again, for comparisons rather than reports."""
    return ssim_maps(a, [b], data_range, dtype)[0]


def ssim_maps(ref: np.ndarray, images, data_range: float = 1.0, dtype=np.float64) -> list[np.ndarray]:
    """`ssim_map(ref, b)` for every b of `images`, the reference's statistics computed once."""
    cv2 = opencv()
    k, n = (SSIM_WINDOW, SSIM_WINDOW), SSIM_WINDOW * SSIM_WINDOW
    cov = n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    a = np.asarray(ref, dtype=dtype)
    ma = cv2.blur(a, k)
    va = cov * (cv2.blur(a * a, k) - ma * ma)
    out = []
    for b in images:
        b = np.asarray(b, dtype=dtype)
        mb = cv2.blur(b, k)
        vb = cov * (cv2.blur(b * b, k) - mb * mb)
        vab = cov * (cv2.blur(a * b, k) - ma * mb)
        out.append(((2 * ma * mb + c1) * (2 * vab + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return out


def ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """skimage's SSIM of two uint8 RGB pictures (data range 255, mean over the channels): the number every report
    and benchmark of the pack gives."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise QRInputError(f"SSIM needs two H×W×3 pictures of one size, got {a.shape} and {b.shape}")
    r = (SSIM_WINDOW - 1) // 2
    return float(np.mean([ssim_map(a[..., c], b[..., c], 255.0)[r:-r, r:-r].mean() for c in range(a.shape[2])]))


# What `load_picture` reads: a QR picture needs a few megapixels at most. Keep it below twice PIL's
# Image.MAX_IMAGE_PIXELS (179 megapixels), where PIL refuses a file before its size can be read.
MAX_PICTURE_PIXELS = 12000 * 12000


def load_picture(path) -> np.ndarray:
    """H×W×3 uint8 of an image file, EXIF orientation applied, transparency composited on white. A file of more
    than `MAX_PICTURE_PIXELS` pixels is refused with one line (PIL's own decompression-bomb warning, which it
    prints for anything above 89 megapixels, is replaced by this explicit limit)."""
    import warnings  # noqa: PLC0415

    from PIL import Image, ImageOps  # noqa: PLC0415  (PIL only where files are read)

    def too_large(size: str) -> QRInputError:
        return QRInputError(f"cannot read image {str(path)!r}: it is {size}, more than the "
                            f"{MAX_PICTURE_PIXELS / 1e6:.3g} megapixels this pack reads; shrink it first (a scanner "
                            f"never sees more than a few megapixels)")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:  # more than twice PIL's limit, so more than ours: PIL stops at the header
        raise too_large(f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.3g} megapixels") from None
    except (OSError, ValueError) as err:
        raise QRInputError(f"cannot read image {str(path)!r}: {err}") from None
    try:
        with im:
            if im.width * im.height > MAX_PICTURE_PIXELS:
                raise too_large(f"{im.width}×{im.height} pixels ({im.width * im.height / 1e6:.3g} megapixels)")
            im = ImageOps.exif_transpose(im)
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                pixels = np.asarray(im).astype(np.uint16 if im.mode != "I" else np.int64)
            else:
                if im.mode not in ("L", "RGB", "RGBA"):
                    im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
                pixels = np.asarray(im)
            return to_uint8(to_float_rgb(pixels)) if pixels.ndim == 2 or pixels.shape[2] != 3 else pixels.copy()
    except QRInputError:
        raise
    except (OSError, ValueError) as err:
        raise QRInputError(f"cannot read image {str(path)!r}: {err}") from None


# ----------------------------------------------------------------------------------------------- geometry

def require_geometry(qr: QRCode) -> Geometry:
    """The code's pixel geometry, or the one error every stage gives without it."""
    if not isinstance(qr, QRCode):
        raise QRInputError(f"expected a QR code, got {type(qr).__name__}")
    if qr.geometry is None:
        raise QRInputError(_GEOMETRY_MISSING)
    return qr.geometry


def require_same_aspect(height: int, width: int, geometry: Geometry | tuple[int, int], what: str = "the image",
                        of: str | None = None) -> None:
    """An image that carries the code may be a uniformly scaled copy of it (aspect equal within a pixel).

    `geometry` may also be the (width, height) of a picture, with `of` naming it: a mask drawn on a picture must
    have the picture's aspect ratio, so that fitting both (`fit`) keeps them aligned. `what` names the image
    checked (the input, in a node's message)."""
    size = geometry if isinstance(geometry, tuple) else geometry.image_size
    tw, th = (int(v) for v in size)
    if abs(width * th - height * tw) <= max(width, height, tw, th):
        return
    if of is None:
        raise QRInputError(f"{what} is {width}×{height} but the code is {tw}×{th} (another aspect ratio): give the "
                           f"image the code was drawn on, or a uniformly scaled copy")
    raise QRInputError(f"{what} is {width}×{height} but {of} is {tw}×{th} (another aspect ratio): it would be "
                       f"stretched over {of}; give a mask drawn on {of}, or a uniformly scaled copy")


def pixel_modules(shape: tuple[int, int], geometry: Geometry, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an H×W image: (module row, module col), −1 outside the symbol. An image of another size than
    the geometry is taken as a uniformly rescaled copy (pitch and origin scale with it)."""
    h, w = shape
    sx, sy = w / geometry.image_size[0], h / geometry.image_size[1]
    row = np.floor(((np.arange(h) + 0.5) / sy - geometry.origin[1]) / geometry.module_px).astype(np.int64)
    col = np.floor(((np.arange(w) + 0.5) / sx - geometry.origin[0]) / geometry.module_px).astype(np.int64)
    row[(row < 0) | (row >= n)] = -1
    col[(col < 0) | (col >= n)] = -1
    return np.broadcast_to(row[:, None], (h, w)), np.broadcast_to(col[None, :], (h, w))


def module_pixels(shape: tuple[int, int], geometry: Geometry, mask: np.ndarray) -> np.ndarray:
    """H×W bool: the pixels of the modules `mask` ((n, n) bool) selects, at `geometry` (`pixel_modules`)."""
    row, col = pixel_modules(shape, geometry, mask.shape[0])
    inside = (row >= 0) & (col >= 0)
    return inside & mask[np.where(inside, row, 0), np.where(inside, col, 0)]


def module_grid(geometry: Geometry, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of the geometry's own image: (module row, module col, −1 outside the symbol; row and column of the
    pixel inside its module)."""
    w, h = geometry.image_size
    row, col = pixel_modules((h, w), geometry, n)
    p = geometry.module_px
    dy = np.broadcast_to(((np.arange(h) - geometry.origin[1]) % p)[:, None], (h, w))
    dx = np.broadcast_to(((np.arange(w) - geometry.origin[0]) % p)[None, :], (h, w))
    return row, col, dy, dx


def module_centres(geometry: Geometry, shape: tuple[int, int], n: int, pad: int = 0):
    """(pitch x, pitch y, centre xs, centre ys) of modules −pad … n+pad−1 in an H×W (uniformly scaled) image."""
    h, w = shape
    sx, sy = w / geometry.image_size[0], h / geometry.image_size[1]
    px, py = geometry.module_px * sx, geometry.module_px * sy
    idx = np.arange(-pad, n + pad)
    return px, py, geometry.origin[0] * sx + (idx + 0.5) * px, geometry.origin[1] * sy + (idx + 0.5) * py


def symbol_pixels(plane: np.ndarray, geometry: Geometry, n: int, fill: float = 1.0) -> np.ndarray:
    """The n·p × n·p pixels of the symbol (no quiet zone) of an image at the geometry's size, padded with `fill`
    where the geometry places modules outside the image."""
    p = geometry.module_px
    x0, y0 = geometry.origin
    side = n * p
    h, w = plane.shape[:2]
    if 0 <= x0 and 0 <= y0 and x0 + side <= w and y0 + side <= h:
        return plane[y0:y0 + side, x0:x0 + side]
    out = np.full((side, side) + plane.shape[2:], fill, dtype=plane.dtype)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(h, y0 + side), min(w, x0 + side)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = plane[sy0:sy1, sx0:sx1]
    return out


def module_means(plane: np.ndarray, geometry: Geometry, n: int, weights: np.ndarray | None = None,
                 fill: float = 1.0) -> np.ndarray:
    """(n, n) weighted mean of an H×W plane over each module (weights: p×p summing to 1; None = plain mean)."""
    p = geometry.module_px
    blocks = symbol_pixels(plane, geometry, n, fill).astype(np.float64).reshape(n, p, n, p)
    if weights is None:
        return blocks.mean(axis=(1, 3))
    return np.einsum("iajb,ab->ij", blocks, weights)


# ----------------------------------------------------------------------------------------------- fitting

def cover_crop(height: int, width: int, geometry: Geometry) -> tuple[int, int, int, int]:
    """(x0, y0, crop width, crop height): the largest centred window of an H×W picture with the geometry's aspect
    ratio — what `fit` keeps before resizing."""
    tw, th = (int(v) for v in geometry.image_size)
    if width * th > height * tw:          # picture wider than the target
        cw, ch = max(1, round(height * tw / th)), height
    else:
        cw, ch = width, max(1, round(width * th / tw))
    return (width - cw) // 2, (height - ch) // 2, cw, ch


def fit(image, geometry: Geometry) -> np.ndarray:
    """A picture at the geometry's image size, by cover-cropping (the rule for every stage).

    The largest centred window with the target's aspect ratio is cut out (nothing is stretched, the whole target
    is covered, the longer side loses equal margins) and resized to `geometry.image_size` — area averaging when
    shrinking, bicubic when enlarging. H×W×C pictures come back H×W×3 float32; a 2-D H×W array (a mask) is
    fitted the same way and returned 2-D, so a mask the size of its picture stays aligned with it.
    """
    arr = np.asarray(image)
    two_d = arr.ndim == 2
    if two_d:
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise QRInputError(f"cannot fit an empty mask of shape {arr.shape}")
        plane = _as_float(arr)
    else:
        plane = to_float_rgb(arr)
    tw, th = (int(v) for v in geometry.image_size)
    h, w = plane.shape[:2]
    if (h, w) != (th, tw):
        cv2 = opencv()
        x0, y0, cw, ch = cover_crop(h, w, geometry)
        plane = plane[y0:y0 + ch, x0:x0 + cw]
        interp = cv2.INTER_AREA if (cw >= tw and ch >= th) else cv2.INTER_CUBIC
        plane = cv2.resize(np.ascontiguousarray(plane), (tw, th), interpolation=interp)
        if plane.ndim == 2 and not two_d:
            plane = plane[:, :, None]
    return np.clip(plane, 0.0, 1.0).astype(np.float32)


def module_coverage(mask, geometry: Geometry, size: int) -> np.ndarray:
    """(size, size) share of each module covered by a picture-space mask (fitted like its picture)."""
    return module_means(fit(np.asarray(mask, dtype=np.float32), geometry), geometry, size, fill=0.0)


def picture_modules(shape: tuple[int, int], qr: QRCode) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an H×W picture: (module row, module col) the pixel lands on once the picture is fitted to the
    code (`fit`); −1 off the symbol or outside the crop."""
    geo = require_geometry(qr)
    h, w = shape
    tw, th = geo.image_size
    x0, y0, cw, ch = cover_crop(h, w, geo)

    def axis(count: int, start: int, span: int, target: int, origin: int) -> np.ndarray:
        pos = (np.arange(count) + 0.5 - start) * target / span   # geometry coordinate of each pixel centre
        idx = np.floor((pos - origin) / geo.module_px).astype(np.int64)
        idx[(pos < 0) | (pos >= target) | (idx < 0) | (idx >= qr.size)] = -1
        return idx

    row = axis(h, y0, ch, th, geo.origin[1])
    col = axis(w, x0, cw, tw, geo.origin[0])
    return np.broadcast_to(row[:, None], (h, w)), np.broadcast_to(col[None, :], (h, w))
