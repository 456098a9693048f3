"""The error-correction budget as a code-loss option (issue #12, lever 5; `art` spends it in pixels).

Every RS block corrects t codeword errors. A code loss that pushes every wrong module to its bit spends the
picture on errors the decoder would correct anyway. With a budget share b, per block up to ⌊b·t⌋ of the
codewords that read wrong are left wrong, the costliest to fix first (the largest summed module error), and their
modules get no gradient; the rest of t is the spare the camera needs. Function patterns are never spent (finding
the code needs them); remainder bits belong to no codeword and are always spent."""

from __future__ import annotations

import math

import torch

from ..qr.code import QRCode


def spent_modules(wrong: torch.Tensor, cost: torch.Tensor, qr: QRCode, share: float) -> torch.Tensor:
    """B×n×n bool: the modules the loss may leave as they are. `wrong` (B×n×n bool): modules reading against their
    bit; `cost` (B×n×n): what fixing each would take (detached)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"budget share must be in [0, 1], got {share!r}")
    dev = wrong.device
    block = torch.as_tensor(qr.module_block, device=dev).long()
    word = torch.as_tensor(qr.module_codeword, device=dev).long()
    function = torch.as_tensor(qr.function_mask, device=dev).bool()
    remainder = (block < 0) & ~function
    allow = int(math.floor(share * qr.correctable() + 1e-9))
    spent = remainder.expand_as(wrong).clone()
    if allow == 0:
        return spent
    words = int(word.max()) + 1
    data = block >= 0
    index = (block * words + word)[data]                                # codeword id of each data module
    b = wrong.shape[0]
    count = torch.zeros(b, len(qr.blocks) * words, device=dev)
    price = torch.zeros(b, len(qr.blocks) * words, device=dev)
    count.index_add_(1, index, wrong[:, data].float())
    price.index_add_(1, index, cost.detach()[:, data].float())
    # wrong codewords ranked by price within their block; a right one can never be chosen
    score = torch.where(count > 0, price + 1.0, torch.zeros_like(price)).view(b, len(qr.blocks), words)
    top = score.topk(min(allow, words), dim=-1)
    chosen = torch.zeros_like(score, dtype=torch.bool)
    chosen.scatter_(-1, top.indices, top.values > 0)
    spent[:, data] |= chosen.view(b, -1)[:, index]
    return spent
