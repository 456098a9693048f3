"""The embedded default job (no downloads, CPU): encode a message, make it follow a built-in picture, draw the
halftone blueprint, and verify every stage with real decoders and the simulated-camera suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..art.blueprint import halftone_blueprint
from ..art.follow import follow_picture
from ..qr import encode
from ..qr.render import render
from ..scan.report import verify_image
from .files import check_folder_out, save_image

DEFAULT_TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"


def smiley(side: int = 512) -> np.ndarray:
    """A built-in test picture: a shaded yellow smiley on a blue gradient (H×W×3 float in [0, 1])."""
    y, x = (np.mgrid[:side, :side] + 0.5) / side - 0.5
    r = np.hypot(x, y)
    img = np.stack([0.25 + 0.3 * (y + 0.5), 0.45 + 0.2 * (y + 0.5), 0.85 - 0.1 * (y + 0.5)], axis=-1)
    face = r < 0.4
    shade = np.clip(1.0 - 0.8 * np.hypot(x + 0.12, y + 0.12), 0, 1)[..., None]
    img[face] = (np.array([1.0, 0.82, 0.15]) * shade)[face]
    eyes = (np.hypot(x + 0.14, y + 0.1) < 0.06) | (np.hypot(x - 0.14, y + 0.1) < 0.06)
    mouth = (np.abs(r - 0.0) < 1) & (np.abs(np.hypot(x, y - 0.02) - 0.22) < 0.035) & (y > 0.07)
    img[eyes | mouth] = (0.12, 0.08, 0.05)
    return img.astype(np.float32)


def run_demo(out_dir: str | Path, text: str = DEFAULT_TEXT, suite: bool = True) -> dict:
    """The demo in `out_dir`; the text is checked (it must fit a code) before any picture is made. Version 6 makes
    a picture-like code; a longer text gets the smallest version that holds it."""
    version = max(6, encode(text, ecl="M").version)  # a text no code holds fails here, with encode's message
    out = check_folder_out(out_dir)

    def save(name: str, image: np.ndarray) -> str:
        path = out / name
        save_image(image, path)
        return str(path)

    picture = smiley()
    plain = encode(text, version=version, ecl="M")
    plain_image, geo = render(plain, module_px=12, border=4, multiple=8)
    plain = plain.with_geometry(geo)
    follow = follow_picture(text, picture, version=version, ecl="M", mask=None, module_px=12, border=4, multiple=8,
                            priority="artup")
    code = follow.qr
    code_image, _ = render(code, 12, 4, multiple=8)
    halftone = halftone_blueprint(picture, code, core_ratio=0.4)
    stages = {"plain": (plain, plain_image), "reshuffled": (code, code_image), "halftone": (code, halftone)}
    result = {"text": text, "picture": save("picture.png", picture), "reshuffle": follow.report.to_dict(),
              "stages": {}}
    result["reshuffle"].pop("per_block")
    for name, (qr, image) in stages.items():
        report = verify_image(image, qr.text, qr, suite=suite)
        result["stages"][name] = {"image": save(f"{name}.png", image), **report.to_dict()}
    result["stages_passed"] = [name for name, s in result["stages"].items() if s["pass"]]
    result["report"] = "\n\n".join(
        [f"reshuffle: {follow.report.to_text().splitlines()[0]}"]
        + [f"[{name}] {s['image']}\n{s['report']}" for name, s in result["stages"].items()]
        + ["A halftone alone keeps the picture but is fragile under blur and downscaling (see the suite); the "
           "scanning-robust refinement stages are what make such pictures scan."])
    return result
