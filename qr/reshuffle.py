"""QArt-style codeword reshuffling: make a code's modules follow a target while it still decodes.

Reed-Solomon over GF(256) is linear over GF(2), so XOR-ing two valid codewords of a block gives a valid codeword.
Every *free* data bit (after the terminator, or the digits of a QArt URL fragment) contributes one basis vector:
its unit bit plus the EC parity bits it causes. Gaussian elimination then pins one module at a time, in priority
order, by XOR-ing a basis row into the codeword and eliminating that position from the rest (Russ Cox's QArt;
ARTUP's codeword adjustment; Face2QR's IDRS pins the face modules first). A block can pin exactly as many modules
as it has free bits. Blocks are independent, so the elimination runs for all blocks at once, bit-packed in uint64
words.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from . import segments as seg
from .code import QRCode, encode, interleave, place
from .errors import QRInputError
from .gf256 import rs_remainder
from .layout import template
from .tables import EC_CODEWORDS_PER_BLOCK, block_lengths, data_codewords


@dataclass
class ReshuffleReport:
    requested: int = 0     # modules the target asked for (not don't-care, not function patterns)
    pinned: int = 0        # modules a basis vector was spent on
    matched: int = 0       # requested modules whose final value equals the target
    impossible: int = 0    # requested modules already fixed by earlier pins, with the wrong value
    fixed_requested: int = 0
    fixed_unmet: int = 0   # fixed (e.g. face) modules that could not take the target value
    free_bits: int = 0
    per_block: list[dict] = field(default_factory=list)
    status: np.ndarray | None = None  # per module: 0 not requested, 1 pinned, 2 already right, 3 impossible

    @property
    def match_fraction(self) -> float:
        return self.matched / self.requested if self.requested else 1.0

    def to_dict(self) -> dict:
        return {"requested": self.requested, "pinned": self.pinned, "matched": self.matched,
                "impossible": self.impossible, "fixed_requested": self.fixed_requested,
                "fixed_unmet": self.fixed_unmet, "free_bits": self.free_bits,
                "match_fraction": round(self.match_fraction, 4), "per_block": self.per_block}

    def to_text(self) -> str:
        lines = [f"requested {self.requested} modules: pinned {self.pinned} (= free bits {self.free_bits}), "
                 f"matching {self.matched} ({100 * self.match_fraction:.1f} %), impossible {self.impossible}"]
        if self.fixed_unmet:
            lines.append(f"fixed region: {self.fixed_requested} modules, {self.fixed_unmet} could not be honoured "
                         f"(the code has {self.free_bits} free bits, spread over its RS blocks): lower the "
                         f"error-correction level, allow a larger version or shrink the region")
        elif self.fixed_requested:
            lines.append(f"fixed region: all {self.fixed_requested} modules honoured")
        lines += [f"  block {i}: free {b['free_bits']}, requested {b['requested']}, pinned {b['pinned']}, "
                  f"impossible {b['impossible']}" for i, b in enumerate(self.per_block)]
        return "\n".join(lines)


def url_fragment_code(url: str, version: int, ecl: str, mask: int) -> tuple[QRCode, np.ndarray]:
    """QArt's trick for URLs: `url#` then a numeric segment that fills the symbol. The digits are free (the
    decoded text changes, the page a browser opens does not). Returns the code and its free data-bit indices:
    all 10 bits of every 3-digit group, then whatever follows the terminator."""
    capacity = 8 * data_codewords(version, ecl)
    head = seg.byte((url + "#").encode("utf-8"))
    left = capacity - head.size(version) - 4 - seg.char_count_bits("numeric", version)
    groups = left // 10
    if groups < 1:
        raise QRInputError(f"version {version}-{ecl} has no room for a URL fragment after {url!r}; "
                           f"use a larger version or a lower level")
    tail = seg.numeric("0" * (3 * groups))
    qr = encode(url + "#" + "0" * (3 * groups), version=version, ecl=ecl, mask=mask, segments=[head, tail])
    return qr, np.concatenate([_fragment_start(qr) + np.arange(10 * groups), np.arange(qr.data_bits, capacity)])


def _fragment_start(qr: QRCode) -> int:
    return qr.segments[0].size(qr.version) + 4 + seg.char_count_bits("numeric", qr.version)


def _fragment_groups(qr: QRCode) -> np.ndarray:
    """The 10-bit values of the fragment's 3-digit groups (a decoder rejects values ≥ 1000)."""
    start = _fragment_start(qr)
    bits = np.unpackbits(qr.data_codewords)[start:start + qr.segments[1].n_bits].astype(np.int64)
    return bits.reshape(-1, 10) @ (1 << np.arange(9, -1, -1))


def reshuffle_url(url: str, version: int, ecl: str, mask: int, target: np.ndarray,
                  priority: np.ndarray | None = None, *, fixed: np.ndarray | None = None,
                  dont_care: np.ndarray | None = None, seed: int = 0,
                  max_rounds: int = 6) -> tuple[QRCode, ReshuffleReport]:
    """Reshuffle a `url_fragment_code`. Every bit of the digit groups is free, but a group must stay below 1000:
    groups that land on 1000-1023 get their top bit pinned to 0 (as a fixed request) and the elimination runs
    again — a few percent of groups at most, so this keeps nearly 10 free bits per group where fixing the top
    bit up front would keep 9."""
    qr, free = url_fragment_code(url, version, ecl, mask)
    size = qr.size
    target = np.asarray(target).astype(bool).copy()
    fixed = np.zeros((size, size), bool) if fixed is None else np.asarray(fixed, dtype=bool).copy()
    mask_pattern = template(version).masks[mask]
    top_bit_module = _data_bit_modules(qr, _fragment_start(qr) + 10 * np.arange(qr.segments[1].char_count // 3))
    for _ in range(max_rounds):
        out, report = reshuffle(qr, target, priority, fixed=fixed, dont_care=dont_care, free_positions=free,
                                seed=seed)
        bad = np.flatnonzero(_fragment_groups(out) >= 1000)
        if bad.size == 0:
            return with_fragment_text(out), report
        r, c = top_bit_module[:, bad]
        fixed[r, c] = True
        target[r, c] = mask_pattern[r, c]  # the module value that makes the codeword bit 0
    raise QRInputError("could not keep the URL fragment's digits valid; use the payload's free bits instead "
                       "(turn the URL-fragment mode off)")


def _data_bit_modules(qr: QRCode, positions: np.ndarray) -> np.ndarray:
    """(row, col) of the modules carrying the given data-stream bit indices: shape (2, n)."""
    lengths = block_lengths(qr.version, qr.ecl)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    block = np.searchsorted(starts, positions // 8, side="right") - 1
    codeword = positions // 8 - starts[block]
    bit = 7 - positions % 8
    rows, cols = np.nonzero(qr.module_block >= 0)
    key = (qr.module_block[rows, cols].astype(np.int64) * 4096 + qr.module_codeword[rows, cols]) * 8 \
        + qr.module_bit[rows, cols]
    order = np.argsort(key)
    idx = order[np.searchsorted(key[order], (block * 4096 + codeword) * 8 + bit)]
    return np.stack([rows[idx], cols[idx]])


def with_fragment_text(qr: QRCode) -> QRCode:
    """After reshuffling, read the digits back so the code's text is what decoders return."""
    text = qr.text[:qr.text.rindex("#") + 1] + "".join(f"{v:03d}" for v in _fragment_groups(qr))
    return replace(qr, text=text, payload=text.encode("utf-8"))


@lru_cache(maxsize=64)
def _unit_parity(n_data: int, n_ec: int) -> np.ndarray:
    """Bits (MSB-first per codeword) of the codeword made by each single data bit: (8·n_data, 8·(n_data+n_ec))."""
    k = 8 * n_data
    data = np.zeros((k, n_data), dtype=np.uint8)
    q = np.arange(k)
    data[q, q // 8] = 0x80 >> (q % 8)
    full = np.concatenate([data, rs_remainder(data, n_ec)], axis=1)
    bits = np.unpackbits(full, axis=1)
    bits.flags.writeable = False
    return bits


def _pack(bits: np.ndarray, words: int) -> np.ndarray:
    """Bool bits (…, N) → little-endian uint64 words (…, words): bit q at word q // 64, bit q % 64."""
    packed = np.packbits(bits.astype(np.uint8), axis=-1, bitorder="little")
    out = np.zeros(bits.shape[:-1] + (8 * words,), dtype=np.uint8)
    out[..., :packed.shape[-1]] = packed
    return out.view("<u8")


def _unpack(words: np.ndarray, n_bits: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")[..., :n_bits]


def reshuffle(qr: QRCode, target: np.ndarray, priority: np.ndarray | None = None, *,
              fixed: np.ndarray | None = None, dont_care: np.ndarray | None = None,
              free_positions: np.ndarray | None = None, seed: int = 0) -> tuple[QRCode, ReshuffleReport]:
    """Rearrange the free bits of `qr` so its modules follow `target` (size×size, 1 = dark).

    Modules are pinned in order: `fixed` ones first, then by `priority` (higher first; ties broken by a seeded
    shuffle). `dont_care` modules are never requested. `free_positions` are data-stream bit indices that may
    change (default: everything after the terminator). Remainder bits (outside every codeword) take the target
    directly. The payload and every RS block stay valid.
    """
    size = qr.size
    target = np.asarray(target).astype(bool)
    if target.shape != (size, size):
        raise QRInputError(f"target has shape {target.shape} but the code is {size}×{size} modules; "
                           f"resample the picture to the module grid first")
    priority = np.zeros((size, size)) if priority is None else np.asarray(priority, dtype=np.float64)
    fixed = np.zeros((size, size), bool) if fixed is None else np.asarray(fixed, dtype=bool)
    dont_care = np.zeros((size, size), bool) if dont_care is None else np.asarray(dont_care, dtype=bool)
    capacity = 8 * data_codewords(qr.version, qr.ecl)
    if free_positions is None:
        free_positions = np.arange(qr.data_bits, capacity)

    tpl = template(qr.version)
    lengths = block_lengths(qr.version, qr.ecl)
    n_ec = EC_CODEWORDS_PER_BLOCK[qr.ecl][qr.version]
    n_blocks = len(lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    n_bits = 8 * (max(lengths) + n_ec)
    words = -(-n_bits // 64)

    # Free data bits → (block, position in the block's codeword bit string).
    free_positions = np.asarray(free_positions, dtype=np.int64)
    free_block = np.searchsorted(starts, free_positions // 8, side="right") - 1
    free_q = free_positions - 8 * starts[free_block]

    # Basis rows per block: unit data bit + its parity, padded to the longest block.
    k_max = max(int(np.bincount(free_block, minlength=n_blocks).max(initial=0)), 1)
    basis = np.zeros((n_blocks, k_max, words), dtype=np.uint64)
    active = np.zeros((n_blocks, k_max), dtype=bool)
    per_block_free = np.zeros(n_blocks, dtype=int)
    for b in range(n_blocks):
        qs = free_q[free_block == b]
        rows = _unit_parity(lengths[b], n_ec)[qs]
        basis[b, :len(qs)] = _pack(rows, words)
        active[b, :len(qs)] = True
        per_block_free[b] = len(qs)

    codeword_bits = np.zeros((n_blocks, words), dtype=np.uint64)
    for b, (d, e) in enumerate(qr.blocks):
        codeword_bits[b] = _pack(np.unpackbits(np.concatenate([d, e])), words)

    # Requests: every data/EC module not don't-care, as the codeword bit that makes the module show the target.
    in_block = (qr.module_block >= 0) & ~dont_care
    rows_, cols_ = np.nonzero(in_block)
    blk = qr.module_block[rows_, cols_].astype(np.int64)
    q = 8 * qr.module_codeword[rows_, cols_].astype(np.int64) + 7 - qr.module_bit[rows_, cols_]
    mask_bit = tpl.masks[qr.mask][rows_, cols_]
    want = target[rows_, cols_] ^ mask_bit
    tie = np.random.default_rng(seed).random(rows_.size)
    order = np.lexsort((tie, -priority[rows_, cols_], ~fixed[rows_, cols_], blk))
    blk, q, want, rows_, cols_ = blk[order], q[order], want[order], rows_[order], cols_[order]
    counts = np.bincount(blk, minlength=n_blocks)
    steps = int(counts.max(initial=0))
    first = np.concatenate(([0], np.cumsum(counts)))[:-1]
    step_of = np.arange(blk.size) - first[blk]
    pos = np.zeros((n_blocks, steps), dtype=np.int64)
    desired = np.zeros((n_blocks, steps), dtype=np.uint64)
    valid = np.zeros((n_blocks, steps), dtype=bool)
    pos[blk, step_of] = q
    desired[blk, step_of] = want
    valid[blk, step_of] = True
    status = np.zeros((n_blocks, steps), dtype=np.int8)  # 1 pinned, 2 already right, 3 impossible

    bi = np.arange(n_blocks)
    one = np.uint64(1)
    for t in range(steps):
        p = pos[:, t]
        w, s = p >> 6, (p & 63).astype(np.uint64)
        column = (basis[bi, :, w] >> s[:, None]) & one
        candidates = (column == one) & active & valid[:, t, None]
        has = candidates.any(axis=1)
        pivot = candidates.argmax(axis=1)
        current = (codeword_bits[bi, w] >> s) & one
        flip = has & (current != desired[:, t])
        codeword_bits[flip] ^= basis[bi[flip], pivot[flip]]
        candidates[bi, pivot] = False
        eb, er = np.nonzero(candidates & has[:, None])
        basis[eb, er] ^= basis[eb, pivot[eb]]
        active[bi[has], pivot[has]] = False
        status[:, t] = np.where(has, 1, np.where(current == desired[:, t], 2, 3))
    status = np.where(valid, status, 0)

    bits = _unpack(codeword_bits, n_bits)
    blocks = []
    for b, n in enumerate(lengths):
        full = np.packbits(bits[b, :8 * (n + n_ec)])
        blocks.append((full[:n].copy(), full[n:].copy()))
    _check_still_valid(qr, blocks, free_positions, n_ec)

    codewords = interleave(blocks)
    matrix = place(codewords, qr.version, qr.ecl, qr.mask)
    n_placed = 8 * codewords.size
    rem_r, rem_c = tpl.path_rows[n_placed:], tpl.path_cols[n_placed:]
    rem_free = ~dont_care[rem_r, rem_c]
    matrix[rem_r[rem_free], rem_c[rem_free]] = target[rem_r[rem_free], rem_c[rem_free]]

    out = qr.with_matrix(matrix, blocks)
    report = _report(qr, status, blk, step_of, rows_, cols_, fixed, target, matrix, per_block_free)
    return out, report


def _check_still_valid(qr: QRCode, blocks, free_positions, n_ec) -> None:
    """Internal invariants: EC still matches the data, and only free data bits changed."""
    before = np.unpackbits(np.concatenate([d for d, _ in qr.blocks]))
    after = np.unpackbits(np.concatenate([d for d, _ in blocks]))
    changed = np.flatnonzero(before != after)
    assert np.isin(changed, free_positions).all(), "reshuffle changed a payload bit"
    for d, e in blocks:
        assert np.array_equal(rs_remainder(d, n_ec)[0], e), "reshuffle broke a Reed-Solomon block"


def _report(qr, status, blk, step_of, rows_, cols_, fixed, target, matrix, per_block_free) -> ReshuffleReport:
    st = status[blk, step_of]
    right = matrix[rows_, cols_].astype(bool) == target[rows_, cols_]
    is_fixed = fixed[rows_, cols_]
    rep = ReshuffleReport(requested=int(st.size), pinned=int((st == 1).sum()), matched=int(right.sum()),
                          impossible=int((st == 3).sum()), fixed_requested=int(is_fixed.sum()),
                          fixed_unmet=int((is_fixed & ~right).sum()), free_bits=int(per_block_free.sum()))
    rep.status = np.zeros(qr.matrix.shape, dtype=np.int8)
    rep.status[rows_, cols_] = st
    for b in range(len(qr.blocks)):
        sel = blk == b
        rep.per_block.append({"free_bits": int(per_block_free[b]), "requested": int(sel.sum()),
                              "pinned": int((st[sel] == 1).sum()), "impossible": int((st[sel] == 3).sum())})
    return rep
