"""Where everything sits in a symbol: function patterns, the data-module path, masks, format/version bits.

All per-version work is cached, so encoding a code is array indexing plus Reed-Solomon.
"""

from dataclasses import dataclass
from functools import cache

import numpy as np

from .tables import ECL_FORMAT_BITS, alignment_positions, symbol_size


@dataclass(frozen=True)
class Template:
    """Everything about a version that does not depend on the data, the level or the mask."""

    version: int
    size: int
    base: np.ndarray            # uint8 matrix with function patterns (format area left light)
    function_mask: np.ndarray   # bool, True on function modules (format area and dark module included)
    path_rows: np.ndarray       # data-module coordinates in placement order (bit 0 first)
    path_cols: np.ndarray
    format_rows: np.ndarray     # (2, 15): both copies of the 15 format bits, bit i at [:, i]
    format_cols: np.ndarray
    masks: np.ndarray           # (8, size, size) bool: where each mask pattern flips a data module


def format_bits(ecl: str, mask: int) -> int:
    """15-bit format information: level and mask, BCH(15,5) protected, XOR 0x5412."""
    data = (ECL_FORMAT_BITS[ecl] << 3) | mask
    rem = data
    for _ in range(10):
        rem = (rem << 1) ^ ((rem >> 9) * 0x537)
    return ((data << 10) | rem) ^ 0x5412


def version_bits(version: int) -> int:
    """18-bit version information, BCH(18,6) protected (versions 7 and up)."""
    rem = version
    for _ in range(12):
        rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
    return (version << 12) | rem


def _mask_patterns(size: int) -> np.ndarray:
    i, j = np.indices((size, size))
    return np.stack([
        (i + j) % 2 == 0,
        i % 2 == 0,
        j % 3 == 0,
        (i + j) % 3 == 0,
        (i // 2 + j // 3) % 2 == 0,
        (i * j) % 2 + (i * j) % 3 == 0,
        ((i * j) % 2 + (i * j) % 3) % 2 == 0,
        ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    ])


def _format_positions(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of format bit i, first copy around the top-left finder, second split over the other two."""
    first = [(i, 8) for i in range(6)] + [(7, 8), (8, 8), (8, 7)] + [(8, 14 - i) for i in range(9, 15)]
    second = [(8, size - 1 - i) for i in range(8)] + [(size - 15 + i, 8) for i in range(8, 15)]
    rows = np.array([[r for r, _ in first], [r for r, _ in second]])
    cols = np.array([[c for _, c in first], [c for _, c in second]])
    return rows, cols


@cache
def template(version: int) -> Template:
    size = symbol_size(version)
    base = np.zeros((size, size), dtype=np.uint8)
    func = np.zeros((size, size), dtype=bool)

    base[6, :] = base[:, 6] = (np.arange(size) % 2 == 0)  # timing
    func[6, :] = func[:, 6] = True

    ring = np.maximum(*np.abs(np.mgrid[-4:5, -4:5]))  # Chebyshev distance from a finder's centre
    finder = ((ring != 2) & (ring != 4)).astype(np.uint8)
    for r, c in ((3, 3), (3, size - 4), (size - 4, 3)):
        r0, c0 = max(r - 4, 0), max(c - 4, 0)
        r1, c1 = min(r + 5, size), min(c + 5, size)
        base[r0:r1, c0:c1] = finder[r0 - r + 4:r1 - r + 4, c0 - c + 4:c1 - c + 4]
        func[r0:r1, c0:c1] = True

    align = (np.maximum(*np.abs(np.mgrid[-2:3, -2:3])) != 1).astype(np.uint8)
    centres = alignment_positions(version)
    last = len(centres) - 1
    for a, r in enumerate(centres):
        for b, c in enumerate(centres):
            if (a, b) in ((0, 0), (0, last), (last, 0)):
                continue  # would overlap a finder
            base[r - 2:r + 3, c - 2:c + 3] = align
            func[r - 2:r + 3, c - 2:c + 3] = True

    format_rows, format_cols = _format_positions(size)
    func[format_rows, format_cols] = True
    base[size - 8, 8] = 1  # the dark module
    func[size - 8, 8] = True

    if version >= 7:
        bits = version_bits(version)
        for i in range(18):
            a, b = size - 11 + i % 3, i // 3
            base[a, b] = base[b, a] = (bits >> i) & 1
            func[a, b] = func[b, a] = True

    rows, cols = [], []
    right = size - 1
    while right >= 1:
        if right == 6:
            right = 5  # the vertical timing pattern has no partner column
        upward = ((right + 1) & 2) == 0
        for vert in range(size):
            r = size - 1 - vert if upward else vert
            for c in (right, right - 1):
                if not func[r, c]:
                    rows.append(r)
                    cols.append(c)
        right -= 2

    masks = _mask_patterns(size) & ~func
    for arr in (base, func, masks):
        arr.flags.writeable = False
    return Template(version, size, base, func, np.array(rows), np.array(cols), format_rows, format_cols, masks)


def draw_format(matrix: np.ndarray, tpl: Template, ecl: str, mask: int) -> None:
    bits = format_bits(ecl, mask)
    values = (bits >> np.arange(15)) & 1
    matrix[tpl.format_rows, tpl.format_cols] = values[None, :]


def _run_penalty(lines: np.ndarray) -> int:
    """N1: 3 + (k − 5) for every run of k ≥ 5 same-coloured modules in these lines."""
    padded = np.full((lines.shape[0], lines.shape[1] + 1), 2, dtype=np.int8)
    padded[:, :-1] = lines
    flat = padded.ravel()
    ends = np.flatnonzero(np.diff(flat) != 0)
    lengths = np.diff(np.concatenate(([-1], ends)))
    return int((lengths[lengths >= 5] - 2).sum())


_FINDER_CORE = np.array([1, 0, 1, 1, 1, 0, 1])


def _finder_penalty(lines: np.ndarray) -> int:
    """N3: 40 per dark 1:1:3:1:1 run with four light modules before or after it (outside the symbol is light).

    Each run counts once even when both sides are light, as the reference encoders (ZXing) score it.
    """
    n = lines.shape[1]
    padded = np.zeros((lines.shape[0], n + 8), dtype=np.int8)
    padded[:, 4:-4] = lines
    windows = np.lib.stride_tricks.sliding_window_view(padded, 15, axis=1)  # 4 + 7 + 4 around each start
    core = (windows[:, :, 4:11] == _FINDER_CORE).all(axis=2)
    light_before = (windows[:, :, :4] == 0).all(axis=2)
    light_after = (windows[:, :, 11:] == 0).all(axis=2)
    return 40 * int((core & (light_before | light_after)).sum())


def penalty(matrix: np.ndarray) -> int:
    """The standard's mask-selection score (ISO/IEC 18004 §7.8.3): lower is better."""
    m = matrix.astype(np.int8)
    score = _run_penalty(m) + _run_penalty(m.T)
    same = (m[:-1, :-1] == m[1:, :-1]) & (m[:-1, :-1] == m[:-1, 1:]) & (m[:-1, :-1] == m[1:, 1:])
    score += 3 * int(same.sum())
    score += _finder_penalty(m) + _finder_penalty(m.T)
    total = m.size
    score += 10 * (abs(20 * int(m.sum()) - 10 * total) // total)
    return score
