"""pyproject.toml against the Comfy registry's documented rules (docs.comfy.org/registry/specifications), and what
the registry shows: the [tool.comfy] Icon is a file in this repository, CHANGELOG.md has a section for the version.

`comfy node validate` (comfy-cli) checks the same fields; it is not run here (CI installs no comfy-cli)."""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, COMFY = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]


def test_name_and_version_follow_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", name), name
    assert not re.search(r"[._-]{2}", name) and "comfyui" not in name.lower(), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), PROJECT["version"]


def test_project_fields():
    assert (ROOT / PROJECT["license"]["file"]).is_file()
    assert PROJECT["description"] and PROJECT["requires-python"]
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    assert "Operating System :: OS Independent" in PROJECT["classifiers"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", COMFY["PublisherId"]), COMFY["PublisherId"]
    assert COMFY["DisplayName"]


def test_icon_is_a_file_in_this_repository():
    """Icon: raw.githubusercontent.com/<the Repository>/<branch>/<path>, the path a PNG/JPG/GIF/SVG here of at most
    800 x 400 px."""
    url = urlparse(COMFY["Icon"])
    repo = urlparse(PROJECT["urls"]["Repository"]).path.strip("/")
    assert url.scheme == "https" and url.netloc == "raw.githubusercontent.com", COMFY["Icon"]
    owner, name, _branch, *path = url.path.strip("/").split("/")
    assert f"{owner}/{name}" == repo, (COMFY["Icon"], repo)
    icon = ROOT.joinpath(*path)
    assert icon.is_file(), f"{COMFY['Icon']}: no {icon.relative_to(ROOT)} in the repository"
    assert icon.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".svg")
    if icon.suffix.lower() != ".svg":
        with Image.open(icon) as im:
            assert im.width <= 800 and im.height <= 400, im.size


def test_changelog_has_the_version_and_a_policy():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(PROJECT['version'])}\b", text, re.M), "no section for " + PROJECT["version"]
    assert "## Version policy" in text
