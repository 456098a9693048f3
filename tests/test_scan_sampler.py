"""Generate until it scans (diffusion.scan_sampler) and pick the best of a batch (scan.pick), on real decoders
with stand-in sampling: the loop stops at the first attempt that verifies, escalates as its policy says, keeps
the best attempt, reports every one, and stops on an interrupt."""

import numpy as np
import pytest

from aesthetic_qr.diffusion.scan_sampler import POLICIES, plans, sample_until_scans
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.pick import judge, rank, table

TEXT = "https://example.com/until-it-scans"


@pytest.fixture(scope="module")
def code():
    qr = encode(TEXT, ecl="M")
    image, geo = render(qr, module_px=6, border=4)
    return qr.with_geometry(geo), image


def noise(image, seed):
    return np.random.default_rng(seed).random(image.shape).astype(np.float32)


def checker(qr, margin=1):
    return lambda image, number: judge(image, number, qr, suite=False, margin=margin)


def test_policies_escalate_in_order():
    escalate = plans(POLICIES[0], 5, 7, 500.0)
    assert [(p.seed, p.guidance, p.refine) for p in escalate] == [
        (7, 0.0, False), (8, 0.0, False), (9, 500.0, False), (10, 1000.0, False), (10, 1000.0, True)]
    assert [p.seed for p in plans("seeds", 3, 7, 500.0)] == [7, 8, 9]
    assert not any(p.refine for p in plans("seeds, then guidance", 4, 0, 1.0))
    with pytest.raises(ValueError, match="policy 'x' is not one of"):
        plans("x", 3, 0, 1.0)
    with pytest.raises(ValueError, match="attempts must be ≥ 1"):
        plans("seeds", 0, 0, 1.0)


def test_stops_at_the_first_attempt_that_verifies(code):
    qr, image = code
    sampled = []

    def sample(plan):
        sampled.append(plan.seed)
        return image if plan.seed == 1 else noise(image, plan.seed)  # the second seed "finds" the code

    result = sample_until_scans(plans("seeds", 4, 0, 0.0), sample=sample, decode=lambda z: z, check=checker(qr))
    assert sampled == [0, 1] and result.passed and result.best.number == 2
    assert np.array_equal(result.image, image) and result.latent is image
    lines = result.report().splitlines()
    assert lines[0] == "PASS at attempt 2" and len(lines) == 3
    assert lines[1].startswith("attempt 1: seed 0, first attempt: FAIL")
    assert lines[2].startswith("attempt 2: seed 1, next seed (1): PASS") and "RS margin" in lines[2]


def test_refines_the_best_latent_when_sampling_never_verifies(code):
    qr, image = code
    refined_from = []

    def refine(latent):
        refined_from.append(latent)
        return image

    progress = []
    result = sample_until_scans(plans(POLICIES[0], 3, 0, 500.0), sample=lambda plan: noise(image, plan.seed),
                                decode=lambda z: z, check=checker(qr), refine=refine,
                                progress=lambda done, total: progress.append((done, total)))
    assert len(refined_from) == 1 and result.passed and result.best.number == 3
    assert "refined the best latent: PASS" in result.report().splitlines()[3]
    assert progress == [(1, 3), (2, 3), (3, 3)]


def test_all_failing_keeps_the_best_and_says_so(code):
    qr, image = code
    result = sample_until_scans(plans("seeds", 3, 0, 0.0), decode=lambda z: z, check=checker(qr, margin=99),
                                sample=lambda plan: image if plan.seed == 1 else np.full_like(image, 0.5))
    assert not result.passed and result.best.number == 2   # reads, but no block keeps 99 spare codewords
    assert result.report().startswith("FAIL after 3 attempts; best: attempt 2")


def test_an_interrupt_stops_between_attempts(code):
    qr, image = code
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:                                 # before the second attempt
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_until_scans(plans("seeds", 5, 0, 0.0), sample=lambda plan: noise(image, plan.seed),
                           decode=lambda z: z, check=checker(qr), check_interrupt=interrupt)
    assert len(calls) == 3


def test_pick_best_ranks_passing_pictures_first_and_by_margin(code):
    qr, image = code
    rng = np.random.default_rng(0)
    scratched = image.copy()
    scratched[rng.random(image.shape[:2]) < 0.04] = 0.5      # reads, with fewer spare codewords
    batch = [noise(image, 0), scratched, image]
    ranked = rank(batch, qr, suite=False)
    assert [r.index for r in ranked][:2] == [2, 1] and ranked[0].passed
    assert ranked[0].margin > ranked[1].margin
    lines = table(ranked).splitlines()
    assert len(lines) == 4 and lines[1].split()[:2] == ["0", "fail"] and lines[3].split()[:2] == ["2", "PASS"]
