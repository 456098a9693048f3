"""Random argv fragments for every subcommand: the exit code is 0, 1 or 2, `main` never raises (no traceback),
and a 2 comes with exactly one line on stderr (issue: "exit 0/1/2, never a traceback").

In-process through `cli.main(argv)`. What is fuzzed is the command line, so the slow pipelines are replaced by
quick stand-ins that keep their input checks: ARTUP, art and pixel refinement by a reshuffle of the same code, the
camera suite by the plain decode, the demo by its text check; run-workflow talks to the stand-in ComfyUI of
test_cli_server.py. The real pipelines run in test_cli.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_cli_server import StandIn

from aesthetic_qr.tools import cli

BASE = {  # a valid command; fragments after it override or break it (argparse: the last value wins)
    "encode": ["--text", "hi", "--out", "{out}/e.png"],
    "reshuffle": ["--text", "hi", "--target", "{pic}", "--out", "{out}/r.png"],
    "artup": ["--text", "hi", "--image", "{pic}", "--out", "{out}/a.png"],
    "art": ["--text", "hi", "--image", "{pic}", "--out", "{out}/t.png"],
    "personalize": ["--text", "hi", "--image", "{pic}", "--out", "{out}/p.png"],
    "verify": ["{pic}", "--expect", "hi"],
    "demo": ["--out", "{out}/demo"],
    "run-workflow": ["{workflow}"],
}
VALUES = ["0", "1", "2", "3", "-1", "41", "3.5", "nan", "inf", "-inf", "1e3", "abc", "", "auto", "search", "M", "l",
          "4294967296", "99999999", "--", "-", "-x", "x" * 40, "https://example.com", "{pic}", "{dir}",
          "{out}/o.png", "{out}/o", "{out}/o.xyz", "{dir}/afile", "{dir}/afile/o.png", "/proc/aqr/o.png",
          "{dir}/list.json", "{dir}/code.json", "{dir}/missing.png", "artup_cpu", "{workflow}", "Picture.image=x",
          "Picture.image=../../etc/passwd", "1.image=astronaut.jpg", "nope.x=1", "=", "plain", "qart", "artup"]


def flags(command: str) -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")]


@st.composite
def command_lines(draw):
    """A subcommand, usually its valid base, then a few fragments: a flag with a value, a flag, or a bare word."""
    command = draw(st.sampled_from(sorted(BASE)))
    value = st.one_of(st.sampled_from(VALUES), st.text(st.characters(exclude_categories=("Cs",)), max_size=8))
    flag = st.sampled_from(flags(command))
    fragment = st.one_of(st.tuples(flag, value), st.tuples(flag), st.tuples(value))
    base = BASE[command] if draw(st.integers(0, 3)) else []
    return [command, *base, *(word for part in draw(st.lists(fragment, max_size=3)) for word in part)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the fragments name, the quick stand-ins, a working folder for relative outputs, a stand-in server."""
    from aesthetic_qr.art import artup, fidelity, pixel_refine
    from aesthetic_qr.art.follow import follow_picture
    from aesthetic_qr.qr import encode
    from aesthetic_qr.qr.pixels import fit
    from aesthetic_qr.qr.render import render
    from aesthetic_qr.scan import report
    from aesthetic_qr.tools import demo

    root = tmp_path_factory.mktemp("fuzz")
    Image.fromarray((np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8)).save(root / "pic.png")
    (root / "afile").write_text("x")
    (root / "list.json").write_text("[1]")
    (root / "code.json").write_text(json.dumps(encode("hi").to_json()))
    (root / "out").mkdir()
    (root / "wf.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.jpg"}, "_meta": {"title": "Picture"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "aqr"}}}))
    real_verify = report.verify_image

    def verify_image(image, expected, qr=None, *, suite=False, **kw):
        return real_verify(image, expected, qr, suite=False, **kw)

    def artup_until_scans(picture, text=None, *, config, **kw):
        follow = follow_picture(text, picture, version=config.version, ecl=config.ecl, mask=0, module_px=4,
                                border=config.border, seed=config.seed)
        image, _ = render(follow.qr, 4, config.border, multiple=8)
        return SimpleNamespace(image=image, qr=follow.qr, mean_p=1.0), 1

    def art_quick(picture, text, config, progress=None):
        follow = follow_picture(text, picture, ecl=config.ecls[0], mask=0, module_px=4, border=1, seed=config.seed)
        image, _ = render(follow.qr, 4, 1)
        return SimpleNamespace(image=image, qr=follow.qr, passed=True, ssim=0.0, ssr={"zxing": 1.0}, seconds=0.0,
                               robustness=config.robustness, function_style=config.function_style, polished=False,
                               errors_per_block=[0], correctable=0,
                               to_json=lambda: {"pass": True})

    def pixel_refine_quick(picture, qr, config=None, **kw):
        image = fit(picture, qr.geometry)
        return SimpleNamespace(image=image, report=real_verify(image, qr.text, qr), iterations=0,
                               stopped_early=False)

    def run_demo(out_dir, text, suite=True):
        encode(text, ecl="M")
        cli.check_folder_out(out_dir)
        return {"text": text, "report": "stand-in demo"}

    with pytest.MonkeyPatch.context() as mp, StandIn(lifetime=300) as server:
        mp.chdir(root)
        mp.setattr(report, "verify_image", verify_image)
        mp.setattr(artup, "artup_until_scans", artup_until_scans)
        mp.setattr(pixel_refine, "pixel_refine", pixel_refine_quick)
        mp.setattr(fidelity, "art", art_quick)
        mp.setattr(fidelity, "verify", lambda image, qr, *a: ({}, None, True))
        mp.setattr(demo, "run_demo", run_demo)
        yield SimpleNamespace(root=root, server=server)


@settings(max_examples=int(os.environ.get("AQR_FUZZ_EXAMPLES", "150")),  # more for a longer hunt
          deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_random_command_lines_exit_0_1_2_without_a_traceback(world, argv):
    root = world.root
    argv = [a.replace("{dir}", str(root)).replace("{pic}", str(root / "pic.png")).replace("{out}", str(root / "out"))
            .replace("{workflow}", str(root / "wf.json")) for a in argv]
    if argv[0] == "run-workflow":
        argv += ["--server", world.server.url]  # never a headless ComfyUI, never another host
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)  # an exception here is the traceback the CLI must never print
    stderr = err.getvalue()
    assert rc in (0, 1, 2), (argv, rc, stderr)
    event(f"{argv[0]} exit {rc}")
    if rc == 2:
        lines = stderr.splitlines()
        assert lines and lines[-1].startswith("aesthetic-qr"), (argv, stderr)
        if argv[0] != "run-workflow":  # which also reports its progress ("queued … as prompt …")
            assert len(lines) == 1, (argv, stderr)
    assert not any(p.name.endswith(".part") for p in Path(root).rglob("*"))
