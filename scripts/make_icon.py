"""Write docs/icon.png, the pack's registry icon ([tool.comfy] Icon in pyproject.toml): the repository URL as a
QR code made by this pack's own encoder (aesthetic_qr.qr), 400 x 400 px (the registry allows up to 800 x 400),
checked to decode with both decoders.

    python scripts/make_icon.py
"""

from pathlib import Path

import numpy as np
from PIL import Image

from aesthetic_qr.qr import encode
from aesthetic_qr.qr.render import render
from aesthetic_qr.scan.decoders import decode

URL = "https://github.com/aesthetic-qr/aesthetic-qr"
SIDE = 400
OUT = Path(__file__).resolve().parent.parent / "docs" / "icon.png"


def main() -> None:
    qr = encode(URL, ecl="H")
    modules = qr.size + 2 * 2
    image, _ = render(qr, module_px=SIDE // modules, border=2, style="dots")
    picture = np.asarray(image)
    if picture.dtype != np.uint8:
        picture = (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)
    tile = Image.fromarray(picture).convert("RGB")
    canvas = Image.new("RGB", (SIDE, SIDE), "white")
    canvas.paste(tile, ((SIDE - tile.width) // 2, (SIDE - tile.height) // 2))
    reads = decode(np.asarray(canvas), expected=URL)
    assert all(r.match for r in reads.values()), reads
    OUT.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(OUT, optimize=True)
    print(f"{OUT}: {canvas.size}, v{qr.version}-{qr.ecl}, decodes with {', '.join(reads)}")


if __name__ == "__main__":
    main()
