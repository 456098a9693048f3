"""Where the command line writes: every output path is checked (a writable folder, a known image extension) before
any computation starts, and an image is written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..qr import QRInputError
from ..qr.pixels import to_uint8

__all__ = ["IMAGE_FORMATS", "LOSSY_SUFFIXES", "check_folder_out", "check_image_out", "save_image"]

# the formats --out may name (those this PIL can write): each keeps an RGB picture as it is (JPEG lossily)
Image.init()
IMAGE_FORMATS = {ext: fmt for ext, fmt in {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                                            ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.items()
                 if fmt in Image.SAVE}
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")  # saved pixels differ from the verified ones


def _writable_folder(folder: Path, what: str) -> None:
    """`folder` exists as a folder, or can be made: its nearest existing ancestor is a folder this process can
    create files in (tried, not guessed from permission bits: root passes every bit check)."""
    probe = folder
    try:
        probe = folder.absolute()
        while not probe.exists() and probe != probe.parent:
            if probe.is_symlink():  # a dangling link: creating the folder would follow it
                raise QRInputError(f"{what}: {str(probe)!r} is a broken link")
            probe = probe.parent
        if not probe.is_dir():
            raise QRInputError(f"{what}: {str(probe)!r} is a file, not a folder")
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise QRInputError(f"{what}: cannot write in {str(probe)!r} ({err.strerror or err})") from None


def check_image_out(path: str, flag: str = "--out") -> Path:
    """The file an image will be written to, checked before any work: a known image extension, not a folder,
    in a folder that exists or can be made and is writable."""
    out = Path(path)
    ext = out.suffix.lower()
    if ext not in IMAGE_FORMATS:
        got = f"{ext!r}" if ext else "no extension"
        raise QRInputError(f"{flag} {path!r}: name an image file ending in {', '.join(IMAGE_FORMATS)} ({got})")
    if out.is_dir():
        raise QRInputError(f"{flag} {path!r} is a folder: name the image file, e.g. {str(out / 'code.png')!r}")
    if out.exists() and not out.is_file():
        raise QRInputError(f"{flag} {path!r} exists and is not a regular file")
    _writable_folder(out.parent, f"{flag} {path!r}")
    return out


def check_folder_out(path: str | Path, flag: str = "--out") -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise QRInputError(f"{flag} {str(path)!r} is a file: give a folder for the images")
    _writable_folder(out, f"{flag} {str(path)!r}")
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_image(image: np.ndarray, path: str | Path) -> None:
    """Write `image` to `path` in the format its extension names, all or nothing: into a temporary file beside it,
    then renamed over it; a failed write (a full disk) leaves no partial file and raises QRInputError."""
    out = Path(path)
    fmt = IMAGE_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise QRInputError(f"{str(path)!r}: name an image file ending in {', '.join(IMAGE_FORMATS)}")
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(to_uint8(image)).save(fh, format=fmt)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
        tmp = None
    except OSError as err:
        raise QRInputError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
