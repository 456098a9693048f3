"""Choose among candidate pictures of one code: the one that scans with the largest margin.

A candidate is judged by the verifier (`report.verify_image`) and ranked by, in order: it passes (every decoder
reads the payload, the suite's SSR reaches `min_ssr` when the suite runs, and every RS block keeps at least
`margin` spare codewords), how many decoders read it, its worst suite SSR, and its worst RS block's margin. Ties
keep the batch order, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..qr.code import QRCode
from .decoders import DEFAULT_DECODERS
from .report import VerifyReport, verify_image

__all__ = ["Ranked", "judge", "passes", "rank", "table"]


def passes(report: VerifyReport, margin: int) -> bool:
    """The verifier passed and, with module analysis, every RS block keeps `margin` spare codewords."""
    spare = report.analysis.min_margin if report.analysis is not None else None
    return report.passed and (spare is None or spare >= margin)


@dataclass(frozen=True)
class Ranked:
    index: int             # position in the batch
    report: VerifyReport
    passed: bool           # `passes` with the ranking's margin

    @property
    def margin(self) -> int | None:
        return self.report.analysis.min_margin if self.report.analysis is not None else None

    @property
    def reads(self) -> int:
        return sum(r.match for r in self.report.decoders.values())

    @property
    def worst_ssr(self) -> float | None:
        ssr = self.report.suite.ssr if self.report.suite is not None else {}
        return min(ssr.values()) if ssr else None

    def key(self) -> tuple:
        margin = self.margin if self.margin is not None else -10 ** 6
        return (self.passed, self.reads, self.worst_ssr or 0.0, margin)


def judge(image, index: int, qr: QRCode, *, decoders=DEFAULT_DECODERS, suite: bool = True, min_ssr: float = 0.95,
          margin: int = 1) -> Ranked:
    """One candidate verified against `qr`."""
    report = verify_image(image, qr.text, qr, suite=suite, decoders=decoders, min_ssr=min_ssr)
    return Ranked(index, report, passes(report, margin))


def rank(images, qr: QRCode, **criteria) -> list[Ranked]:
    """Every image judged against `qr` (`criteria`: `judge`'s decoders, suite, min_ssr, margin), best first."""
    ranked = [judge(image, i, qr, **criteria) for i, image in enumerate(images)]
    return sorted(ranked, key=lambda r: (r.key(), -r.index), reverse=True)


def table(ranked: list[Ranked]) -> str:
    """One line per candidate, in batch order: pass, what each decoder read, worst RS margin, suite SSR."""
    if not ranked:
        return "no candidates"
    names = list(ranked[0].report.decoders)
    head = "item  pass  " + "  ".join(f"{n:>6}" for n in names) + "  RS margin  SSR"
    lines = [head]
    for r in sorted(ranked, key=lambda r: r.index):
        reads = "  ".join(f"{'read' if r.report.decoders[n].match else '-':>6}" for n in names)
        ssr = "" if r.report.suite is None else " / ".join(f"{100 * s:.0f} %" for s in r.report.suite.ssr.values())
        margin = "-" if r.margin is None else str(r.margin)
        lines.append(f"{r.index:>4}  {'PASS' if r.passed else 'fail':>4}  {reads}  {margin:>9}  {ssr}")
    return "\n".join(lines)
