"""Data segments (numeric, alphanumeric, byte, ECI) and the bit stream they make (ISO/IEC 18004 §7.4)."""

from dataclasses import dataclass

from .errors import QRInputError

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALNUM_INDEX = {c: i for i, c in enumerate(ALPHANUMERIC)}

MODE_INDICATOR = {"numeric": 0b0001, "alphanumeric": 0b0010, "byte": 0b0100, "eci": 0b0111}
UTF8_ECI = 26


def char_count_bits(mode: str, version: int) -> int:
    if mode == "eci":
        return 0
    band = 0 if version <= 9 else 1 if version <= 26 else 2
    return {"numeric": (10, 12, 14), "alphanumeric": (9, 11, 13), "byte": (8, 16, 16)}[mode][band]


@dataclass(frozen=True)
class Segment:
    """One mode segment: `bits` (an int holding `n_bits` bits, MSB first) and the character count it declares."""

    mode: str
    char_count: int
    bits: int
    n_bits: int

    def size(self, version: int) -> int:
        """Bits this segment takes in a symbol of `version` (mode indicator + count + data)."""
        return 4 + char_count_bits(self.mode, version) + self.n_bits

    def fits_count_field(self, version: int) -> bool:
        return self.mode == "eci" or self.char_count < (1 << char_count_bits(self.mode, version))


def numeric(digits: str) -> Segment:
    if not digits.isascii() or not digits.isdigit():
        raise QRInputError(f"numeric segment takes digits 0-9 only, got {digits!r}")
    bits = n = 0
    for i in range(0, len(digits), 3):
        group = digits[i:i + 3]
        width = 3 * len(group) + 1
        bits, n = (bits << width) | int(group), n + width
    return Segment("numeric", len(digits), bits, n)


def alphanumeric(text: str) -> Segment:
    bad = sorted({c for c in text if c not in _ALNUM_INDEX})
    if bad:
        raise QRInputError(f"alphanumeric segment cannot hold {''.join(bad)!r}; allowed: {ALPHANUMERIC!r}")
    bits = n = 0
    for i in range(0, len(text) - 1, 2):
        bits, n = (bits << 11) | (45 * _ALNUM_INDEX[text[i]] + _ALNUM_INDEX[text[i + 1]]), n + 11
    if len(text) % 2:
        bits, n = (bits << 6) | _ALNUM_INDEX[text[-1]], n + 6
    return Segment("alphanumeric", len(text), bits, n)


def byte(data: bytes) -> Segment:
    return Segment("byte", len(data), int.from_bytes(data, "big") if data else 0, 8 * len(data))


def eci(assignment: int) -> Segment:
    if not 0 <= assignment < 128:
        raise QRInputError(f"only one-byte ECI designators (0-127) are supported, got {assignment}")
    return Segment("eci", 0, assignment, 8)


def best_mode(text: str) -> str:
    """The most compact single mode that holds the whole text."""
    if text.isascii() and text.isdigit():
        return "numeric"
    if all(c in _ALNUM_INDEX for c in text):
        return "alphanumeric"
    return "byte"


def make_segments(text: str, mode: str = "auto", use_eci: bool = False) -> list[Segment]:
    """Segments for `text` in one mode; byte mode carries UTF-8, announced by ECI 26 when `use_eci`."""
    if mode == "auto":
        mode = best_mode(text)
    if mode == "numeric":
        return [numeric(text)]
    if mode == "alphanumeric":
        return [alphanumeric(text)]
    if mode != "byte":
        raise QRInputError(f"unknown mode {mode!r}; use auto, numeric, alphanumeric or byte")
    data = text.encode("utf-8")
    prefix = [eci(UTF8_ECI)] if use_eci and not text.isascii() else []
    return prefix + [byte(data)]


def stream_bits(segments: list[Segment], version: int) -> tuple[int, int]:
    """Concatenate segment headers and data for `version`: (bits as an int, number of bits)."""
    bits = n = 0
    for seg in segments:
        count_width = char_count_bits(seg.mode, version)
        bits = (bits << 4) | MODE_INDICATOR[seg.mode]
        bits = (bits << count_width) | seg.char_count
        bits = (bits << seg.n_bits) | seg.bits
        n += 4 + count_width + seg.n_bits
    return bits, n
