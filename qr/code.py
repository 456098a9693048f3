"""The QR code object downstream nodes share, and the encoder that builds it.

A `QRCode` is more than pixels: it says which module carries which bit of which codeword of which RS block,
which modules are function patterns, how much capacity is left after the terminator (the bits a reshuffle can
use) and, once rendered, where each module sits in the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import segments as seg
from .errors import QRInputError
from .gf256 import rs_remainder
from .layout import draw_format, penalty, template
from .tables import EC_CODEWORDS_PER_BLOCK, ECLS, block_lengths, data_codewords

MAX_TEXT_CHARS = 7089  # the most any QR symbol holds (numeric, 40-L)


@dataclass(frozen=True)
class Geometry:
    """Where the modules of a rendered code are, in pixels; travels with the code so nothing re-infers it."""

    module_px: int
    border: int                  # quiet zone, in modules
    origin: tuple[int, int]      # (x, y) pixel of the top-left corner of module (0, 0)
    image_size: tuple[int, int]  # (width, height)

    def to_dict(self) -> dict:
        return {"module_px": self.module_px, "border": self.border, "origin": list(self.origin),
                "image_size": list(self.image_size)}

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(int(d["module_px"]), int(d["border"]), tuple(d["origin"]), tuple(d["image_size"]))


@dataclass
class QRCode:
    text: str
    payload: bytes                 # what a decoder returns, as bytes
    version: int
    ecl: str
    mask: int
    segments: list[seg.Segment]
    matrix: np.ndarray             # (size, size) uint8, 1 = dark
    function_mask: np.ndarray      # (size, size) bool
    module_block: np.ndarray       # (size, size) int16, RS block of the module's codeword; -1 elsewhere
    module_codeword: np.ndarray    # (size, size) int16, codeword index within its block (data, then EC); -1
    module_bit: np.ndarray         # (size, size) int8, bit within that codeword, 7 = most significant; -1
    blocks: list[tuple[np.ndarray, np.ndarray]]  # per block: (data codewords, EC codewords)
    codewords: np.ndarray          # the interleaved codeword sequence as placed
    data_bits: int                 # bits used by segments + terminator
    free_bits: int                 # data capacity left after the terminator
    geometry: Geometry | None = field(default=None)

    @property
    def size(self) -> int:
        return self.matrix.shape[0]

    @property
    def ec_per_block(self) -> int:
        return EC_CODEWORDS_PER_BLOCK[self.ecl][self.version]

    @property
    def data_codewords(self) -> np.ndarray:
        """All data codewords before EC, in block order."""
        return np.concatenate([d for d, _ in self.blocks])

    def correctable(self) -> int:
        """Codeword errors each block can correct (decoders correct up to half the EC codewords)."""
        return self.ec_per_block // 2

    def with_geometry(self, geometry: Geometry) -> QRCode:
        return replace(self, geometry=geometry)

    def with_matrix(self, matrix: np.ndarray, blocks: list[tuple[np.ndarray, np.ndarray]]) -> QRCode:
        """A copy carrying another valid matrix of the same layout (e.g. after codeword reshuffling)."""
        return replace(self, matrix=matrix, blocks=blocks, codewords=interleave(blocks))

    def to_json(self) -> dict:
        """Summary plus the matrix, enough to rebuild the code with `QRCode.from_json`."""
        spec = [[s.mode, s.bits if s.mode == "eci" else s.char_count] for s in self.segments]
        return {**self.summary(), "segment_spec": spec, "matrix": self.matrix.astype(int).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> QRCode:
        """Rebuild from `to_json` output: the layout from the settings, the codewords from the matrix."""
        segments = _segments_from_spec(d["text"].encode("utf-8"), d["segment_spec"]) if "segment_spec" in d else None
        qr = encode(d["text"], version=int(d["version"]), ecl=d["ecl"], mask=int(d["mask"]), segments=segments)
        if "matrix" in d:
            matrix = np.asarray(d["matrix"], dtype=np.uint8)
            if matrix.shape != qr.matrix.shape:
                raise QRInputError(f"matrix is {matrix.shape[0]}×{matrix.shape[1]} but version {qr.version} "
                                   f"is {qr.size}×{qr.size}")
            if not np.array_equal(matrix, qr.matrix):
                qr = qr.with_matrix(matrix, read_blocks(matrix, qr.version, qr.ecl, qr.mask))
        if "module_px" in d:
            qr = qr.with_geometry(Geometry.from_dict(d))
        return qr

    def summary(self) -> dict:
        """The JSON-able description the CLI and node reports print."""
        out = {"text": self.text, "version": self.version, "ecl": self.ecl, "mask": self.mask,
               "size": self.size, "blocks": len(self.blocks), "ec_per_block": self.ec_per_block,
               "correctable_per_block": self.correctable(), "free_bits": self.free_bits,
               "segments": [s.mode for s in self.segments]}
        if self.geometry is not None:
            out.update(self.geometry.to_dict())
        return out


def _segments_from_spec(payload: bytes, spec: list) -> list[seg.Segment]:
    """Rebuild segments from [mode, char count (ECI: designator)] pairs by slicing the payload."""
    out, pos = [], 0
    for mode, n in spec:
        if mode == "eci":
            out.append(seg.eci(int(n)))
            continue
        chunk, pos = payload[pos:pos + int(n)], pos + int(n)
        out.append(seg.byte(chunk) if mode == "byte" else
                   seg.numeric(chunk.decode("ascii")) if mode == "numeric" else seg.alphanumeric(chunk.decode("ascii")))
    if pos != len(payload):
        raise QRInputError(f"segment spec covers {pos} bytes but the text has {len(payload)}")
    return out


def interleave(blocks: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Codeword order in the symbol: column i of every block's data, then of every block's EC (§7.6)."""
    out = []
    for part in (0, 1):
        longest = max(len(b[part]) for b in blocks)
        for i in range(longest):
            out.extend(int(b[part][i]) for b in blocks if i < len(b[part]))
    return np.array(out, dtype=np.uint8)


def _interleave_index(version: int, ecl: str) -> tuple[np.ndarray, np.ndarray]:
    """For each codeword position in the symbol: (block, index within the block)."""
    lengths = block_lengths(version, ecl)
    n_ec = EC_CODEWORDS_PER_BLOCK[ecl][version]
    pos_block, pos_index = [], []
    for i in range(max(lengths)):
        for b, n in enumerate(lengths):
            if i < n:
                pos_block.append(b)
                pos_index.append(i)
    for i in range(n_ec):
        for b, n in enumerate(lengths):
            pos_block.append(b)
            pos_index.append(n + i)
    return np.array(pos_block), np.array(pos_index)


def _check_args(text: str, version: int | None, ecl: str, mask: int | None) -> None:
    if not isinstance(text, str) or text == "":
        raise QRInputError("text is empty: give the message to encode")
    if len(text) > MAX_TEXT_CHARS:
        raise QRInputError(f"text has {len(text)} characters; no QR code holds more than {MAX_TEXT_CHARS}")
    if ecl not in ECLS:
        raise QRInputError(f"error-correction level {ecl!r} is not one of L, M, Q, H")
    if version is not None and not (isinstance(version, (int, np.integer)) and 1 <= version <= 40):
        raise QRInputError(f"version {version!r} is out of range: use 1-40, or leave it unset for the smallest")
    if mask is not None and not (isinstance(mask, (int, np.integer)) and 0 <= mask <= 7):
        raise QRInputError(f"mask {mask!r} is out of range: use 0-7, or leave it unset for automatic choice")


def _bits_needed(segments: list[seg.Segment], version: int) -> int | None:
    if not all(s.fits_count_field(version) for s in segments):
        return None
    return sum(s.size(version) for s in segments)


def fits(segments: list[seg.Segment], version: int, ecl: str) -> bool:
    need = _bits_needed(segments, version)
    return need is not None and need <= 8 * data_codewords(version, ecl)


def smallest_version(segments: list[seg.Segment], ecl: str, start: int = 1) -> int | None:
    return next((v for v in range(start, 41) if fits(segments, v, ecl)), None)


def _capacity_error(segments: list[seg.Segment], version: int | None, ecl: str) -> QRInputError:
    smallest = smallest_version(segments, ecl)
    if version is None or smallest is None:
        need = _bits_needed(segments, 40)  # at the largest version, whatever version was asked for
        needs = (f"needs {need} bits" if need is not None
                 else "has more characters than a segment's character count holds")
        return QRInputError(
            f"the text {needs}, more than the largest code (version 40-{ecl}, "
            f"{8 * data_codewords(40, ecl)} bits) holds: shorten it or lower the error-correction level")
    need = _bits_needed(segments, version)  # None: more characters than the version's count field holds
    needs = f"needs {need} bits but" if need is not None else "is too long for"
    return QRInputError(
        f"the text {needs} version {version}-{ecl}" + (f" holds {8 * data_codewords(version, ecl)}" if need else "")
        + f"; the smallest version that fits at level {ecl} is {smallest} (or lower the level)")


def _data_codewords(segments: list[seg.Segment], version: int, ecl: str) -> tuple[np.ndarray, int, int]:
    """Segments + terminator + zero bits to a byte + 0xEC/0x11 padding; also (used bits, free bits)."""
    capacity = 8 * data_codewords(version, ecl)
    bits, n = seg.stream_bits(segments, version)
    terminator = min(4, capacity - n)
    n_used = n + terminator
    bits <<= terminator
    pad_to_byte = -n_used % 8
    bits <<= pad_to_byte
    stream = bits.to_bytes((n_used + pad_to_byte) // 8, "big") if n_used else b""
    pad = bytes((0xEC, 0x11)) * (capacity // 16 + 1)
    stream += pad[:capacity // 8 - len(stream)]
    return np.frombuffer(stream, dtype=np.uint8), n_used, capacity - n_used


def make_blocks(data: np.ndarray, version: int, ecl: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split data codewords into RS blocks and compute each block's EC codewords."""
    lengths = block_lengths(version, ecl)
    n_ec = EC_CODEWORDS_PER_BLOCK[ecl][version]
    starts = np.concatenate(([0], np.cumsum(lengths)))
    blocks: list = [None] * len(lengths)
    for length in sorted(set(lengths)):
        ids = [b for b, n in enumerate(lengths) if n == length]
        group = np.stack([data[starts[b]:starts[b] + length] for b in ids])
        ec = rs_remainder(group, n_ec)
        for row, b in enumerate(ids):
            blocks[b] = (group[row].astype(np.uint8), ec[row])
    return blocks


def place(codewords: np.ndarray, version: int, ecl: str, mask: int) -> np.ndarray:
    """The final matrix: function patterns, codeword bits along the path, mask, format bits."""
    tpl = template(version)
    matrix = tpl.base.copy()
    bits = np.unpackbits(codewords)
    matrix[tpl.path_rows[:bits.size], tpl.path_cols[:bits.size]] = bits
    matrix ^= tpl.masks[mask]
    draw_format(matrix, tpl, ecl, mask)
    return matrix


def read_blocks(matrix: np.ndarray, version: int, ecl: str, mask: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The inverse of `place`: unmask, read the path, de-interleave into (data, EC) per block."""
    tpl = template(version)
    pos_block, pos_index = _interleave_index(version, ecl)
    bits = (matrix ^ tpl.masks[mask])[tpl.path_rows[:8 * pos_block.size], tpl.path_cols[:8 * pos_block.size]]
    codewords = np.packbits(bits.astype(np.uint8))
    lengths = block_lengths(version, ecl)
    n_ec = EC_CODEWORDS_PER_BLOCK[ecl][version]
    full = [np.zeros(n + n_ec, dtype=np.uint8) for n in lengths]
    for cw, b, i in zip(codewords, pos_block, pos_index):
        full[b][i] = cw
    return [(f[:n], f[n:]) for f, n in zip(full, lengths)]


def best_mask(codewords: np.ndarray, version: int, ecl: str) -> int:
    """The mask with the lowest standard penalty (first one on ties)."""
    scores = [penalty(place(codewords, version, ecl, m)) for m in range(8)]
    return int(np.argmin(scores))


def module_maps(version: int, ecl: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(block, codeword-in-block, bit) of every data/EC module; -1 on function modules and remainder bits."""
    tpl = template(version)
    pos_block, pos_index = _interleave_index(version, ecl)
    n_bits = 8 * pos_block.size
    rows, cols = tpl.path_rows[:n_bits], tpl.path_cols[:n_bits]
    k = np.arange(n_bits)
    block = np.full((tpl.size, tpl.size), -1, dtype=np.int16)
    codeword = np.full((tpl.size, tpl.size), -1, dtype=np.int16)
    bit = np.full((tpl.size, tpl.size), -1, dtype=np.int8)
    block[rows, cols] = pos_block[k // 8]
    codeword[rows, cols] = pos_index[k // 8]
    bit[rows, cols] = 7 - k % 8
    return block, codeword, bit


def encode(text: str, version: int | None = None, ecl: str = "M", mask: int | None = None, *,
           boost_ecl: bool = False, mode: str = "auto", use_eci: bool = False,
           segments: list[seg.Segment] | None = None) -> QRCode:
    """Encode `text` as QR Model 2.

    version None → the smallest that fits; mask None → lowest penalty; the level is exactly `ecl` unless
    `boost_ecl` asks to raise it as far as the chosen version allows. `segments` overrides the automatic
    single-mode segmentation (their decoded concatenation must equal `text`).
    """
    ecl = ecl.upper() if isinstance(ecl, str) else ecl
    _check_args(text, version, ecl, mask)
    segs = segments if segments is not None else seg.make_segments(text, mode, use_eci)
    if version is None:
        version = smallest_version(segs, ecl)
        if version is None:
            raise _capacity_error(segs, None, ecl)
    elif not fits(segs, version, ecl):
        raise _capacity_error(segs, version, ecl)
    if boost_ecl:
        ecl = max((e for e in ECLS if fits(segs, version, e)), key=ECLS.index)

    data, n_used, free = _data_codewords(segs, version, ecl)
    blocks = make_blocks(data, version, ecl)
    codewords = interleave(blocks)
    if mask is None:
        mask = best_mask(codewords, version, ecl)
    matrix = place(codewords, version, ecl, int(mask))
    block, codeword, bit = module_maps(version, ecl)
    tpl = template(version)
    return QRCode(text=text, payload=text.encode("utf-8"), version=int(version), ecl=ecl, mask=int(mask),
                  segments=segs, matrix=matrix, function_mask=tpl.function_mask.copy(), module_block=block,
                  module_codeword=codeword, module_bit=bit, blocks=blocks, codewords=codewords,
                  data_bits=n_used, free_bits=free)
