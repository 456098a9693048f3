"""Encode time per code: aesthetic-qr vs segno vs qrcode, same payloads and settings, same run.

    python bench/bench_encode.py
"""

import qrcode
import segno
from timing import median_ms

from aesthetic_qr.qr import encode

PAYLOAD = "https://example.com/aesthetic-qr?id=1234"
CASES = [(5, "H"), (25, "M"), (40, "L")]


def with_qrcode(version: int, ecl: str) -> None:
    q = qrcode.QRCode(version=version, error_correction=getattr(qrcode.constants, f"ERROR_CORRECT_{ecl}"))
    q.add_data(PAYLOAD, optimize=0)
    q.make(fit=False)


def main() -> None:
    print(f"payload: {PAYLOAD!r} ({len(PAYLOAD)} bytes), automatic mask choice, median ms per code")
    print(f"{'code':>6} | {'aesthetic-qr':>12} | {'segno':>8} | {'qrcode':>8}")
    print("-" * 44)
    for version, ecl in CASES:
        ours = median_ms(lambda v=version, e=ecl: encode(PAYLOAD, version=v, ecl=e), 30)
        seg = median_ms(lambda v=version, e=ecl: segno.make(PAYLOAD, version=v, error=e.lower(), boost_error=False), 30)
        ref = median_ms(lambda v=version, e=ecl: with_qrcode(v, e), 10)
        print(f"{version:>4}-{ecl} | {ours:>12.2f} | {seg:>8.2f} | {ref:>8.2f}")


if __name__ == "__main__":
    main()
