"""One verification verdict for an image: real decoders, module analysis (when the layout is known) and the
simulated-camera suite, with a JSON form (the CLI contract) and a text form (the node's report)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..qr.code import QRCode
from .analysis import ModuleAnalysis, analyze
from .camera import SuiteResult, run_suite
from .decoders import DEFAULT_DECODERS, MAX_DECODE_SIDE, DecodeResult, decode

VERDICT_KEY = "aqr_verdict"  # AQR_Verify's UI payload entry holding `VerifyReport.verdict()` (the CLI reads it)


@dataclass
class VerifyReport:
    expected: str
    decoders: dict[str, DecodeResult]
    analysis: ModuleAnalysis | None
    suite: SuiteResult | None
    min_ssr: float
    passed: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)  # how the comparison was made (downscaled, partial payloads)

    def to_dict(self) -> dict:
        per_decoder = {}
        for name, res in self.decoders.items():
            entry = {"decoded": res.decoded, "text": res.text, "match": res.match, "version": res.version,
                     "ecl": res.ecl, "time_ms": round(res.time_ms, 2), "error": res.error,
                     "limitation": res.limitation}
            if self.suite is not None and name in self.suite.ssr:
                entry["ssr"] = self.suite.ssr[name]
            per_decoder[name] = entry
        return {"pass": self.passed, "expected": self.expected, "decoders": per_decoder,
                "reasons": self.reasons, "notes": self.notes,
                "min_ssr": self.min_ssr if self.suite is not None else None,
                "analysis": self.analysis.to_dict() if self.analysis is not None else None,
                "suite": self.suite.to_dict(per_variant=False) if self.suite is not None else None,
                "report": self.to_text()}

    def verdict(self) -> dict:
        """The decision as data (what AQR_Verify puts in its UI payload and the CLI reads): pass, and per decoder
        whether it read the payload and, with the suite, its SSR."""
        ssr = self.suite.ssr if self.suite is not None else {}
        return {"pass": self.passed,
                "decoders": {name: {"match": res.match, "ssr": ssr.get(name), "limitation": res.limitation}
                             for name, res in self.decoders.items()},
                "reasons": list(self.reasons), "notes": list(self.notes)}

    def to_text(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}: expected {self.expected!r}"]
        for name, res in self.decoders.items():
            if res.error and not res.decoded:
                state = f"error ({res.error})"
            elif res.match and res.limitation:
                state = "decoded, payload matches as far as this decoder can return it (see the note)"
            elif res.match:
                state = "decoded, payload matches"
            elif res.decoded:
                state = f"decoded {res.text!r} (wrong payload)"
            else:
                state = "not decoded"
            ssr = f", suite SSR {100 * self.suite.ssr[name]:.0f} %" if self.suite and name in self.suite.ssr else ""
            lines.append(f"  {name}: {state} in {res.time_ms:.1f} ms{ssr}")
        if self.analysis is not None:
            a = self.analysis
            lines.append(f"  modules: {a.data_module_errors} data modules read wrong "
                         f"({100 * a.module_error_rate:.1f} % of the symbol), format {'ok' if a.format_ok else 'BAD'}")
            lines.append(f"  RS blocks: codeword errors {a.block_errors} of {a.correctable} correctable each; "
                         f"worst margin {a.min_margin} (block {a.worst_block})")
        if self.suite is not None:
            for name in self.suite.decoders:
                failed = self.suite.failures(name)
                if failed:
                    lines.append(f"  {name} failed on: {', '.join(failed[:12])}{' …' if len(failed) > 12 else ''}")
        lines += [f"  why: {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def verify_image(image: np.ndarray, expected: str | None, qr: QRCode | None = None, *, suite: bool = False,
                 decoders=DEFAULT_DECODERS, min_ssr: float = 0.9) -> VerifyReport:
    """Pass means: every available decoder reads exactly `expected` (or, where a decoder cannot return all of
    it, such as WeChat past a NUL, the part it can, with a note), at least one of them compared the whole payload,
    and, with the suite, each decoder's scan success rate is at least `min_ssr`. Module analysis runs when `qr`
    carries its geometry. An image too large for a scanner is decoded shrunk, with a note."""
    if expected is None:
        if qr is None:
            raise ValueError("nothing to compare with: give the expected text or the QR code")
        expected = qr.text
    results = decode(image, decoders, expected=expected)
    reasons, notes = [], []
    usable = {n: r for n, r in results.items() if not (r.error or "").startswith("unavailable")}
    if not usable:
        reasons.append("no decoder is available: pip install zxing-cpp opencv-contrib-python-headless")
    reasons += [f"{n} did not read the payload" for n, r in usable.items() if not r.match]
    partial = {n: r.limitation for n, r in usable.items() if r.match and r.limitation}
    notes += list(partial.values())
    if partial and not reasons and all(n in partial for n in usable):
        reasons.append(f"no decoder compared the whole payload ({', '.join(partial)} cannot return it past its "
                       f"first NUL); add zxing, which reads the bytes")
    shrunk = next((r.downscaled for r in results.values() if r.downscaled), None)
    if shrunk:
        notes.append(f"the image was downscaled for decoding ({shrunk}, area averaging): a scanner never sees more "
                     f"than {MAX_DECODE_SIDE} px")
    analysis = analyze(image, qr) if qr is not None and qr.geometry is not None else None
    suite_result = None
    if suite:
        suite_result = run_suite(image, expected, tuple(usable) or decoders, qr=qr)
        reasons += [f"{n} suite SSR {100 * s:.0f} % < {100 * min_ssr:.0f} %"
                    for n, s in suite_result.ssr.items() if s < min_ssr]
    return VerifyReport(expected, results, analysis, suite_result, min_ssr, not reasons, reasons, notes)
