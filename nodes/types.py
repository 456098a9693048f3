"""Custom socket types shared by the pack's nodes."""

from comfy_api.latest import io

# A qr.QRCode: matrix, layout (which module carries which bit of which RS block) and render geometry.
QRCodeType = io.Custom("QR_CODE")
