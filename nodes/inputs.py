"""Input conventions shared by the nodes: "a connected QR_CODE, or the text typed into the node"."""

from dataclasses import dataclass

from ..qr import QRCode

FROM_CODE = "from code"  # the ecl combo's first option: keep the connected code's level
TEXT_ECL = "M"           # what "from code" means when the text is typed


@dataclass(frozen=True)
class CodeSource:
    """What a node encodes: the connected code's settings, or the typed text's."""
    qr: QRCode | None     # the connected code; None when the text was typed
    text: str
    version: int | None   # None: the smallest that fits
    ecl: str
    module_px: int | None
    border: int
    multiple: int

    def geometry(self) -> dict:
        return {"module_px": self.module_px, "border": self.border, "multiple": self.multiple}


def code_or_text(qr_code: QRCode | None, text: str, node_id: str, *, ecl: str = FROM_CODE,
                 version: int | None = None, module_px: int | None, border: int, multiple: int) -> CodeSource:
    """The connected `qr_code` (its text, version and geometry; `ecl` unless it is "from code"), else the typed
    `text` (at `version`, `ecl` with "from code" meaning M). `module_px` and `border` are the geometry of typed
    text and of a connected code without one (each node has its own); `multiple` applies to both. Neither given:
    ValueError naming `node_id`."""
    if qr_code is not None:
        geo = qr_code.geometry
        return CodeSource(qr_code, qr_code.text, qr_code.version, qr_code.ecl if ecl == FROM_CODE else ecl,
                          geo.module_px if geo else module_px, geo.border if geo else border, multiple)
    if text:
        return CodeSource(None, text, version, TEXT_ECL if ecl == FROM_CODE else ecl, module_px, border, multiple)
    raise ValueError(f"{node_id}: connect a QR_CODE or type the text to encode")
