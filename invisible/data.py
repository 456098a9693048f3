"""Training pictures for the invisible-QR CNN: Debian's wallpaper packages (photographs and graphics under known free
licences, fetched with apt-get, no account or web scraping) and procedural pictures with the hard edges and flat
colours that photographs lack. numpy, PIL and torch only."""

from __future__ import annotations

import colorsys
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

# Licences as each package's /usr/share/doc/<package>/copyright states them (Debian 12 versions).
WALLPAPER_PACKAGES: dict[str, str] = {
    "desktop-base": "GPL-2+ / GPL-2 (spacefun) / GPL-3+ or CC-BY-SA-3.0 (Debian logos)",
    "gnome-backgrounds": "CC-BY-SA-3.0 / GPL-2+",
    "mate-backgrounds": "GPL-2+ / CC-BY-SA-4.0 (Ubuntu-Mate-*)",
    "plasma-workspace-wallpapers": "GPL-2+",
    "ukui-wallpapers": "CC-BY-SA-3.0",
}

_RASTER = {".jpg", ".jpeg", ".png", ".webp"}
_NOT_WALLPAPERS = ("screenshot", "preview", "thumb")  # small renderings of a wallpaper or of a whole desktop
_MIN_SIDE = 384
_MAX_PIXELS = 4_200_000  # 2560x1600 still fits; larger files only cost decoding time
_RESOLUTION = re.compile(r"[-_]?\d+x\d+$")  # Elephants_3840x2160, grub-16x9, 1920x1080
_LIGHT_DARK = re.compile(r"-(l|d|light|dark)$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Picture:
    """One wallpaper: its package, a name shared by all its resolutions, and the one file kept."""

    source: str
    name: str
    path: Path


def fetch_wallpapers(cache: Path) -> list[Picture]:
    """Every wallpaper of WALLPAPER_PACKAGES, one file each; downloads and unpacks only what `cache` lacks."""
    pictures = []
    for package in WALLPAPER_PACKAGES:
        root = cache / "unpacked" / package
        if not root.is_dir():
            partial = root.with_name(package + ".partial")  # an interrupted unpack must not pass for a whole tree
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            _run(["dpkg-deb", "-x", str(_deb(package, cache / "debs")), str(partial)])
            partial.rename(root)
        pictures += pictures_in(root, package)
    return sorted(pictures)


def _deb(package: str, debs: Path) -> Path:
    """The package's .deb in `debs`, downloaded by `apt-get download` (needs no root) when not there yet."""
    debs.mkdir(parents=True, exist_ok=True)
    if not any(debs.glob(f"{package}_*.deb")):
        _run(["apt-get", "download", package], cwd=debs)
    return sorted(debs.glob(f"{package}_*.deb"))[-1]


def _run(command: list[str], cwd: Path | None = None) -> None:
    """Run a Debian tool; a missing or failing one raises a one-line RuntimeError (its last line of stderr)."""
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(f"{command[0]} not found: the training wallpapers come from Debian packages "
                           f"({' '.join(command)})") from None
    except subprocess.CalledProcessError as error:
        said = (error.stderr or "").strip().splitlines() or [f"exit status {error.returncode}"]
        raise RuntimeError(f"{' '.join(command)} failed: {said[-1]}") from None


def pictures_in(root: Path, source: str) -> list[Picture]:
    """The raster wallpapers in an unpacked package tree, one file per picture (see `_identity`). Symlinks are
    skipped: KDE links every screen size to one file, and a link may point outside the tree."""
    files: dict[str, list[tuple[int, Path]]] = {}
    for folder, _, names in os.walk(root):
        for file in map(Path(folder).joinpath, names):
            relative = file.relative_to(root)
            if (file.suffix.lower() not in _RASTER or file.is_symlink()
                    or any(word in str(relative).lower() for word in _NOT_WALLPAPERS)):
                continue
            with Image.open(file) as image:
                width, height = image.size
            if min(width, height) >= _MIN_SIDE:
                files.setdefault(_identity(relative, source), []).append((width * height, file))
    return sorted(Picture(source, name, _pick(sizes)) for name, sizes in files.items())


def _identity(relative: Path, source: str) -> str:
    """`source/where/picture` without the resolution, so all sizes of a wallpaper share one name: KDE's
    Altai/contents/images[_dark]/1920x1080.png is "Altai" ("Altai-dark"), Elephants_3840x2160.jpg is "Elephants"."""
    *where, file = relative.parts
    if where[:2] == ["usr", "share"]:
        where = where[2:]
    if where[:1] in (["backgrounds"], ["wallpapers"]):
        where = where[1:]
    if len(where) >= 3 and where[-2] == "contents":
        where = [*where[:-3], where[-3] + ("-dark" if where[-1].endswith("_dark") else "")]
    stem = _RESOLUTION.sub("", Path(file).stem)
    return "/".join([source, *where, stem] if stem else [source, *where])


def _pick(sizes: list[tuple[int, Path]]) -> Path:
    """The largest file of at most ~4 MP (quick to decode, more than a crop needs), else the smallest."""
    fitting = [size for size in sizes if size[0] <= _MAX_PIXELS]
    return (max(fitting) if fitting else min(sizes))[1]


def split(pictures: list[Picture], held_out: float = 0.15) -> tuple[list[Picture], list[Picture]]:
    """Train and held-out pictures by a hash of each name, so the split depends on no order or seed, a picture's
    sizes share its name, and light/dark variants (gnome's -l/-d, KDE's -dark) hash alike and stay on one side."""
    def is_held_out(picture: Picture) -> bool:
        digest = hashlib.sha1(_LIGHT_DARK.sub("", picture.name).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < held_out

    return [p for p in pictures if not is_held_out(p)], [p for p in pictures if is_held_out(p)]


def procedural(rng: np.random.Generator, size: int) -> np.ndarray:
    """A synthetic size x size x 3 float32 picture in [0, 1]: a smooth, textured, striped or flat background with
    shapes, pen strokes and patterns pasted on with hard edges, since photographs alone leave sharp graphics unseen
    (the paper's model failed on them)."""
    layers = (_gradient, _noise, _stripes, _regions)
    picture = layers[rng.integers(len(layers))](rng, size)
    for _ in range(rng.integers(0, 5)):
        mask = (_shapes if rng.random() < 0.65 else _strokes)(rng, size)
        fill = layers[rng.integers(len(layers))](rng, size) if rng.random() < 0.35 else _colours(rng, 1)
        picture = np.where(mask[..., None], fill, picture)
    if rng.random() < 0.3:  # sensor grain
        picture = picture + rng.normal(0, rng.uniform(0.005, 0.04), picture.shape)
    return np.clip(picture, 0, 1).astype(np.float32)


def _colours(rng: np.random.Generator, n: int, vivid: bool | None = None) -> np.ndarray:
    """n RGB colours: vivid hues like logos and flat graphics, or any colour (half the time each, by default)."""
    if vivid is None:
        vivid = rng.random() < 0.5
    if vivid:
        return np.array([colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.6, 1), rng.uniform(0.6, 1))
                         for _ in range(n)], np.float32)
    return rng.random((n, 3), dtype=np.float32)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear or radial blend of two colours: smooth, like sky or a studio backdrop."""
    y, x = np.mgrid[:size, :size] / size
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(angle) + y * np.sin(angle)
    else:
        t = np.hypot(x - rng.random(), y - rng.random())
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    low, high = _colours(rng, 2)
    return low + (high - low) * t[..., None]


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """One to four octaves of value noise from a random scale (half-picture blobs down to 1-pixel grain) between two
    colours, sometimes thresholded into hard-edged blobs."""
    field = np.zeros((size, size), np.float32)
    cells = int(2 ** rng.uniform(1, np.log2(size)))
    for octave in range(rng.integers(1, 5)):
        grid = Image.fromarray(rng.standard_normal((min(cells << octave, size),) * 2, dtype=np.float32))
        field += np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC)) / 2**octave
    t = (field - field.min()) / (np.ptp(field) + 1e-6)
    if rng.random() < 0.3:
        t = (t > rng.uniform(0.3, 0.7)).astype(np.float32)
    low, high = _colours(rng, 2)
    return low + (high - low) * t[..., None]


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes or checks of random period between two colours, half the time pixel-aligned like screen graphics."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    angle = 0.0 if rng.random() < 0.5 else rng.uniform(0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), y * np.cos(angle) - x * np.sin(angle)
    period = rng.uniform(2, size / 3)
    if rng.random() < 0.5:
        mask = (u / period) % 1 < rng.uniform(0.2, 0.8)
    else:
        mask = (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    first, second = _colours(rng, 2)
    return np.where(mask[..., None], first, second)


def _regions(rng: np.random.Generator, size: int) -> np.ndarray:
    """A Voronoi partition into 2-12 vivid flat colours: flat graphics with long sharp borders."""
    count = rng.integers(2, 13)
    seeds = rng.uniform(0, size, (count, 2, 1, 1)).astype(np.float32)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    return _colours(rng, count, vivid=True)[np.argmin((y - seeds[:, 0]) ** 2 + (x - seeds[:, 1]) ** 2, axis=0)]


def _shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A mask of 1-6 rectangles, ellipses, polygons and lines of any size, not anti-aliased: hard edges."""
    mask = Image.new("1", (size, size))
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 7)):
        centre, radius = rng.uniform(-0.1, 1.1, 2) * size, size * 2 ** rng.uniform(-5, -1)
        kind = rng.integers(4)
        if kind < 2:
            box = [*(centre - radius * rng.uniform(0.3, 1, 2)), *(centre + radius * rng.uniform(0.3, 1, 2))]
            (draw.rectangle if kind == 0 else draw.ellipse)(box, fill=1)
        elif kind == 2:
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 8)))
            corners = centre + radius * rng.uniform(0.3, 1, (len(angles), 1)) * np.stack(
                [np.cos(angles), np.sin(angles)], axis=1)
            draw.polygon([tuple(corner) for corner in corners], fill=1)
        else:
            draw.line([tuple(centre), tuple(rng.uniform(0, size, 2))], fill=1, width=int(rng.integers(1, 9)))
    return np.asarray(mask, bool)


def _strokes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A mask of text-like rows of words of pen-stroke glyphs in a random block: fine, high-contrast detail."""
    mask = Image.new("1", (size, size))
    draw = ImageDraw.Draw(mask)
    height = int(rng.integers(6, max(7, size // 6)))
    pen = max(1, height // int(rng.integers(5, 10)))
    left, top = rng.integers(0, size // 2, 2)
    right, bottom = left + rng.integers(size // 4, size), top + rng.integers(size // 4, size)
    for row in range(top, bottom - height, int(height * rng.uniform(1.2, 2))):
        x = left
        while x < right - height:
            for _ in range(rng.integers(1, 9)):
                width = height * rng.uniform(0.4, 0.8)
                points = np.column_stack([x + rng.random(4) * width, row + rng.random(4) * height])
                draw.line([tuple(point) for point in points[:rng.integers(2, 5)]], fill=1, width=pen)
                x += width * 1.15
            x += height * 0.6
    return np.asarray(mask, bool)


def _load(path: Path, max_side: int) -> np.ndarray:
    """RGB uint8 with the longer side at most max_side. Transparent wallpapers (mate's overlays, drawn over a
    background colour) go on mid grey, not on whatever colour their invisible pixels hold."""
    with Image.open(path) as image:
        image.draft("RGB", (max_side, max_side))  # JPEG: let libjpeg decode at 1/2..1/8 scale, far faster
        if image.mode not in ("RGB", "RGBA", "L", "LA"):  # palette and other modes resize only by nearest pixel
            image = image.convert("RGBA")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # before any copy at full size
        image = image.convert("RGBA")
    grey = Image.new("RGBA", image.size, (128, 128, 128, 255))
    return np.asarray(Image.alpha_composite(grey, image).convert("RGB"))


class PictureCrops:
    """Random training pictures from wallpapers decoded once: each item is a procedural picture (share
    `procedural_share`) or a crop of a random wallpaper at a random scale, resized to `size`, maybe mirrored.
    The same seed gives the same batches."""

    def __init__(self, pictures: list[Picture], size: int, seed: int, procedural_share: float = 0.25,
                 max_side: int = 768):
        if not pictures and procedural_share < 1:
            raise ValueError("PictureCrops: no pictures to crop; pass some, or procedural_share=1")
        self.size, self.procedural_share = size, procedural_share
        self.rng = np.random.default_rng(seed)
        self.images = [_load(picture.path, max_side) for picture in pictures]

    def batch(self, n: int) -> torch.Tensor:
        """(n, 3, size, size) float32 in [0, 1]."""
        out = np.empty((n, self.size, self.size, 3), np.float32)
        for item in out:
            item[:] = procedural(self.rng, self.size) if self.rng.random() < self.procedural_share else self._crop()
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def _crop(self) -> np.ndarray:
        """A square crop, side between `size` and the picture's short side, resized to size (antialiased)."""
        image = self.images[self.rng.integers(len(self.images))]
        height, width = image.shape[:2]
        side = int(self.rng.integers(min(self.size, height, width), min(height, width) + 1))
        y, x = self.rng.integers(0, height - side + 1), self.rng.integers(0, width - side + 1)
        crop = Image.fromarray(image[y:y + side, x:x + side]).resize((self.size, self.size),
                                                                      Image.Resampling.LANCZOS)
        crop = np.asarray(crop, np.float32) / 255
        return crop[:, ::-1] if self.rng.random() < 0.5 else crop
