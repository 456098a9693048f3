"""Gradients through frozen models that were loaded under ``torch.inference_mode()`` (as ComfyUI loads every model).

Autograd refuses to save an inference tensor for backward, so a convolution whose weight is one cannot pass a
gradient to its input even with ``inference_mode(False)``. Two remedies, for two situations:

* `plain_copy`: a deep copy made outside inference mode, whose tensors are ordinary ones — for a model we call
  ourselves many times (the VAE decoder), cached by the caller;
* `plain_parameters`: swap every inference parameter and buffer of some modules for an ordinary clone while a
  forward pass records its graph, then put the originals back — for models that ComfyUI itself calls (the UNet and
  ControlNets inside ``calc_cond_batch``). The graph keeps the clones alive until it is freed; the modules never
  hold them after the block, so ComfyUI's weight patching and offloading see their own tensors.
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Iterable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def grad_mode() -> Iterator[None]:
    """Leave inference mode and turn gradients on (``enable_grad`` alone does nothing inside inference mode)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def plain_copy(module: nn.Module, drop: Iterable[str] = ()) -> nn.Module:
    """A frozen (eval, no requires_grad) deep copy with ordinary tensors; direct children named in `drop` are left
    out (e.g. a VAE's encoder when only its decoder is needed)."""
    memo = {id(child): None for name, child in module.named_children() if name in set(drop)}
    with torch.inference_mode(False):  # a deep copy made here holds ordinary tensors
        clone = copy.deepcopy(module, memo)
    return clone.eval().requires_grad_(False)


@contextlib.contextmanager
def plain_parameters(modules: Iterable[nn.Module]) -> Iterator[int]:
    """Within the block, the modules' inference tensors are ordinary clones; yields how many were swapped."""
    swapped: list[tuple[dict, str, torch.Tensor]] = []  # (the module's _parameters or _buffers, name, original)
    seen: set[int] = set()
    try:
        with torch.inference_mode(False):
            for module in modules:
                for sub in module.modules():
                    if id(sub) in seen:
                        continue
                    seen.add(id(sub))
                    for store, is_parameter in ((sub._parameters, True), (sub._buffers, False)):
                        for name, t in list(store.items()):
                            if t is not None and t.is_inference():
                                swapped.append((store, name, t))
                                clone = t.clone()
                                store[name] = nn.Parameter(clone, requires_grad=False) if is_parameter else clone
        yield len(swapped)
    finally:
        for store, name, original in reversed(swapped):
            store[name] = original



def reachable_modules(*roots, depth: int = 6) -> list[nn.Module]:
    """Every top-level `nn.Module` reachable from `roots` through containers, object attributes and closures, up to
    `depth` hops — how a ControlNet inside a conditioning dict or an adapter inside a model patch is found."""
    found: dict[int, nn.Module] = {}
    seen: set[int] = set()

    def walk(obj, left: int) -> None:
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, torch.Tensor)) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, nn.Module):
            found.setdefault(id(obj), obj)
            return
        if left <= 0:
            return
        if isinstance(obj, dict):
            children = obj.values()
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = obj
        elif isinstance(obj, types.FunctionType):
            children = [c.cell_contents for c in (obj.__closure__ or ()) if _filled(c)]
        elif isinstance(obj, types.MethodType):
            children = [obj.__self__]
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            children = vars(obj).values()
        else:
            return
        for child in list(children):
            walk(child, left - 1)

    for root in roots:
        walk(root, depth)
    modules = list(found.values())
    inner = {id(s) for m in modules for s in m.modules() if s is not m}
    return [m for m in modules if id(m) not in inner]


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True
