"""Reed-Solomon error correction over GF(256) with QR's field (x^8+x^4+x^3+x^2+1, generator 2, fcr 0)."""

from functools import cache

import numpy as np

_PRIMITIVE = 0x11D


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.int32)
    log = np.zeros(256, dtype=np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= _PRIMITIVE
    exp[255:510] = exp[0:255]
    return exp, log


EXP, LOG = _build_tables()


def gf_mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Element-wise product in GF(256) (numpy broadcasting)."""
    a = np.asarray(a, dtype=np.int32)
    b = np.asarray(b, dtype=np.int32)
    product = EXP[LOG[a] + LOG[b]]
    return np.where((a == 0) | (b == 0), 0, product)


@cache
def generator_poly(n_ec: int) -> np.ndarray:
    """Coefficients (highest power first, leading 1 dropped) of prod_{i<n_ec} (x - 2^i)."""
    poly = np.array([1], dtype=np.int32)
    for i in range(n_ec):
        shifted = np.append(poly, 0)
        shifted[1:] ^= gf_mul(poly, EXP[i])
        poly = shifted
    return poly[1:]


def rs_remainder(data: np.ndarray, n_ec: int) -> np.ndarray:
    """EC codewords for each row of `data` (blocks × data codewords, all the same length) by polynomial division.

    The loop runs over codeword positions, each step vectorised over all blocks.
    """
    data = np.atleast_2d(np.asarray(data, dtype=np.int32))
    gen_log = LOG[generator_poly(n_ec)]
    rem = np.zeros((data.shape[0], n_ec), dtype=np.int32)
    for column in data.T:
        factor = column ^ rem[:, 0]
        rem[:, :-1] = rem[:, 1:]
        rem[:, -1] = 0
        nonzero = factor != 0
        if nonzero.any():
            rem[nonzero] ^= EXP[LOG[factor[nonzero]][:, None] + gen_log[None, :]]
    return rem.astype(np.uint8)
