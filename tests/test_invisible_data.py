"""invisible.data: wallpapers from Debian packages (one file per picture, a split by name) and training batches."""

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aesthetic_qr.invisible import data
from aesthetic_qr.invisible.data import (
    WALLPAPER_PACKAGES,
    Picture,
    PictureCrops,
    fetch_wallpapers,
    pictures_in,
    procedural,
    split,
)


def _save(path: Path, size: tuple[int, int], colour=(90, 140, 200), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def test_resolutions_of_one_wallpaper_collapse_to_one_picture(tmp_path):
    kde = tmp_path / "usr/share/wallpapers/Altai/contents"
    _save(kde / "images/640x400.png", (640, 400))
    chosen = _save(kde / "images/1920x1200.png", (1920, 1200))
    _save(kde / "images/2880x1620.jpg", (2880, 1620))              # over ~4 MP: decoding costs, crops gain nothing
    os.symlink("/usr/share/wallpapers/gone.png", kde / "images/1280x800.png")  # a link may leave the tree
    dark = _save(kde / "images_dark/800x500.png", (800, 500))
    _save(kde / "screenshot.png", (400, 400))
    (kde / "images/1920x1080.svg").write_text("<svg/>")
    mate = tmp_path / "usr/share/backgrounds/mate/abstract"
    _save(mate / "Elephants.jpg", (640, 400))
    elephants = _save(mate / "Elephants_1920x1080.jpg", (1920, 1080))
    _save(mate / "Elephants_3840x2160.jpg", (3840, 2160))
    big = _save(mate / "Big_2100x2100.png", (2100, 2100))            # every size over ~4 MP: the smallest
    _save(mate / "Big_2400x2400.png", (2400, 2400))
    _save(mate / "Tiny.png", (500, 300))                              # short side under 384
    gnome = tmp_path / "usr/share/backgrounds/gnome"
    light, night = _save(gnome / "wood-l.webp", (512, 512)), _save(gnome / "wood-d.webp", (512, 512))

    found = {picture.name: picture for picture in pictures_in(tmp_path, "pkg")}
    assert {name: picture.path for name, picture in found.items()} == {
        "pkg/Altai": chosen, "pkg/Altai-dark": dark, "pkg/mate/abstract/Elephants": elephants,
        "pkg/mate/abstract/Big": big, "pkg/gnome/wood-l": light, "pkg/gnome/wood-d": night}
    assert all(picture.source == "pkg" for picture in found.values())


def test_fetch_downloads_and_unpacks_only_what_the_cache_lacks(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, cwd=None, **_):
        calls.append((command[0], cwd))
        if command[0] == "apt-get":
            (cwd / f"{command[2]}_1.0_all.deb").write_bytes(b"")
        else:                                                         # dpkg-deb -x DEB TARGET
            package = Path(command[2]).name.split("_")[0]
            _save(Path(command[3]) / f"usr/share/backgrounds/{package}.png", (400, 400))

    monkeypatch.setattr(data.subprocess, "run", fake_run)
    pictures = fetch_wallpapers(tmp_path)
    assert [picture.name for picture in pictures] == sorted(f"{package}/{package}" for package in WALLPAPER_PACKAGES)
    assert pictures == sorted(pictures)
    assert calls.count(("apt-get", tmp_path / "debs")) == len(WALLPAPER_PACKAGES)
    assert sorted(path.name for path in (tmp_path / "unpacked").iterdir()) == sorted(WALLPAPER_PACKAGES)

    calls.clear()
    assert fetch_wallpapers(tmp_path) == pictures and calls == []


@pytest.mark.parametrize("failure, message", [
    (FileNotFoundError("apt-get"), "apt-get not found"),
    (subprocess.CalledProcessError(100, "apt-get", stderr="Reading...\nE: Unable to locate package x\n"),
     "apt-get download desktop-base failed: E: Unable to locate package x"),
])
def test_a_missing_or_failing_apt_get_says_so_in_one_line(tmp_path, monkeypatch, failure, message):
    def fail(*_, **__):
        raise failure

    monkeypatch.setattr(data.subprocess, "run", fail)
    with pytest.raises(RuntimeError, match=message):
        fetch_wallpapers(tmp_path)
    assert not (tmp_path / "unpacked" / "desktop-base").exists()


def test_split_is_by_name_whatever_the_order_and_keeps_light_and_dark_together():
    pictures = [Picture("p", f"p/wall{i}", Path(f"{i}.png")) for i in range(300)]
    pictures += [Picture("p", f"p/pair{i}{side}", Path(f"{i}{side}.png")) for i in range(50) for side in ("-l", "-d")]
    train, held_out = split(pictures)
    assert sorted(train + held_out) == sorted(pictures) and not set(train) & set(held_out)
    assert 0.08 < len(held_out) / len(pictures) < 0.22
    shuffled = pictures[:]
    random.Random(1).shuffle(shuffled)
    assert [sorted(side) for side in split(shuffled)] == [sorted(train), sorted(held_out)]
    held_names = {picture.name for picture in held_out}
    assert all((f"p/pair{i}-l" in held_names) == (f"p/pair{i}-d" in held_names) for i in range(50))
    assert split(pictures, held_out=0.0)[1] == [] and split(pictures, held_out=1.0)[0] == []


def test_procedural_pictures_vary_and_have_sharp_edges():
    rng = np.random.default_rng(3)
    pictures = [procedural(rng, 64) for _ in range(24)]
    assert all(p.shape == (64, 64, 3) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1 for p in pictures)
    assert len({p.tobytes() for p in pictures}) == len(pictures)
    steps = [max(np.abs(np.diff(p, axis=0)).max(), np.abs(np.diff(p, axis=1)).max()) for p in pictures]
    assert sum(step > 0.4 for step in steps) >= len(pictures) // 2
    again = np.random.default_rng(3)
    assert np.array_equal(procedural(again, 64), pictures[0])


def _pictures(tmp_path) -> list[Picture]:
    noise = np.random.default_rng(0).integers(0, 256, (500, 900, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    Image.fromarray(noise[:400, :400]).save(tmp_path / "square.jpg")
    return [Picture("t", f"t/{name}", tmp_path / name) for name in ("noise.png", "square.jpg")]


def test_picture_crops_batches_are_reproducible_per_seed(tmp_path, torch_one_thread):
    pictures = _pictures(tmp_path)
    crops = PictureCrops(pictures, size=48, seed=7, max_side=256)
    assert max(max(image.shape[:2]) for image in crops.images) <= 256
    assert all(image.dtype == np.uint8 and image.shape[2] == 3 for image in crops.images)
    batch = crops.batch(10)
    assert batch.shape == (10, 3, 48, 48) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1 and batch.std() > 0.05
    assert torch.equal(PictureCrops(pictures, size=48, seed=7, max_side=256).batch(10), batch)
    assert not torch.equal(PictureCrops(pictures, size=48, seed=8, max_side=256).batch(10), batch)
    assert not torch.equal(crops.batch(10), batch)


def test_crops_come_from_the_pictures_and_transparency_lies_on_grey(tmp_path):
    red = _save(tmp_path / "red.jpg", (600, 400), (255, 0, 0))
    clear = _save(tmp_path / "clear.png", (400, 400), (255, 255, 255, 0), mode="RGBA")
    for path, colour in ((red, (1, 0, 0)), (clear, (128 / 255,) * 3)):
        batch = PictureCrops([Picture("t", "t/x", path)], size=32, seed=0, procedural_share=0).batch(4)
        expected = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1).expand_as(batch)
        assert torch.allclose(batch, expected, atol=0.02)
    with pytest.raises(ValueError, match="no pictures"):
        PictureCrops([], size=32, seed=0)
    assert PictureCrops([], size=32, seed=0, procedural_share=1).batch(2).shape == (2, 3, 32, 32)
