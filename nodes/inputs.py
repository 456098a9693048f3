"""Input conventions shared by the nodes: every node's inputs are checked against its schema before `execute`
runs (`AQRNode`, `check_inputs`), and "a connected QR_CODE, or the text typed into the node" (`code_or_text`)."""

import functools
import inspect
import math
import numbers
from dataclasses import dataclass

from comfy_api.latest import io

from ..qr import QRCode, QRInputError
from ..qr.pixels import require_same_aspect
from .tensors import check_image, check_latent, check_mask, spatial_size

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


def require_code_geometry(node_id: str, qr: QRCode) -> None:
    """The connected code carries its pixel geometry (AQR_Encode and AQR_Reshuffle attach it)."""
    if qr.geometry is None:
        raise ValueError(f"{node_id}: the QR_CODE has no geometry; take it from AQR_Encode or AQR_Reshuffle")


def require_vae_weights(node_id: str, vae) -> None:
    """The VAE has weights to decode with (a checkpoint without a VAE gives an empty one)."""
    if getattr(vae, "first_stage_model", None) is None:
        raise ValueError(f"{node_id}: this VAE has no weights (the checkpoint holds no VAE?): load one with VAELoader")


def require_code_aspect(node_id: str, qr: QRCode, **inputs) -> None:
    """Each IMAGE or MASK in `inputs` (name → tensor or None) that must carry the code has the code's aspect ratio
    (it is then resampled onto the code's geometry); otherwise ValueError naming `node_id` and the input."""
    for name, tensor in inputs.items():
        if tensor is not None:
            try:
                require_same_aspect(*spatial_size(tensor), qr.geometry, what=name)
            except QRInputError as err:
                raise ValueError(f"{node_id}: {err}") from None


# ------------------------------------------------------------------------------------------ schema-driven checks

def _check_float(node_id: str, name: str, value) -> None:
    finite = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not finite:
        raise ValueError(f"{node_id}: {name} must be a finite number, got {value!r}")


def _check_combo(node_id: str, name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{node_id}: {name} must be one of {', '.join(repr(o) for o in options)}; got {value!r}")


def check_inputs(schema: io.Schema, values: dict) -> None:
    """What ComfyUI 0.3.75 does not check for V3 nodes, for every input of `schema` present in `values` (None:
    an optional input left out): a FLOAT is a finite number (NaN passes ComfyUI's min/max checks, and a linked
    value is not range-checked at all), a COMBO one of its options, an IMAGE, MASK or LATENT a finite tensor of
    the right shape. Raises ValueError with one line naming the node and the input."""
    for spec in schema.inputs:
        value = values.get(spec.id)
        if value is None:
            continue
        kind = spec.get_io_type()
        if kind == "FLOAT":
            _check_float(schema.node_id, spec.id, value)
        elif kind == "COMBO":
            _check_combo(schema.node_id, spec.id, value, spec.options)
        elif kind == "IMAGE":
            check_image(value, f"{schema.node_id}: {spec.id}")
        elif kind == "MASK":
            check_mask(value, f"{schema.node_id}: {spec.id}")
        elif kind == "LATENT":
            check_latent(value, f"{schema.node_id}: {spec.id}")


def _checked(execute):
    """`execute` (a classmethod's function) preceded by `check_inputs` against the class's schema; a bad input the
    lower packages find (`QRInputError`) comes out as one line naming the node."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def run(cls, *args, **kwargs):
        values = signature.bind_partial(cls, *args, **kwargs).arguments
        schema = cls.define_schema()  # defined anew: a combo's options may change (model folders)
        check_inputs(schema, values)
        try:
            return execute(cls, *args, **kwargs)
        except QRInputError as err:
            raise ValueError(f"{schema.node_id}: {err}") from None

    run.aqr_checked = True
    return run


class AQRNode(io.ComfyNode):
    """The pack's node base: a subclass's `execute` checks its inputs against its schema first (`check_inputs`),
    and turns a `QRInputError` into the node's one-line error, whoever calls it — ComfyUI's executor or a test
    calling `execute()` directly. (ComfyUI clones the class for
    every run; a clone keeps the checked `execute` and is not wrapped twice.)"""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("execute")
        if isinstance(own, classmethod) and not getattr(own.__func__, "aqr_checked", False):
            cls.execute = classmethod(_checked(own.__func__))
