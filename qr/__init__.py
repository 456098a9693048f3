"""The QR symbol: tables, GF(256), segments, layout, the encoder and its `QRCode`, rendering, reshuffling, and the
one module that maps pictures to modules (`pixels`). numpy only; no torch, no ComfyUI."""

from .code import Geometry, QRCode, encode
from .errors import QRInputError

__all__ = ["Geometry", "QRCode", "QRInputError", "encode"]
