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
    assert result["function_style"] in ("picture", "firm", "crisp") and "function patterns" in result["report"]
    assert result["strip"] == "finders" and isinstance(result["polished"], bool)
    assert all(m >= 0 for m in result["margin"]) and len(result["margin"]) == len(result["errors_per_block"])
    saved, source = load_picture(out), load_picture(picture)
    assert saved.shape == source.shape                      # the picture's own size and framing
    assert np.array_equal(saved[:, :2], source[:, :2])      # outside the code: the picture's own pixels
    assert all(r.match for r in decode(saved, expected="https://github.com/aesthetic-qr/aesthetic-qr").values())


TEXT = "https://github.com/aesthetic-qr/aesthetic-qr"


def untrained_weights(path):
    """An untrained codec (reveals nothing): for the paths that need no real read."""
    from aesthetic_qr.invisible.codec import Codec
    from aesthetic_qr.invisible.weights import save_codec

    save_codec(Codec.new("carrier"), path)
    return path


def test_hide_and_reveal_round_trip_with_the_shipped_weights(tmp_path):
    """`hide` keeps the picture's size and hits the PSNR; the saved file does not scan, `reveal` reads it back;
    --expect decides the exit code (1 for another payload, as a failed verification)."""
    from pathlib import Path

    from aesthetic_qr.qr.pixels import load_picture

    picture = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
    out = tmp_path / "hidden.png"
    proc = run("hide", "--text", TEXT, "--image", str(picture), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert {"pass", "psnr", "ssim", "version", "ecl", "survives", "steps", "out", "seconds"} <= set(info)
    assert info["pass"] is True and info["survives"] == {"clean": True, "jpeg90": True}
    assert abs(info["psnr"] - 38) <= 0.1 and 0.8 < info["ssim"] < 1 and info["ecl"] == "M" and info["out"] == str(out)
    saved = load_picture(out)
    assert saved.shape == load_picture(picture).shape
    assert not decode(saved, ("zxing",), expected=TEXT)["zxing"].decoded   # invisible to a scanner

    proc = run("reveal", str(out), "--expect", TEXT, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["decoded"], result["text"], result["match"]) == (True, TEXT, True)
    proc = run("reveal", str(out), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["match"] is None
    proc = run("reveal", str(out), "--expect", "something else", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["match"] is False

    proc = run("hide", "--text", TEXT, "--image", str(picture), "--out", str(out), "--psnr", "32",
               "--survive", "jpeg75,blur1,resize0.5", "--json")
    assert proc.returncode == 0 and abs(json.loads(proc.stdout)["psnr"] - 32) <= 0.1, proc.stderr
    assert list(json.loads(proc.stdout)["survives"]) == ["clean", "jpeg75", "blur1", "resize0.5"]


def test_hide_exits_1_and_keeps_the_picture_when_the_code_does_not_survive(tmp_path):
    weights = untrained_weights(tmp_path / "untrained.safetensors")
    picture, out = tmp_path / "pic.png", tmp_path / "hidden.png"
    Image.fromarray((np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)).save(picture)
    proc = run("hide", "--text", "x", "--image", str(picture), "--out", str(out), "--weights", str(weights),
               "--steps", "5")
    assert proc.returncode == 1 and out.is_file(), proc.stderr
    assert proc.stdout.startswith("FAIL: ") and "does NOT read back after clean, jpeg90" in proc.stdout
    assert "; 5 refinement steps" in proc.stdout


def test_reveal_finds_nothing_and_exits_1(tmp_path):
    weights = untrained_weights(tmp_path / "untrained.safetensors")
    picture = tmp_path / "pic.png"
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(picture)
    proc = run("reveal", str(picture), "--weights", str(weights), "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["pass"], result["decoded"], result["text"], result["match"]) == (False, False, None, None)
    proc = run("reveal", str(picture), "--weights", str(weights), "--expect", "x")
    assert proc.returncode == 1 and proc.stdout.strip() == "FAIL: nothing decoded; expected 'x'"
