"""run-workflow never sends a local file the user did not name, nor writes outside --out (issue: a workflow could
upload /etc/passwd, and a hostile server could make the client write ../../pwned.txt)."""

from pathlib import Path

import pytest

from aesthetic_qr.qr import QRInputError
from aesthetic_qr.tools.cli import _output_path
from aesthetic_qr.tools.workflow import ASSETS_DIR, bundled_inputs

LOAD_IMAGE = {"LoadImage": {"input": {"required": {"image": [["other.png"], {"image_upload": True}]}}}}


def prompt_loading(value: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": value}}}


def test_a_bundled_picture_is_uploaded():
    assert bundled_inputs(prompt_loading("astronaut.jpg"), LOAD_IMAGE) == [ASSETS_DIR / "astronaut.jpg"]


@pytest.mark.parametrize("value", ["../../../../etc/passwd", "/etc/passwd", "../README.md", "./astronaut.jpg",
                                   str(ASSETS_DIR / "astronaut.jpg"), "sub/../astronaut.jpg"])
def test_paths_in_a_workflow_never_become_uploads(value):
    assert bundled_inputs(prompt_loading(value), LOAD_IMAGE) == []


def test_a_link_inside_assets_is_not_followed(tmp_path, monkeypatch):
    import aesthetic_qr.tools.workflow as workflow

    (tmp_path / "secret.txt").write_text("secret")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "linked.png").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setattr(workflow, "ASSETS_DIR", assets)
    assert bundled_inputs(prompt_loading("linked.png"), LOAD_IMAGE) == []


def test_outputs_stay_inside_out(tmp_path):
    assert _output_path(tmp_path, "", "a.png") == tmp_path / "a.png"
    assert _output_path(tmp_path, "run/2", "a.png") == tmp_path / "run" / "2" / "a.png"


@pytest.mark.parametrize("subfolder, filename", [("../..", "pwned.txt"), ("", "../pwned.txt"), ("/tmp", "x.png"),
                                                 ("", "/etc/passwd"), ("a/../..", "x.png"), ("", ""), ("", "..")])
def test_outputs_named_outside_out_are_refused(tmp_path, subfolder, filename):
    with pytest.raises(QRInputError, match="outside --out"):
        _output_path(tmp_path / "out", subfolder, filename)


def test_a_link_out_of_out_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "escape").symlink_to(tmp_path)
    with pytest.raises(QRInputError, match="outside --out"):
        _output_path(out, "escape", "x.png")
    assert not Path(tmp_path / "x.png").exists()
