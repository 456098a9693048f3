"""losses.budget: the error-correction budget as a code-loss option. Per RS block it leaves the costliest wrong
codewords out of the loss (never a function pattern), the code losses then ignore errors a decoder corrects, and
a descent that spends the budget keeps more of the picture while the result still decodes to the payload."""

import numpy as np
import pytest
import torch

from aesthetic_qr.losses import AdaptiveConfig, SRLConfig, adaptive_code_loss, srl
from aesthetic_qr.losses.budget import spent_modules
from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.decoders import decode

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TEXT = "https://example.com/budget"


@pytest.fixture(scope="module")
def code():
    qr = encode(TEXT, version=3, ecl="M")
    img, geo = render(qr, 6, 2)
    return qr.with_geometry(geo), torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None]


def codeword_modules(qr, block, word):
    return (qr.module_block == block) & (qr.module_codeword == word)


def flipped(qr, image, words):
    """The rendered code with every module of the given (block, codeword)s inverted."""
    out = image.clone()
    p, (x0, y0) = qr.geometry.module_px, qr.geometry.origin
    for block, word in words:
        for r, c in zip(*np.nonzero(codeword_modules(qr, block, word))):
            cell = out[..., y0 + r * p:y0 + (r + 1) * p, x0 + c * p:x0 + (c + 1) * p]
            cell.copy_(1 - cell)
    return out


def test_spent_modules_take_the_costliest_wrong_codewords_of_each_block(code):
    qr, _ = code
    t = qr.correctable()
    wrong = torch.zeros(1, qr.size, qr.size, dtype=torch.bool)
    cost = torch.zeros(1, qr.size, qr.size)
    for word, price in zip(range(t), range(1, t + 1)):       # t wrong codewords in block 0, dearer as they go
        sel = torch.from_numpy(codeword_modules(qr, 0, word))
        wrong[0, sel] = True
        cost[0, sel] = float(price)
    wrong[0, torch.from_numpy(qr.function_mask.astype(bool))] = True   # a damaged finder is never left
    spent = spent_modules(wrong, cost, qr, 0.5)
    allow = t // 2
    for word in range(t):
        chosen = bool(spent[0, torch.from_numpy(codeword_modules(qr, 0, word))].all())
        assert chosen == (word >= t - allow), word
    assert not spent[0, torch.from_numpy(qr.function_mask.astype(bool))].any()
    remainder = (qr.module_block < 0) & ~qr.function_mask.astype(bool)
    assert bool(spent[0, torch.from_numpy(remainder)].all()) and remainder.any()
    assert not spent_modules(wrong, cost, qr, 0.0)[0, torch.from_numpy(qr.module_block >= 0)].any()
    with pytest.raises(ValueError, match="budget share"):
        spent_modules(wrong, cost, qr, 1.5)


@pytest.mark.parametrize("loss", ["srl", "adaptive"])
def test_errors_within_the_budget_cost_nothing_and_beyond_it_the_cheapest_are_fixed(code, loss):
    qr, image = code
    t = qr.correctable()

    def terms(x, budget):
        """(modules the loss pushes, its gradient on x)."""
        x = x.clone().requires_grad_(True)
        out, per_module = (srl(x, qr, SRLConfig(budget=budget), return_map=True) if loss == "srl" else
                           adaptive_code_loss(x, qr, config=AdaptiveConfig(budget=budget), return_map=True))
        (grad,) = torch.autograd.grad(out.sum(), x)
        return int((per_module > 1e-3).sum()), grad

    assert t // 2 >= 2
    few = flipped(qr, image, [(0, 0), (0, 3)])                 # 2 wrong codewords, the budget allows t // 2
    assert terms(few, 0.0)[0] >= 8
    pushed, grad = terms(few, 0.5)
    assert pushed == 0 and float(grad.abs().max()) < 1e-3
    many = flipped(qr, image, [(0, w) for w in range(t // 2 + 1)])   # one codeword more than the budget
    full, _ = terms(many, 0.0)
    left, grad = terms(many, 0.5)
    assert 0 < left <= 8 < full and torch.isfinite(grad).all()


def _bench():
    """bench/bench_budget.py, whose set-up this test asserts on (so the README's numbers and the test agree)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_budget.py"
    spec = importlib.util.spec_from_file_location("bench_budget", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_descent_that_spends_the_budget_keeps_more_of_the_picture_and_still_decodes():
    """camera.png on the data modules (function patterns and quiet zone drawn as the code's): with 3/4 of each
    block's capacity spent the descent changes the picture markedly less, and zxing and WeChat still read it."""
    bench = _bench()
    qr = encode(bench.TEXT, version=3, ecl="M")
    img, geo = render(qr, 6, 2)
    qr = qr.with_geometry(geo)
    picture = bench.framed("camera", qr, torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None])
    change = {}
    for budget in (0.0, 0.75):
        out = bench.descend(picture, qr, budget)
        assert all(r.match for r in decode(bench.u8(out), ("zxing", "wechat"), expected=qr.payload).values()), budget
        change[budget] = float(((out - picture) ** 2).mean())
    assert change[0.75] < 0.8 * change[0.0], change
