"""Aesthetic QR: ComfyUI nodes for QR codes that are pictures and still scan.

Importing this package needs no ComfyUI (tests and the `aesthetic-qr` command use `qr/` and `losses/`); ComfyUI
calls `comfy_entrypoint`, which imports the node layer only then.
"""


async def comfy_entrypoint():
    from .nodes import AestheticQRExtension

    return AestheticQRExtension()


# The frontend extension (web/aqr_reports.js): each node's report text shown on the node after it runs.
WEB_DIRECTORY = "./web"
