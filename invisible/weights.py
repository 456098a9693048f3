"""Where trained codecs live and how they are read: safetensors only (no pickle), the configuration in the file's
metadata, so a file someone drops into ComfyUI's models folder says what it is."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..qr.errors import QRInputError
from .codec import Codec
from .nets import MODELS

FORMAT = "aesthetic-qr/invisible/1"
SHIPPED = Path(__file__).with_name("weights") / "carrier.safetensors"
_cache: dict[tuple[str, float], Codec] = {}


def save_codec(codec: Codec, path: Path, info: dict | None = None) -> None:
    """Write the weights with `kind` and `info` (training settings, curve summary) as metadata."""
    from safetensors.torch import save_file  # noqa: PLC0415  (torch-side import, only when saving)
    meta = {"format": FORMAT, "kind": codec.kind, "info": json.dumps(info or {})}
    state = {k: v.detach().contiguous() for k, v in codec.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_codec(path: Path | str | None = None) -> Codec:
    """The codec in `path` (default: the shipped weights), cached per file version, in eval mode."""
    from safetensors import safe_open  # noqa: PLC0415

    path = Path(path) if path is not None else SHIPPED
    if not path.is_file():
        raise QRInputError(f"no invisible-QR weights at {path}: give a .safetensors file written by "
                           f"scripts/train_invisible.py, or use the shipped ones")
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _cache:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001  (a corrupt or foreign file: one line, not a stack trace)
            raise QRInputError(f"{path.name} is not a readable safetensors file ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("kind") not in MODELS:
            raise QRInputError(f"{path.name} is not an aesthetic-qr invisible-QR model (its metadata says "
                               f"format={meta.get('format')!r}, kind={meta.get('kind')!r})")
        with torch.inference_mode(False):   # normal tensors, so hiding can take gradients through the decoder
            codec = Codec.new(meta["kind"])
            try:
                codec.load_state_dict({k: v.clone() for k, v in state.items()})
            except RuntimeError as exc:
                raise QRInputError(f"{path.name} does not fit the {meta['kind']} model: "
                                   f"{str(exc).splitlines()[0]}") from None
        _cache[key] = codec.train(False)
    return _cache[key]
