"""QR Model 2 constants (ISO/IEC 18004:2015, tables 7-9 and annex E).

Only two numbers per (version, level) are stored: EC codewords per block and the number of blocks; the
codeword total comes from the layout, so block sizes follow (short blocks first, long blocks one byte longer).
"""

ECLS = ("L", "M", "Q", "H")

# Format-information bits of each error-correction level (table 12).
ECL_FORMAT_BITS = {"L": 0b01, "M": 0b00, "Q": 0b11, "H": 0b10}

# Index 0 is unused so the lists are indexed by version.
EC_CODEWORDS_PER_BLOCK = {
    "L": (0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26,
          28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    "M": (0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28,
          28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28),
    "Q": (0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30,
          28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    "H": (0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30,
          30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
}

NUM_BLOCKS = {
    "L": (0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16,
          17, 18, 19, 19, 20, 21, 22, 24, 25),
    "M": (0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28,
          29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49),
    "Q": (0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35,
          38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68),
    "H": (0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42,
          45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81),
}


def symbol_size(version: int) -> int:
    return 17 + 4 * version


def raw_data_modules(version: int) -> int:
    """Modules left for codewords and remainder bits once every function pattern is placed."""
    size = symbol_size(version)
    n = size * size - 3 * 64 - 2 * (size - 16) - 31  # finders+separators, timing, format + dark module
    if version >= 2:
        k = version // 7 + 2
        n -= 25 * (k * k - 3) - 10 * (k - 2)  # alignment patterns, minus their overlap with timing
    if version >= 7:
        n -= 36
    return n


def total_codewords(version: int) -> int:
    return raw_data_modules(version) // 8


def data_codewords(version: int, ecl: str) -> int:
    return total_codewords(version) - EC_CODEWORDS_PER_BLOCK[ecl][version] * NUM_BLOCKS[ecl][version]


def block_lengths(version: int, ecl: str) -> list[int]:
    """Data codewords of each RS block, in block order."""
    n_blocks = NUM_BLOCKS[ecl][version]
    short, n_long = divmod(data_codewords(version, ecl), n_blocks)
    return [short] * (n_blocks - n_long) + [short + 1] * n_long


def alignment_positions(version: int) -> list[int]:
    """Row/column centres of the alignment patterns (annex E)."""
    if version == 1:
        return []
    count = version // 7 + 2
    last = symbol_size(version) - 7
    step = 26 if version == 32 else -(-(last - 6) // (2 * (count - 1))) * 2
    return [6] + [last - i * step for i in range(count - 2, -1, -1)]
