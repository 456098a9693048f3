"""The `aesthetic-qr` command's JSON contract (flag names and fields other tools rely on)."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from aesthetic_qr.scan.decoders import decode


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aesthetic_qr.tools.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_encode_json_contract_and_png(tmp_path):
    out = tmp_path / "code.png"
    proc = run("encode", "--text", "Thanks reviewer!", "--version", "3", "--ecl", "M", "--mask", "4",
               "--module-px", "20", "--border", "4", "--style", "plain", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert {"version", "ecl", "mask", "module_px", "border", "size", "free_bits", "matrix"} <= set(info)
    assert (info["version"], info["ecl"], info["mask"], info["module_px"], info["border"]) == (3, "M", 4, 20, 4)
    assert info["size"] == 29 and len(info["matrix"]) == 29 and set(np.unique(info["matrix"])) == {0, 1}
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (740, 740, 3)  # (29 + 2·4)·20
    assert decode(image, ("zxing",), expected="Thanks reviewer!")["zxing"].match


def test_verify_json_contract(tmp_path):
    out, spec = tmp_path / "code.png", tmp_path / "code.json"
    proc = run("encode", "--text", "verify me", "--out", str(out), "--json")
    spec.write_text(proc.stdout)
    proc = run("verify", str(out), "--qr", str(spec), "--suite", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["pass"] is True
    for name in ("zxing", "wechat"):
        entry = report["decoders"][name]
        assert entry["decoded"] and entry["text"] == "verify me" and entry["match"] is True
        assert entry["ssr"] >= 0.9
    assert report["analysis"]["min_margin"] == report["analysis"]["correctable"]

    proc = run("verify", str(out), "--expect", "something else", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["pass"] is False and report["decoders"]["zxing"]["match"] is False
    assert "ssr" not in report["decoders"]["zxing"]


def test_reshuffle_json_contract(tmp_path):
    target = tmp_path / "target.png"
    y, x = np.mgrid[:200, :200]
    Image.fromarray(((np.hypot(x - 100, y - 100) < 60) * 255).astype(np.uint8)).save(target)
    out = tmp_path / "r.png"
    proc = run("reshuffle", "--text", "https://example.com/disc", "--target", str(target), "--version", "5",
               "--ecl", "L", "--mask", "search", "--priority", "qart", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert {"version", "ecl", "mask", "size", "free_bits", "matrix", "requested", "pinned", "impossible",
            "match_fraction"} <= set(info)
    assert info["pinned"] == info["free_bits"] and info["match_fraction"] > 0.7
    image = np.asarray(Image.open(out).convert("RGB"))
    assert decode(image, expected="https://example.com/disc")["zxing"].match

    proc = run("reshuffle", "--text", "plain words", "--target", str(target), "--url-fragment", "--out", str(out))
    assert proc.returncode == 2 and "http" in proc.stderr


def test_bad_input_is_one_clear_line(tmp_path):
    proc = run("encode", "--text", "x" * 100, "--version", "2", "--ecl", "H", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "smallest version that fits" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_runs_on_the_embedded_default(tmp_path):
    proc = run("demo", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"plain", "reshuffled"} <= set(result["stages_passed"])
    assert result["reshuffle"]["pinned"] == result["reshuffle"]["free_bits"]
    for stage in result["stages"].values():
        assert (tmp_path / stage["image"].split("/")[-1]).exists()


def test_artup_on_the_bundled_picture(tmp_path):
    """ARTUP (the previous main job): picture in, picture-like QR out that both decoders read, with the report."""
    from pathlib import Path

    picture = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
    out = tmp_path / "artup.png"
    proc = run("artup", "--text", "https://github.com/aesthetic-qr/aesthetic-qr", "--image", str(picture),
               "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["pass"] and {"version", "ecl", "mask"} <= set(result["qr"]) and result["seconds"] < 30
    assert all(d["match"] and d["ssr"] >= 0.95 for d in result["decoders"].values())
    image = np.asarray(Image.open(out).convert("RGB"))
    assert all(r.match for r in decode(image, expected="https://github.com/aesthetic-qr/aesthetic-qr").values())


def test_art_on_the_bundled_picture(tmp_path):
    """The README's main job: the picture in, the same picture out with a code that scans; the JSON contract."""
    from pathlib import Path

    from aesthetic_qr.qr.pixels import load_picture

    picture = Path(__file__).resolve().parents[1] / "assets" / "coffee.jpg"
    out = tmp_path / "art.png"
    proc = run("art", "--text", "https://github.com/aesthetic-qr/aesthetic-qr", "--image", str(picture),
               "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"pass", "ssim", "ssr", "seconds", "version", "ecl", "mask", "errors_per_block", "margin"} <= set(result)
    assert result["pass"] and min(result["ssr"].values()) >= 0.95 and 0 < result["ssim"] < 1
    assert all(m >= 0 for m in result["margin"]) and len(result["margin"]) == len(result["errors_per_block"])
    saved, source = load_picture(out), load_picture(picture)
    assert saved.shape == source.shape                      # the picture's own size and framing
    assert np.array_equal(saved[:, :2], source[:, :2])      # outside the code: the picture's own pixels
    assert all(r.match for r in decode(saved, expected="https://github.com/aesthetic-qr/aesthetic-qr").values())
