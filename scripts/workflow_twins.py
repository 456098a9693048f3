"""Write the API twin ``workflows/api/NAME.json`` of every UI workflow in ``workflows/`` and print its validation.

The twin is the conversion (``aesthetic_qr.tools.workflow.ui_to_api``) against a real ComfyUI's ``/object_info``, with
third-party node types taken from ``tests/fixtures/third_party_object_info.json``. Run it after editing a workflow
in ComfyUI and saving it over ``workflows/NAME.json``; ``tests/test_workflows.py`` fails while a twin is stale.

    .venv/bin/python scripts/workflow_twins.py [NAME ...] [--server URL]

Without ``--server`` a headless ComfyUI with this pack is started (as in the tests). Exit 1 when a workflow does
not validate (its twin is then not written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aesthetic_qr.tools.headless import fetch_object_info
from aesthetic_qr.tools.workflow import load_json, recorded_definitions, ui_to_api, validate

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "third_party_object_info.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="workflow names (default: every workflows/*.json)")
    parser.add_argument("--server", help="URL of a running ComfyUI with this pack")
    args = parser.parse_args(argv)
    paths = [ROOT / "workflows" / f"{n}.json" for n in args.names] or sorted((ROOT / "workflows").glob("*.json"))

    object_info = {**recorded_definitions(RECORDED), **fetch_object_info(args.server)}
    failed = False
    for path in paths:
        workflow = load_json(path)
        report = validate(workflow, object_info)
        for line in report.missing_files:
            print(f"{path.stem}: needs file {line}")
        if not report.ok:
            failed = True
            print(f"{path.stem}: INVALID, twin not written\n  " + "\n  ".join(report.errors))
            continue
        twin = ROOT / "workflows" / "api" / path.name
        twin.parent.mkdir(exist_ok=True)
        twin.write_text(json.dumps(ui_to_api(workflow, object_info), indent=2, ensure_ascii=False) + "\n")
        print(f"{path.stem}: ok, wrote {twin.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
