"""The README's promise for bad input, case by case (issue: 38 of 235 CLI cases broke it): exit code 2, exactly one
line on stderr that says what to change, no traceback, no output file, and no computation before the output path
is checked. In-process through `cli.main(argv)`; a few cases also as a real process (argv bytes, sys.exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from aesthetic_qr.art.follow import follow_picture
from aesthetic_qr.invisible.codec import Codec
from aesthetic_qr.invisible.weights import save_codec
from aesthetic_qr.qr import QRInputError
from aesthetic_qr.tools import cli
from aesthetic_qr.tools import files as output_files

PICTURE_JOBS = ("reshuffle", "artup", "personalize", "art")
VERSIONED_JOBS = ("reshuffle", "artup", "personalize")  # art chooses its version per level


@pytest.fixture
def files(tmp_path):
    """A small picture, a code description, a file, a JSON list, and the folder outputs go to."""
    pic = tmp_path / "pic.png"
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(pic)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "number.json").write_text("3")
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "wrong.json").write_text(json.dumps({"text": "x", "version": "v", "ecl": "M", "mask": 0}))
    (tmp_path / "out").mkdir()
    save_codec(Codec.new("carrier"), tmp_path / "untrained.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    return tmp_path


def picture_job(job: str, *extra: str) -> list[str]:
    flag = "--target" if job == "reshuffle" else "--image"
    return [job, "--text", "https://example.com", flag, "{pic}", *extra]


def with_out(argv: list[str], out: str = "{out}/o.png") -> list[str]:
    return argv if "--out" in argv else [*argv, "--out", out]


OUT_CASES = {  # an --out no image can be written to
    "under a missing folder of /proc": "/proc/aqr-nowhere/o.png",
    "under a file": "{dir}/afile/o.png",
    "a folder": "{out}",
    "no extension": "{out}/o",
    "unknown extension": "{out}/o.xyz",
    "/dev/full": "/dev/full",
    "a dot file": "{out}/.png",
}

CASES: dict[str, tuple[list[str], str]] = {}  # id -> (argv, a word the line must hold)
for value in ("abc", "3.5", "nan", "41", "0", "-1", ""):
    CASES[f"encode --version {value!r}"] = (["encode", "--text", "x", "--version", value], "--version")
for job in VERSIONED_JOBS:
    CASES[f"{job} --version 41"] = (picture_job(job, "--version", "41"), "version")
for job in PICTURE_JOBS:
    for seed in ("-1", "4294967296", "abc", "1.5"):
        CASES[f"{job} --seed {seed}"] = (picture_job(job, "--seed", seed), "--seed")
    for name, out in OUT_CASES.items():
        CASES[f"{job} --out {name}"] = (picture_job(job, "--out", out), "--out")
    CASES[f"{job} no picture"] = (with_out([job, "--text", "x", "--target" if job == "reshuffle" else "--image",
                                            "{dir}/missing.png"]), "missing.png")
    CASES[f"{job} picture is a JSON file"] = (with_out(picture_job(job)[:-1] + ["{dir}/list.json"]), "list.json")
for name, out in OUT_CASES.items():
    CASES[f"encode --out {name}"] = (["encode", "--text", "x", "--out", out], "--out")
    CASES[f"hide --out {name}"] = (["hide", "--text", "x", "--image", "{pic}", "--out", out], "--out")
HIDE = ["hide", "--text", "x", "--image", "{pic}", "--out", "{out}/o.png", "--weights", "{dir}/untrained.safetensors"]
for value in ("70", "19.5", "nan", "inf", "abc", ""):
    CASES[f"hide --psnr {value!r}"] = ([*HIDE, "--psnr", value], "--psnr")
for value in ("jpeg91", "jpeg90,blur2"):
    CASES[f"hide --survive {value!r}"] = ([*HIDE, "--survive", value], "unknown attack")
for value in ("-1", "1.5", "abc"):
    CASES[f"hide --steps {value!r}"] = ([*HIDE, "--steps", value], "--steps")
CASES.update({
    "hide no picture": ([*HIDE[:4], "{dir}/missing.png", *HIDE[5:]], "missing.png"),
    "hide picture too small for the code": ([*HIDE[:2], "https://example.com", *HIDE[3:]], "too small"),
    "hide --weights missing": ([*HIDE[:-1], "{dir}/nope.safetensors"], "nope.safetensors"),
    "hide --weights not safetensors": ([*HIDE[:-1], "{dir}/afile"], "afile"),
    "hide --weights another model": ([*HIDE[:-1], "{dir}/foreign.safetensors"], "not an aesthetic-qr"),
    "reveal missing image": (["reveal", "{dir}/nope.png", "--weights", "{dir}/untrained.safetensors"], "nope.png"),
    "reveal --weights missing": (["reveal", "{pic}", "--weights", "{dir}/nope.safetensors"], "nope.safetensors"),
    "reveal no image": (["reveal", "--expect", "x"], "image"),
})
CASES.update({
    "encode text too long for any code": (["encode", "--text", "x" * 3000], "bits"),
    "encode text too long for the version": (["encode", "--text", "x" * 300, "--version", "6"], "version 6"),
    "encode empty text": (["encode", "--text", ""], "empty"),
    "encode --module-px 0": (["encode", "--text", "x", "--module-px", "0"], "--module-px"),
    "encode --border -1": (["encode", "--text", "x", "--border", "-1"], "--border"),
    "encode --multiple 0": (["encode", "--text", "x", "--multiple", "0"], "--multiple"),
    "encode --module-px huge": (["encode", "--text", "x", "--module-px", "100000"], "px"),
    "encode --mask 9": (["encode", "--text", "x", "--mask", "9"], "--mask"),
    "encode --ecl Z": (["encode", "--text", "x", "--ecl", "Z"], "--ecl"),
    "encode no --text": (["encode"], "--text"),
    "no subcommand": ([], "command"),
    "unknown subcommand": (["bogus"], "bogus"),
    "unknown flag": (["encode", "--text", "x", "--out", "{out}/o.png", "--bogus"], "--bogus"),
    "reshuffle --extra-versions 40": (picture_job("reshuffle", "--extra-versions", "40"), "--extra-versions"),
    "reshuffle --url-fragment on plain text": (["reshuffle", "--text", "words", "--target", "{pic}",
                                                "--url-fragment"], "http"),
    "reshuffle --fixed-mask missing": (picture_job("reshuffle", "--fixed-mask", "{dir}/nope.png"), "nope.png"),
    "verify --qr a JSON list": (["verify", "{pic}", "--qr", "{dir}/list.json"], "list"),
    "verify --qr a JSON number": (["verify", "{pic}", "--qr", "{dir}/number.json"], "int"),
    "verify --qr an empty object": (["verify", "{pic}", "--qr", "{dir}/empty.json"], "empty.json"),
    "verify --qr a bad version": (["verify", "{pic}", "--qr", "{dir}/wrong.json"], "wrong.json"),
    "verify --qr not JSON": (["verify", "{pic}", "--qr", "{dir}/bad.json"], "bad.json"),
    "verify --qr a folder": (["verify", "{pic}", "--qr", "{dir}"], "cannot read"),
    "verify --qr missing": (["verify", "{pic}", "--qr", "{dir}/nope.json"], "nope.json"),
    "verify missing image": (["verify", "{dir}/nope.png", "--expect", "x"], "nope.png"),
    "verify image is not an image": (["verify", "{dir}/afile", "--expect", "x"], "afile"),
    "verify --expect and --qr": (["verify", "{pic}", "--expect", "x", "--qr", "{dir}/list.json"], "not allowed"),
    "verify --decoders zbarcode": (["verify", "{pic}", "--expect", "x", "--decoders", "zxing,zbarcode"], "--decoders"),
    "verify --decoders empty": (["verify", "{pic}", "--expect", "x", "--decoders", ","], "--decoders"),
    "art --decoders quirc": (picture_job("art", "--decoders", "quirc"), "--decoders"),
    "art --polish-iterations -1": (picture_job("art", "--polish-iterations", "-1"), "--polish-iterations"),
    "artup --size-px 0": (picture_job("artup", "--size-px", "0"), "--size-px"),
    "artup --size-px -1": (picture_job("artup", "--size-px", "-1"), "--size-px"),
    "artup --size-px 1": (picture_job("artup", "--size-px", "1"), "--size-px"),
    "artup --size-px 40": (picture_job("artup", "--size-px", "40"), "at least"),
    "artup --p-min nan": (picture_job("artup", "--p-min", "nan"), "--p-min"),
    "artup --p-min 2": (picture_job("artup", "--p-min", "2"), "--p-min"),
    "personalize --iterations -1": (picture_job("personalize", "--iterations", "-1"), "--iterations"),
    "personalize --iterations 2.5": (picture_job("personalize", "--iterations", "2.5"), "--iterations"),
    "personalize --module-px 0": (picture_job("personalize", "--module-px", "0"), "--module-px"),
    "run-workflow --timeout nan": (["run-workflow", "artup_cpu", "--timeout", "nan"], "--timeout"),
    "run-workflow --timeout inf": (["run-workflow", "artup_cpu", "--timeout", "inf"], "--timeout"),
    "run-workflow --timeout 0": (["run-workflow", "artup_cpu", "--timeout", "0"], "--timeout"),
    "run-workflow --timeout -5": (["run-workflow", "artup_cpu", "--timeout", "-5"], "--timeout"),
    "run-workflow unknown workflow": (["run-workflow", "no_such_flow", "--server", "127.0.0.1:1"], "no workflow"),
    "run-workflow --out a file": (["run-workflow", "artup_cpu", "--out", "{dir}/afile",
                                   "--server", "127.0.0.1:1"], "--out"),
    "run-workflow --set without a dot": (["run-workflow", "artup_cpu", "--set", "x=1", "--server", "127.0.0.1:1"],
                                         "--set"),
    "run-workflow no server": (["run-workflow", "artup_cpu", "--server", "127.0.0.1:1", "--out", "{out}"],
                               "no ComfyUI"),
    "demo --text of 3000 characters": (["demo", "--text", "x" * 3000, "--out", "{out}/demo"], "bits"),
    "demo --out a file": (["demo", "--out", "{dir}/afile"], "--out"),
    "demo --out under a file": (["demo", "--out", "{dir}/afile/demo"], "afile"),
})


def expand(argv: list[str], files: Path) -> list[str]:
    return [a.format(dir=files, pic=files / "pic.png", out=files / "out") for a in argv]


@pytest.fixture
def no_computation(monkeypatch):
    """Any picture read means the command got past its argument checks: a bad --out must stop it before."""
    def refuse(path):
        raise AssertionError(f"read {path} before the arguments were checked")
    monkeypatch.setattr(cli, "load_image", refuse)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, files, capsys, monkeypatch):
    argv, word = CASES[case]
    if case.split()[0] in ("encode", *PICTURE_JOBS) and "--out" not in argv and len(argv) > 1:
        argv = with_out(argv)
    if "--out" in case and case.split()[0] in (*PICTURE_JOBS, "hide"):
        monkeypatch.setattr(cli, "load_image", lambda path: pytest.fail("computed before checking --out"))
    before = {p for p in files.rglob("*")}
    rc = cli.main(expand(argv, files))
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert err.startswith("aesthetic-qr") and word in err, err
    assert "Traceback" not in err and "None bits" not in err
    assert out == ""
    assert {p for p in files.rglob("*")} == before  # no output file, partial or whole (and no .part left)


@pytest.mark.parametrize("job", ["verify", "art"])
def test_a_missing_zbar_is_one_line_and_exit_2(job, files, capsys, monkeypatch):
    from aesthetic_qr.scan import decoders

    monkeypatch.setitem(decoders._state, "zbar", ImportError("no zbar here (test)"))
    argv = ["verify", "{pic}", "--expect", "x"] if job == "verify" else with_out(picture_job("art"))
    rc = cli.main(expand([*argv, "--decoders", "zxing,zbar"], files))
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("aesthetic-qr") and "decoder zbar is not available: no zbar here (test)" in err


def test_follow_picture_refuses_a_version_out_of_range():
    """The root of `--version 41` → TypeError at `best[1]`: no version was tried."""
    picture = np.zeros((32, 32, 3), np.float32)
    for version in (41, 0, -1, 2.5, True):
        with pytest.raises(QRInputError, match="version .* out of range: use 1-40"):
            follow_picture("x", picture, version=version)


def test_seed_rule_is_the_same_for_every_subcommand():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    seeded = {name: next(a for a in p._actions if a.dest == "seed") for name, p in subs.items()
              if any(a.dest == "seed" for a in p._actions)}
    assert set(seeded) == set(PICTURE_JOBS)
    for action in seeded.values():
        assert action.type("0") == 0 and action.type(str(cli.MAX_SEED)) == cli.MAX_SEED
        for bad in ("-1", str(cli.MAX_SEED + 1)):
            with pytest.raises(Exception, match="out of range"):
                action.type(bad)


def test_a_failed_write_leaves_no_partial_file(files, capsys, monkeypatch):
    """A full disk mid-write (what /dev/full does): exit 2, one line, and neither the file nor a temporary."""
    out = files / "out" / "code.png"

    def full_disk(self, fp, format=None, **kw):  # noqa: A002
        fp.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    rc = cli.main(["encode", "--text", "x", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "No space left" in err
    assert list((files / "out").iterdir()) == []


def test_an_existing_output_is_replaced_whole(files, capsys):
    out = files / "out" / "code.png"
    out.write_bytes(b"old")
    assert cli.main(["encode", "--text", "x", "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 0 and list((files / "out").iterdir()) == [out]
    assert (out.stat().st_mode & 0o777) == 0o666 & ~output_files._umask()


def test_a_large_picture_warning_is_one_line(files, capsys, monkeypatch):
    """PIL's DecompressionBombWarning (a 10000² picture) prints one line, not the warning and its source line."""
    real = cli.load_image

    def load(path):
        warnings.warn("Image size (100000000 pixels) exceeds limit of 89478485 pixels, could be decompression "
                      "bomb DOS attack.", Image.DecompressionBombWarning, stacklevel=1)
        return real(path)

    monkeypatch.setattr(cli, "load_image", load)
    rc = cli.main(["verify", str(files / "pic.png"), "--expect", "x"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith("aesthetic-qr verify: warning: Image size"), err


@pytest.mark.parametrize("side, rc", [(40, 1), (100, 2)])  # above PIL's limit (a warning), above twice (an error)
def test_a_decompression_bomb_is_at_most_one_line(files, capsys, monkeypatch, side, rc):
    path = files / "big.png"
    Image.new("RGB", (side, side), "white").save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert cli.main(["verify", str(path), "--expect", "x"]) == rc
    err = capsys.readouterr().err
    assert err.count("\n") <= 1 and "Traceback" not in err and "warnings.warn" not in err
    assert rc == 1 or "big.png" in err or "megapixels" in err or "pixels" in err


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aesthetic_qr.tools.cli", *args], capture_output=True, timeout=60,
                          **kw)


def test_real_processes_exit_2_with_one_line(tmp_path):
    """Through a real interpreter: argv bytes that are not UTF-8 arrive as surrogates (surrogateescape), and the
    exit code is sys.exit's."""
    out = str(tmp_path / "o.png").encode()
    for argv, word in (([b"encode", b"--text", b"caf\xe9", b"--out", out], b"UTF-8"),
                       ([b"encode", b"--text", b"x", b"--version", b"abc", b"--out", out], b"--version")):
        proc = run(*argv)
        assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1 and word in proc.stderr, proc.stderr
        assert b"Traceback" not in proc.stderr and not Path(out.decode()).exists()


def test_a_non_utf8_output_name_is_written_and_printed_as_json(tmp_path):
    """A file name that is not UTF-8 is still a valid name: written, and printed as JSON with \\u escapes."""
    out = bytes(tmp_path) + b"/caf\xe9.png"
    proc = run(b"encode", b"--text", b"x", b"--out", out, b"--json")
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    assert os.path.exists(out) and os.fsencode(json.loads(proc.stdout)["out"]) == out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in any folder")
def test_a_folder_without_write_permission_is_refused_before_computing(files, capsys, monkeypatch):
    locked = files / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr(cli, "load_image", lambda path: pytest.fail("computed before checking --out"))
    try:
        rc = cli.main(["artup", "--text", "x", "--image", str(files / "pic.png"), "--out", str(locked / "a.png")])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "cannot write" in err
