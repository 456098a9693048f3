"""Hide a code in a picture at a chosen PSNR, and reveal it again: whole pictures of any size, in tiles so memory
stays bounded, with the PSNR measured on the saved 8-bit result and the attacks to survive checked on it."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..qr.code import QRCode
from ..qr.errors import QRInputError
from ..qr.optional import opencv
from ..qr.pixels import picture_modules, require_geometry, ssim_rgb, to_float_rgb, to_uint8
from ..scan.decoders import decode_gray
from .attacks import ATTACKS, attack_names
from .attacks import psnr as psnr_db
from .codec import Codec, code_plane
from .nets import PERIOD
from .refine import ROUND, STEPS, centre_weight, refine_steps
from .weights import load_codec

PSNR_RANGE = (20.0, 60.0)
QUIET_ZONE = 4       # modules of light border drawn with a hidden code (the CLI's and the node's default)
TILE = 1024          # pixels per tile side; tiles overlap by MARGIN on each side
MARGIN = 96          # more than either network's receptive field reaches
ALIGN = 16           # tile origins stay on the carrier grid and on the encoder's stride


@dataclass
class Hidden:
    image: np.ndarray       # H×W×3 uint8, the picture with the code in it
    residual: np.ndarray    # H×W×3 float32, what was added (in 0…1 units, after clipping and rounding)
    psnr: float             # dB, of the saved 8-bit picture to the original
    ssim: float
    survives: dict[str, bool]  # per attack checked ("clean" first): whether the payload reads back after it
    steps: int              # refinement steps spent (0 when the encoder's residual already survived everything)

    @property
    def passed(self) -> bool:
        return all(self.survives.values())

    @property
    def verdict(self) -> str:
        """One phrase for a report: what it reads back after, or what it does not and what to change."""
        failed = [name for name, ok in self.survives.items() if not ok]
        if not failed:
            return f"reads back after {', '.join(self.survives)}"
        return f"does NOT read back after {', '.join(failed)} (more steps or a lower PSNR)"


@dataclass
class Revealed:
    code_image: np.ndarray  # H×W uint8, black modules on white: what the decoder restored
    text: str | None        # what zxing-cpp reads from it (None: nothing)
    shift: tuple[int, int]  # the carrier shift the read needed, (0, 0) unless the picture was cropped or moved


def _one_torch_thread(fn):
    """Run `fn` on one torch thread: the networks are small convolutions, and more intra-op threads only add
    barrier waits on a busy machine (as `art.fidelity.art` does)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return run


def _tiles(n: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (read start, read end, keep start, keep end) for tiles of TILE with MARGIN context."""
    if n <= TILE + 2 * MARGIN:
        return [(0, n, 0, n)]
    out, start = [], 0
    while start < n:
        end = min(n, start + TILE)
        lo, hi = max(0, start - MARGIN), min(n, end + MARGIN)
        lo -= lo % ALIGN
        out.append((lo, hi, start, end))
        start = end
    return out


def _windows(h: int, w: int):
    """Per tile of an H×W picture: (read window, its kept part in window coordinates, the kept part in the
    picture's), each a (rows, cols) pair of slices."""
    for y0, y1, ky0, ky1 in _tiles(h):
        for x0, x1, kx0, kx1 in _tiles(w):
            yield ((slice(y0, y1), slice(x0, x1)), (slice(ky0 - y0, ky1 - y0), slice(kx0 - x0, kx1 - x0)),
                   (slice(ky0, ky1), slice(kx0, kx1)))


def _aligned(x: torch.Tensor) -> torch.Tensor:
    """x (…×H×W) padded at the bottom and right (replicate) to multiples of ALIGN, the networks' stride."""
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, (-w) % ALIGN, 0, (-h) % ALIGN), mode="replicate")


def _tiled(fn, planes: torch.Tensor, out_channels: int, check: Callable[[], None] | None) -> torch.Tensor:
    """Apply a fully convolutional `fn` (1×C×h×w → 1×out×h×w) tile by tile; tiles start on the carrier grid.
    `check` runs before each tile (a host's interrupt check raises there)."""
    _, _, h, w = planes.shape
    out = torch.empty((1, out_channels, h, w), dtype=planes.dtype)
    for read, inner, kept in _windows(h, w):
        if check is not None:
            check()
        out[(..., *kept)] = fn(_aligned(planes[(..., *read)]))[(..., *inner)]
    return out


def _saved(original: np.ndarray, residual: torch.Tensor, psnr: float) -> tuple[np.ndarray, float]:
    """The 8-bit picture with `residual` (1×C×H×W) added, rescaled until it is within 0.1 dB of `psnr` (clipping
    at black and white removes some of it, rounding adds some); and its PSNR."""
    unit = residual[0].permute(1, 2, 0).numpy()
    unit = (unit / max(1e-12, float(np.sqrt(np.mean(unit.astype(np.float64) ** 2))))).astype(np.float32)
    target = 10 ** (-psnr / 20)
    for _ in range(8):
        out = np.clip(np.round((original.astype(np.float32) / 255 + unit * target) * 255), 0, 255).astype(np.uint8)
        got = psnr_db(out, original)
        if not math.isfinite(got) or abs(got - psnr) < 0.1:
            break
        target *= 10 ** ((got - psnr) / 20)
    return out, got


def _survives(image: np.ndarray, codec: Codec, text: str, survive: tuple[str, ...]) -> dict[str, bool]:
    """Per attack, "clean" first: does the payload read back (at the picture's own alignment) after it?"""
    return {name: reveal(ATTACKS[name](image), codec, text, search=False).text == text
            for name in ("clean", *survive)}


def _symbol_area(qr: QRCode, h: int, w: int) -> torch.Tensor:
    """1×1×H×W bool: the symbol and its quiet zone as placed in the picture."""
    row, col = picture_modules((h, w), qr)
    ys, xs = np.nonzero((row >= 0) & (col >= 0))
    area = np.zeros((h, w), dtype=bool)
    if ys.size:
        pad_y = round(qr.geometry.border * (ys.max() + 1 - ys.min()) / qr.size)
        pad_x = round(qr.geometry.border * (xs.max() + 1 - xs.min()) / qr.size)
        area[max(0, ys.min() - pad_y):ys.max() + 1 + pad_y, max(0, xs.min() - pad_x):xs.max() + 1 + pad_x] = True
    return torch.from_numpy(area)[None, None]


def _refined(base: torch.Tensor, residual: torch.Tensor, code: torch.Tensor, weight: torch.Tensor, codec: Codec,
             survive: tuple[str, ...], steps: int, first: int, check: Callable[[], None] | None) -> torch.Tensor:
    """`refine.refine_steps` tile by tile (memory stays bounded), over the tiles that hold module centres; each
    tile sees its neighbours' residual as context and keeps only its own part."""
    _, _, h, w = base.shape
    out = residual.clone()
    lr = 0.3 * float(residual.pow(2).mean().sqrt())
    for read, inner, kept in _windows(h, w):
        keep = torch.zeros_like(weight[(..., *read)])
        keep[(..., *inner)] = weight[(..., *kept)]
        if not keep.any():
            continue
        th, tw = keep.shape[-2:]

        def logits(x, th=th, tw=tw):
            return codec.logits(_aligned(x))[..., :th, :tw]

        tile = refine_steps(base[(..., *read)], out[(..., *read)], code[(..., *read)], keep, logits, survive, steps,
                            lr, first, check)
        out[(..., *kept)] = tile[(..., *inner)]
    return out


@_one_torch_thread
def hide(picture, qr: QRCode, psnr: float = 38.0, codec: Codec | None = None,
         check: Callable[[], None] | None = None, survive: tuple[str, ...] | str = ("jpeg90",), steps: int = STEPS,
         progress: Callable[[int, int], None] | None = None) -> Hidden:
    """The picture (any size, uint8 or float RGB) with `qr` drawn invisibly over it at its geometry's placement,
    at `psnr` dB on the saved 8-bit picture.

    The encoder's residual is checked: the payload must read back from the saved picture and after each attack
    in `survive` (names of `attacks.ATTACKS`). Until it does, and for at most `steps` steps, the residual is
    refined on this picture (`refine`) and checked again every few steps; the picture that survives most is kept.
    `check` runs before each tile and step (a host's interrupt check raises there); `progress(done, steps)` after
    each step."""
    if not (isinstance(psnr, (int, float)) and PSNR_RANGE[0] <= psnr <= PSNR_RANGE[1]):
        raise QRInputError(f"psnr must be between {PSNR_RANGE[0]:g} and {PSNR_RANGE[1]:g} dB, got {psnr!r}")
    if not (isinstance(steps, int) and steps >= 0):
        raise QRInputError(f"steps must be a whole number ≥ 0, got {steps!r}")
    survive = attack_names(survive)
    require_geometry(qr)
    codec = codec or load_codec()
    rgb = to_float_rgb(picture)
    h, w = rgb.shape[:2]
    original = to_uint8(rgb)
    base = torch.from_numpy(original.astype(np.float32) / 255).permute(2, 0, 1)[None]
    code = torch.from_numpy(code_plane(qr, h, w))[None, None]
    with torch.inference_mode():
        grey = codec.kind == "carrier"   # its encoder makes one plane, added to R, G and B alike
        raw = _tiled(lambda t: codec.encoder(t[:, :3], t[:, 3:]), torch.cat([base, code], dim=1), 1 if grey else 3,
                     check)
    residual = raw.clone() * (10 ** (-psnr / 20) / max(1e-12, float(raw.pow(2).mean().sqrt())))
    out, got = _saved(original, residual, psnr)
    survives = _survives(out, codec, qr.text, survive)
    best, done = (sum(survives.values()), out, got, survives), 0
    weight = centre_weight(code, _symbol_area(qr, h, w)) if steps and not all(survives.values()) else None
    while weight is not None and done < steps and not all(survives.values()):
        n = min(ROUND, steps - done)
        residual = _refined(base, residual, code, weight, codec, survive, n, done, check)
        done += n
        if progress is not None:
            progress(done, steps)
        out, got = _saved(original, residual, psnr)
        survives = _survives(out, codec, qr.text, survive)
        if sum(survives.values()) > best[0]:
            best = (sum(survives.values()), out, got, survives)
    _, out, got, survives = best
    return Hidden(out, (out.astype(np.float32) - original) / 255, got, ssim_rgb(out, original), survives, done)


@_one_torch_thread
def restore(picture, codec: Codec | None = None, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """H×W float32 logits of the hidden code (positive = dark module) read from a picture."""
    return next(_restorations(picture, codec or load_codec(), [shift], None))


def _restorations(picture, codec: Codec, shifts: list[tuple[int, int]], check: Callable[[], None] | None):
    """Logits for each carrier shift in turn; a picture that fits one tile is whitened and demodulated once.
    `check` runs before each shift and each tile."""
    rgb = torch.from_numpy(to_float_rgb(picture)).permute(2, 0, 1)[None]
    h, w = rgb.shape[-2:]
    with torch.inference_mode():
        if codec.kind == "carrier" and len(_tiles(h)) == 1 and len(_tiles(w)) == 1:
            padded = _aligned(rgb)
            demod = codec.decoder.demodulate(padded)
            for shift in shifts:
                if check is not None:
                    check()
                yield codec.decoder.read_at(demod, padded, shift)[0, 0, :h, :w].numpy()
        else:
            for shift in shifts:
                yield _tiled(lambda t, s=shift: codec.logits(t, s), rgb, 1, check)[0, 0].numpy()


def code_image(logits: np.ndarray) -> np.ndarray:
    """The clean code image a QR decoder reads: black where the decoder says dark."""
    return np.where(logits > 0, 0, 255).astype(np.uint8)


@_one_torch_thread
def reveal(picture, codec: Codec | None = None, expected: str | None = None, search: bool = True,
           check: Callable[[], None] | None = None) -> Revealed:
    """Restore the code and read it with zxing-cpp, as restored and with isolated wrong pixels removed (a 5-px
    median). If nothing reads at the picture's own alignment and `search` is on, the carrier shifts a crop or a
    move could have caused are tried too (the carrier model only)."""
    codec = codec or load_codec()
    shifts = [(0, 0)]
    if search and codec.kind == "carrier":
        shifts += [(dy, dx) for dy in range(PERIOD) for dx in range(PERIOD) if (dy, dx) != (0, 0)]
    first = None
    for shift, logits in zip(shifts, _restorations(picture, codec, shifts, check)):
        image = code_image(logits)
        first = image if first is None else first
        for candidate in (image, opencv().medianBlur(image, 5)):
            result = decode_gray(candidate, "zxing", expected)
            if result.ok:
                return Revealed(candidate, result.text, shift)
    return Revealed(first, None, (0, 0))
