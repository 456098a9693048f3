"""`run-workflow --server` against a stand-in hostile ComfyUI on 127.0.0.1 (issue: a server's /history made the
client write ../../../pwned.txt outside --out, and a workflow naming ../../etc/passwd uploaded it).

`StandIn` is a tiny `http.server` in a daemon thread that answers the calls `run-workflow` makes (system_stats,
object_info, the websocket handshake, prompt, history, view, upload) and records them. It is bounded: every
connection times out after a few seconds and the server stops itself after `lifetime` seconds."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from aesthetic_qr.tools.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROMPT_ID = "standin-1"
LOAD_IMAGE = {"input": {"required": {"image": [["example.png"], {"image_upload": True}]}},
              "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"], "name": "LoadImage"}
SAVE_IMAGE = {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}},
              "input_order": {"required": ["images", "filename_prefix"]}, "output": [], "output_node": True,
              "name": "SaveImage"}
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PNG_1PX = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAWk1v8QAAAABJ"
                           "RU5ErkJggg==")


def object_info() -> dict:
    info = {k: v for k, v in json.loads((FIXTURES / "aqr_object_info.json").read_text()).items()
            if not k.startswith("_")}
    return {**info, "LoadImage": LOAD_IMAGE, "SaveImage": SAVE_IMAGE}


class StandIn:
    """A stand-in ComfyUI: `outputs` is what its /history names; `refuse` makes POST /prompt answer HTTP 400 with
    node_errors (as ComfyUI does for a missing input file). `requests`, `uploads` and `views` record the calls."""

    def __init__(self, outputs: dict | None = None, *, refuse: bool = False, lifetime: float = 60.0):
        self.outputs = outputs or {}
        self.refuse = refuse
        self.object_info = object_info()
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[str] = []
        self.views: list[dict] = []
        self._lifetime = lifetime
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # per connection: a stuck client never holds a thread for long

            def log_message(self, *args):  # quiet
                pass

            def _json(self, data, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                standin.requests.append(("GET", url.path))
                if url.path == "/ws":
                    return self._websocket()
                if url.path == "/system_stats":
                    return self._json({"system": {"comfyui_version": "stand-in"}, "devices": []})
                if url.path == "/object_info":
                    return self._json(standin.object_info)
                if url.path.startswith("/history/"):
                    entry = {"status": {"status_str": "success", "completed": True, "messages": []},
                             "outputs": standin.outputs, "prompt": []}
                    return self._json({PROMPT_ID: entry})
                if url.path == "/view":
                    standin.views.append({k: v[0] for k, v in parse_qs(url.query).items()})
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(PNG_1PX)))
                    self.end_headers()
                    return self.wfile.write(PNG_1PX)
                return self._json({"error": "not found"}, 404)

            def do_POST(self):  # noqa: N802
                url = urlparse(self.path)
                standin.requests.append(("POST", url.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if url.path == "/upload/image":
                    name = re.search(rb'name="image"; filename="([^"]*)"', body)
                    standin.uploads.append(name.group(1).decode() if name else "?")
                    return self._json({"name": standin.uploads[-1], "subfolder": "", "type": "input"})
                if url.path == "/prompt":
                    if standin.refuse:
                        return self._json({"error": {"type": "prompt_outputs_failed_validation",
                                                     "message": "Prompt outputs failed validation"},
                                           "node_errors": {"1": {"errors": [{"message": "Invalid image file"}],
                                                                 "class_type": "LoadImage"}}}, 400)
                    return self._json({"prompt_id": PROMPT_ID, "number": 0, "node_errors": {}})
                return self._json({})

            def _websocket(self):
                """The handshake only; no event is ever sent (the client polls /history), and the connection is
                closed as soon as the client sends anything (its close frame) or after the timeout."""
                key = self.headers.get("Sec-WebSocket-Key", "")
                accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
                self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.recv(1)
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self._lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.stop()


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("aesthetic-qr run-workflow:")]


@pytest.fixture
def save_workflow(tmp_path):
    """An API workflow: LoadImage(`image`) → SaveImage."""

    def write(image: str = "astronaut.jpg") -> Path:
        path = tmp_path / "wf" / "save.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({
            "1": {"class_type": "LoadImage", "inputs": {"image": image}, "_meta": {"title": "Picture"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "aqr"}}}))
        return path

    return write


def test_a_well_behaved_stand_in_run_saves_inside_out(tmp_path, capsys, save_workflow):
    """The control: a normal answer is saved under --out, and the bundled picture is the one upload."""
    out = tmp_path / "out"
    outputs = {"2": {"images": [{"filename": "aqr_00001_.png", "subfolder": "run/1", "type": "output"},
                                {"filename": "preview.png", "subfolder": "", "type": "temp"}]}}
    with StandIn(outputs) as server:
        rc, stdout, err = run_cli(capsys, "run-workflow", save_workflow(), "--server", server.url, "--out", out,
                                  "--timeout", "20", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["outputs"] == [str(out / "run" / "1" / "aqr_00001_.png")]
    assert (out / "run" / "1" / "aqr_00001_.png").read_bytes() == PNG_1PX
    assert server.uploads == ["astronaut.jpg"]
    assert "Traceback" not in err and not error_lines(err)


HOSTILE = {
    "dotdot filename": [{"filename": "../../../pwned.txt", "subfolder": "", "type": "output"}],
    "dotdot subfolder": [{"filename": "pwned.png", "subfolder": "../..", "type": "output"}],
    "hidden dotdot": [{"filename": "pwned.png", "subfolder": "a/../../..", "type": "output"}],
    "absolute subfolder": [{"filename": "pwned.png", "subfolder": "{elsewhere}", "type": "output"}],
    "absolute filename": [{"filename": "{elsewhere}/pwned.png", "subfolder": "", "type": "output"}],
    "a link out of --out": [{"filename": "pwned.png", "subfolder": "link", "type": "output"}],
    "one good, one bad": [{"filename": "good.png", "subfolder": "", "type": "output"},
                          {"filename": "../pwned.png", "subfolder": "", "type": "output"}],
    "no name": [{"filename": "", "subfolder": "", "type": "output"}],
    "a number as name": [{"filename": 123, "subfolder": "", "type": "output"}],
    "a list as subfolder": [{"filename": "x.png", "subfolder": ["..", ".."], "type": "output"}],
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_server_cannot_write_outside_out(tmp_path, capsys, save_workflow, case):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "deep" / "er" / "out"
    out.mkdir(parents=True)
    (out / "link").symlink_to(elsewhere)
    workflow = save_workflow()
    images = json.loads(json.dumps(HOSTILE[case]).replace("{elsewhere}", str(elsewhere)))
    before = files_under(tmp_path)
    with StandIn({"2": {"images": images}}) as server:
        rc, stdout, err = run_cli(capsys, "run-workflow", workflow, "--server", server.url, "--out", out,
                                  "--timeout", "20")
    assert rc == 2, (stdout, err)
    assert files_under(tmp_path) == before  # nothing anywhere: not outside --out, and no partial set inside it
    assert server.views == []  # every name is checked before the first download
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1 and err.rstrip("\n").endswith(lines[0]), err
    assert "nothing saved" in lines[0] or "not saved" in lines[0]
    assert not Path("/pwned.txt").exists()


@pytest.mark.parametrize("answer", [["not", "a", "dict"], "text", {"2": "no images"}, {"2": {"images": "x"}},
                                    {"2": {"images": [["a.png"]]}}])
def test_a_malformed_history_is_no_traceback(tmp_path, capsys, save_workflow, answer):
    out = tmp_path / "out"
    with StandIn(answer) as server:
        rc, _, err = run_cli(capsys, "run-workflow", save_workflow(), "--server", server.url, "--out", out,
                             "--timeout", "20")
    assert rc in (0, 2) and "Traceback" not in err
    assert len(error_lines(err)) == (rc == 2)
    assert not out.exists() or files_under(out) == set()


@pytest.mark.parametrize("image", ["../../etc/passwd", "../../../../etc/passwd", "/etc/passwd", "../README.md",
                                   str(Path(__file__).resolve()), "sub/../astronaut.jpg"])
def test_a_workflow_naming_a_local_path_uploads_nothing(tmp_path, capsys, save_workflow, image):
    with StandIn(refuse=True) as server:
        rc, _, err = run_cli(capsys, "run-workflow", save_workflow(image), "--server", server.url,
                             "--out", tmp_path / "out", "--timeout", "20")
    assert server.uploads == [] and ("POST", "/upload/image") not in server.requests
    assert ("POST", "/prompt") in server.requests  # it got as far as queuing, and the server refused
    assert rc == 2 and "Traceback" not in err


def test_set_naming_a_local_path_uploads_nothing(tmp_path, capsys):
    with StandIn(refuse=True) as server:
        rc, _, err = run_cli(capsys, "run-workflow", "artup_cpu", "--set", "Picture.image=../../../../etc/passwd",
                             "--server", server.url, "--out", tmp_path / "out", "--timeout", "20")
    assert server.uploads == [] and rc == 2 and "Traceback" not in err


def test_no_server_at_the_url_is_one_line(tmp_path, capsys):
    with StandIn() as server:
        url = server.url
    rc, _, err = run_cli(capsys, "run-workflow", "artup_cpu", "--server", url, "--out", tmp_path / "out")
    assert rc == 2 and err.count("\n") == 1 and "no ComfyUI answers" in err
