"""Drive ComfyUI's real web frontend in Debian's headless ``chromium`` (tests/test_browser.py).

Selenium talks to the system ``chromedriver`` (``/usr/bin/chromedriver``, Debian package ``chromium-driver``) and
the system browser (``/usr/bin/chromium``); both paths are given explicitly, so Selenium Manager never looks for or
downloads a browser or driver. ``AQR_CHROMIUM`` / ``AQR_CHROMEDRIVER`` override the paths.

``browser_unavailable()`` says why a browser cannot be driven here ("" when it can).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

CHROMIUM = os.environ.get("AQR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("AQR_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"

# First-run dialogs that would cover the graph: the template browser and the new-user tour.
FIRST_RUN_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
    "Comfy.Workflow.ShowMissingModelsWarning": False,  # model files are absent on the test server by design
    # screenshots: no minimap over the graph, and titles, widgets and DOM widgets drawn at the fit-view zoom
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 1,
    "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1,
}


def browser_unavailable() -> str:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; scripts/setup_env.sh does)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"no {path} (apt-get install -y {package}; scripts/setup_env.sh does as root)"
    return ""


class Page:
    """One headless chromium on one ComfyUI page."""

    def __init__(self, base_url: str, width: int = 1920, height: int = 1200):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.base_url = base_url.rstrip("/")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(120)
        self.console: list[dict] = []

    def close(self) -> None:
        self.driver.quit()

    # ---- page ---------------------------------------------------------------------------------------------
    def open(self, timeout: float = 60.0) -> None:
        self.driver.get(self.base_url)
        deadline = time.monotonic() + timeout
        while not self.js("return !!(window.app && window.app.graph && window.app.canvas "
                          "&& window.app.vueAppReady !== false)"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"ComfyUI's frontend did not come up in {timeout:.0f} s")
            time.sleep(0.25)
        # extensions register after the app object exists: wait for the node definitions
        self.wait("return !!(window.LiteGraph && LiteGraph.registered_node_types['AQR_Encode'])", timeout)
        self.close_dialogs()

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, body: str, *args):
        """Run ``body`` (may ``await``; its ``return`` value comes back) in an async function."""
        wrapped = ("const done = arguments[arguments.length - 1];"
                   f"(async (...args) => {{ {body} }})(...Array.from(arguments).slice(0, -1))"
                   ".then(v => done({ok: v}), e => done({error: String(e && e.stack || e)}));")
        result = self.driver.execute_async_script(wrapped, *args)
        if "error" in result:
            raise RuntimeError(f"in the page: {result['error']}")
        return result.get("ok")

    def wait(self, script: str, timeout: float = 30.0, *args):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for: {script}")
            time.sleep(0.25)

    def read_console(self) -> list[dict]:
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def dialogs(self) -> list[str]:
        """Text of every open dialog and toast (1.32 shows missing nodes in a dialog; 1.49 in an "errors found"
        toast whose details list them)."""
        return self.js("return Array.from(document.querySelectorAll('.p-dialog, [role=dialog], .p-toast-message, "
                       "[role=alert]'))"
                       ".filter(d => d.offsetParent !== null).map(d => d.innerText)")

    def close_dialogs(self) -> None:
        """Dialogs' and toasts' own close buttons only (a tab's close button would close the workflow)."""
        self.js("for (const b of document.querySelectorAll('.p-dialog .p-dialog-close-button, "
                ".p-dialog-header-close, .p-toast-close-button')) b.click();")

    # ---- graph ----------------------------------------------------------------------------------------------
    def load_workflow(self, workflow: dict, name: str) -> None:
        """What the frontend does with a dropped or opened workflow file: ``app.loadGraphData``."""
        self.js_async("await app.loadGraphData(args[0], true, true, args[1]);", json.loads(json.dumps(workflow)),
                      name)
        time.sleep(0.3)

    def graph_state(self) -> dict:
        """Nodes (type, registered, widget names and values, input links) and links of the loaded graph."""
        return self.js(r"""
            const g = app.graph;
            // node ids are numbers in frontend 1.32 and may be strings in 1.49: numbers here, as in the file
            const num = v => (typeof v === 'string' && /^-?\d+$/.test(v)) ? Number(v) : v;
            const types = (window.LiteGraph && LiteGraph.registered_node_types) || {};
            const nodes = g.nodes.map(n => ({
                id: num(n.id), type: n.type, registered: n.type in types,
                widgets: (n.widgets || []).map(w => ({name: w.name, value: w.value, type: w.type})),
                inputs: (n.inputs || []).map(i => ({name: i.name, link: num(i.link)})),
                imgs: (n.imgs || []).map(i => [i.naturalWidth, i.naturalHeight, i.src]),
            }));
            const raw = g.links instanceof Map ? Array.from(g.links.values()) : Object.values(g.links || {});
            const links = raw.filter(l => l).map(l => [num(l.id), num(l.origin_id), l.origin_slot, num(l.target_id),
                                                       l.target_slot, l.type]);
            return {nodes, links};
        """)

    def fit_view(self) -> None:
        self.js_async("""
            try { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }
            catch (e) { app.canvas.ds.reset(); }
            app.graph.setDirtyCanvas(true, true);
        """)
        time.sleep(0.5)

    def graph_box(self) -> list[float]:
        """The page-pixel box [left, top, right, bottom] around every node and group of the graph."""
        return self.js("""
            const c = app.canvas, rect = c.canvas.getBoundingClientRect();
            const boxes = app.graph.nodes.map(n => n.getBounding ? Array.from(n.getBounding())
                                                              : [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]);
            for (const g of (app.graph.groups || app.graph._groups || []))
                boxes.push(Array.from(g._bounding || g.bounding));
            let [l, t, r, b] = [Infinity, Infinity, -Infinity, -Infinity];
            for (const [x, y, w, h] of boxes) {
                const p = c.ds.convertOffsetToCanvas([x, y]), q = c.ds.convertOffsetToCanvas([x + w, y + h]);
                l = Math.min(l, p[0]); t = Math.min(t, p[1]); r = Math.max(r, q[0]); b = Math.max(b, q[1]);
            }
            const k = rect.width / c.canvas.width;  // canvas pixels -> page pixels
            return [rect.left + l * k, rect.top + t * k, rect.left + r * k, rect.top + b * k];
        """)

    def graph_aspect(self) -> float:
        """Width / height of the graph's bounding box, in graph units."""
        self.js("app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];")
        left, top, right, bottom = self.graph_box()
        return max(0.2, (right - left) / max(1.0, bottom - top))

    def screenshot(self, path: Path, margin: int = 16, height: int = 1200) -> None:
        """The page cropped to the graph (plus a margin): no tool bars, side bars or banners. The window is first
        widened to the graph's aspect (up to 4000 px), so a long graph is not drawn tiny."""
        import io

        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        width = int(min(4000, max(1400, self.graph_aspect() * (height - 200) + 200)))
        self.driver.set_window_size(width, height)
        time.sleep(0.3)
        self.fit_view()
        shot = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        left, top, right, bottom = self.graph_box()
        box = (max(0, int(left) - margin), max(0, int(top) - margin),
               min(shot.width, int(right) + margin), min(shot.height, int(bottom) + margin))
        shot.crop(box).save(path, optimize=True)

    def node_js(self) -> str:
        """JS expression for the node whose id is ``arguments[0]`` (a number or a string id)."""
        return "(app.graph.getNodeById(arguments[0]) || app.graph.getNodeById(String(arguments[0])))"

    def queue(self) -> None:
        """The Queue button's call."""
        self.js_async("await app.queuePrompt(0, 1);")
