"""Generate until it scans: sample, verify, and on failure change one thing — the seed, the scan guidance's
strength, or a refinement of the best latent so far — until an attempt verifies or the attempts run out.

The loop knows nothing of ComfyUI: the node hands it `sample(plan)`, `decode(latent)`, `check(image, number)`,
`refine(latent)` and `check_interrupt()`. Each attempt follows a `Plan`; `plans` lays the attempts out for a
policy:

* ``seeds``: every attempt samples with the next seed;
* ``seeds, then guidance``: the first two attempts sample plainly (seed, seed + 1), the later ones add scan
  guidance (`guidance.ScanObjective` through `hooks`), doubling its strength each time;
* ``seeds, guidance, then refine`` (default): as above, and the last attempt refines the best latent so far
  (`latent_refine`) instead of sampling again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..scan.pick import Ranked

__all__ = ["POLICIES", "Attempt", "Plan", "ScanSampleResult", "plans", "sample_until_scans"]

POLICIES = ("seeds, guidance, then refine", "seeds, then guidance", "seeds")


@dataclass(frozen=True)
class Plan:
    seed: int
    guidance: float    # scan guidance's code_scale for this attempt; 0 samples without it
    refine: bool       # refine the best latent so far instead of sampling
    change: str        # what this attempt changed, for the report


def plans(policy: str, attempts: int, seed: int, guidance_scale: float) -> list[Plan]:
    """The attempts a policy makes (see the module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    if attempts < 1:
        raise ValueError(f"attempts must be ≥ 1, got {attempts}")
    out = [Plan(seed, 0.0, False, "first attempt")]
    for k in range(1, attempts):
        if policy == POLICIES[0] and k == attempts - 1 and attempts >= 3:
            out.append(Plan(out[-1].seed, out[-1].guidance, True, "refined the best latent"))
        elif policy == "seeds" or k == 1:
            out.append(Plan(seed + k, 0.0, False, f"next seed ({seed + k})"))
        else:
            scale = guidance_scale * 2.0 ** (k - 2)
            out.append(Plan(seed + k, scale, False, f"next seed ({seed + k}), scan guidance {scale:g}"))
    return out


@dataclass
class Attempt:
    number: int
    plan: Plan
    ranked: Ranked

    def line(self) -> str:
        r = self.ranked
        reads = ", ".join(f"{n} {'read' if d.match else 'no'}" for n, d in r.report.decoders.items())
        ssr = "" if r.worst_ssr is None else f", worst suite SSR {100 * r.worst_ssr:.0f} %"
        margin = "" if r.margin is None else f", RS margin {r.margin}"
        return (f"attempt {self.number}: seed {self.plan.seed}, {self.plan.change}: "
                f"{'PASS' if r.passed else 'FAIL'} ({reads}{margin}{ssr})")


@dataclass
class ScanSampleResult:
    latent: object            # the best attempt's latent, as the sampler returned it
    image: np.ndarray         # its decoded picture, H×W×3 float in [0, 1]
    best: Attempt
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.best.ranked.passed

    def report(self) -> str:
        verdict = (f"PASS at attempt {self.best.number}" if self.passed
                   else f"FAIL after {len(self.attempts)} attempts; best: attempt {self.best.number}")
        return "\n".join([verdict, *(a.line() for a in self.attempts)])


def sample_until_scans(attempt_plans: list[Plan], *, sample: Callable[[Plan], object],
                       decode: Callable[[object], np.ndarray], check: Callable[[np.ndarray, int], Ranked],
                       refine: Callable[[object], object] | None = None,
                       check_interrupt: Callable[[], None] = lambda: None,
                       progress: Callable[[int, int], None] | None = None) -> ScanSampleResult:
    """Run the attempts in order until one passes; return the best (passing, else the highest-ranked)."""
    attempts, best, best_latent, best_image = [], None, None, None
    for number, plan in enumerate(attempt_plans, 1):
        check_interrupt()
        if plan.refine and refine is None:
            raise ValueError("this plan refines a latent, but no refine function was given")
        latent = refine(best_latent) if plan.refine else sample(plan)
        check_interrupt()
        image = decode(latent)
        attempt = Attempt(number, plan, check(image, number))
        attempts.append(attempt)
        if best is None or attempt.ranked.key() > best.ranked.key():
            best, best_latent, best_image = attempt, latent, image
        if progress is not None:
            progress(number, len(attempt_plans))
        if attempt.ranked.passed:
            break
    return ScanSampleResult(best_latent, best_image, best, attempts)
