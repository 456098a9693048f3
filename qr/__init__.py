"""Layout-aware QR Model 2 encoder, rendering and scan verification (plain numpy; no ComfyUI import)."""

from .code import Geometry, QRCode, encode
from .errors import QRInputError

__all__ = ["Geometry", "QRCode", "QRInputError", "encode"]
