"""Make a code follow a picture: target bits and priorities from the picture, then the reshuffle, searched over
masks (and optionally larger versions) for the best match. The stage DiffQRCoder calls QArt, ARTUP its binary
stage and Face2QR IDRS (with the face as the fixed region)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..qr import segments as seg
from ..qr.code import QRCode, encode, smallest_version
from ..qr.errors import QRInputError
from ..qr.pixels import module_coverage
from ..qr.render import make_geometry
from ..qr.reshuffle import ReshuffleReport, reshuffle, reshuffle_url
from .blueprint import binarize_modules, module_luminance, module_priority

PRIORITY_MODES = ("qart", "artup", "uniform")


@dataclass
class FollowResult:
    qr: QRCode                     # the reshuffled code, geometry attached
    report: ReshuffleReport
    target: np.ndarray             # (size, size) bool, 1 = dark: what the picture asked for
    priority: np.ndarray           # (size, size) in [0, 1]
    fixed: np.ndarray              # (size, size) bool
    candidates: list[dict] = field(default_factory=list)  # every (version, mask) tried, with its score

    def to_dict(self) -> dict:
        return {**self.qr.summary(), **self.report.to_dict(), "candidates": self.candidates}


def _score(report: ReshuffleReport, priority: np.ndarray) -> tuple:
    """Fewest unmet fixed modules first, then the priority-weighted share of modules showing the target."""
    status = report.status
    requested = status > 0
    weights = (priority + 0.1)[requested]
    shows = np.isin(status[requested], (1, 2))
    return (-report.fixed_unmet, float((weights * shows).sum() / max(weights.sum(), 1e-9)))


def _smallest_version(text: str, ecl: str, url_fragment: bool) -> int:
    if not url_fragment:
        return encode(text, ecl=ecl, mask=0).version
    segments = [seg.byte((text + "#").encode("utf-8")), seg.numeric("000")]  # room for one group of digits
    version = smallest_version(segments, ecl)
    if version is None:
        raise QRInputError(f"no version at level {ecl} holds {text!r} plus a URL fragment")
    return version


def follow_picture(text: str, picture: np.ndarray, *, version: int | None = None, ecl: str = "M",
                   mask: int | None = None, extra_versions: int = 0, module_px: int = 16, border: int = 4,
                   multiple: int = 8, priority: str | np.ndarray = "qart", dither: bool = False,
                   fixed: np.ndarray | None = None, fixed_threshold: float = 0.5,
                   dont_care: np.ndarray | None = None, url_fragment: bool = False, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> FollowResult:
    """Reshuffle `text`'s code towards `picture` (H×W×3 float in [0, 1], any size: it is cover-fitted).

    mask None searches all eight; `extra_versions` also tries that many larger versions (more free bits, more
    modules to match). `priority` is a mode name or a picture-space map (H×W, higher = more important).
    `fixed` is a picture-space mask (e.g. the face): modules covered more than `fixed_threshold` are pinned
    first; `dont_care` modules (same rule) are left to the code. `url_fragment` appends `#digits` to a URL for
    more free bits (the decoded text changes).
    """
    if isinstance(priority, str) and priority not in PRIORITY_MODES:
        raise QRInputError(f"priority {priority!r} is not one of {', '.join(PRIORITY_MODES)} (or give a map)")
    if url_fragment and not text.lower().startswith(("http://", "https://")):
        raise QRInputError("URL-fragment mode only makes sense for http(s) URLs: turn it off for other text")
    if not 0 <= extra_versions <= 39:
        raise QRInputError(f"extra_versions must be 0-39, got {extra_versions}")
    if version is not None and not (isinstance(version, (int, np.integer)) and not isinstance(version, bool)
                                    and 1 <= version <= 40):
        # else range(41, 41) tries nothing and there is no best candidate (encode's message, same rule)
        raise QRInputError(f"version {version!r} is out of range: use 1-40, or leave it unset for the smallest")
    first = version if version is not None else _smallest_version(text, ecl, url_fragment)
    versions = range(first, min(40, first + extra_versions) + 1)
    masks = range(8) if mask is None else (mask,)
    total, done = len(versions) * len(masks), 0
    best, candidates = None, []
    for v in versions:
        base = encode(text, version=v, ecl=ecl, mask=0)
        geo = make_geometry(base.size, module_px, border, multiple)
        target = binarize_modules(module_luminance(picture, geo, base.size), dither=dither).astype(bool)
        if isinstance(priority, str):
            prio = module_priority(picture, geo, priority, size=base.size)
        else:
            prio = module_coverage(priority, geo, base.size)
        fixed_modules = (module_coverage(fixed, geo, base.size) > fixed_threshold if fixed is not None
                         else np.zeros_like(target))
        free_modules = (module_coverage(dont_care, geo, base.size) > fixed_threshold if dont_care is not None
                        else None)
        for m in masks:
            if url_fragment:
                out, report = reshuffle_url(text, v, ecl, m, target, prio, fixed=fixed_modules,
                                            dont_care=free_modules, seed=seed)
            else:
                out, report = reshuffle(encode(text, version=v, ecl=ecl, mask=m), target, prio,
                                        fixed=fixed_modules, dont_care=free_modules, seed=seed)
            score = _score(report, prio)
            candidates.append({"version": v, "mask": m, "fixed_unmet": report.fixed_unmet,
                               "weighted_match": round(score[1], 4),
                               "match_fraction": round(report.match_fraction, 4)})
            if best is None or score > best[0]:
                best = (score, FollowResult(out.with_geometry(geo), report, target, prio, fixed_modules))
            done += 1
            if progress is not None:
                progress(done, total)
    result = best[1]
    result.candidates = candidates
    return result
