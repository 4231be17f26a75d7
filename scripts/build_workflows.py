"""Builds workflows/*.json (UI format) and their .jpg thumbnails with ComfyUI's own frontend.

Each graph in scripts/workflow_specs.py is assembled in a real ComfyUI page through LiteGraph,
then saved with the frontend's own serializer, so the files are exactly what ComfyUI writes.
Run after changing a node's inputs or a spec:  python scripts/build_workflows.py [NAME ...]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from workflow_specs import MODELS, PHOTO, WORKFLOWS  # noqa: E402

from devkit import COMFYUI  # noqa: E402
from devkit.browser import CHROMIUM_FLAGS, chromium_path  # noqa: E402
from devkit.comfyui import start_comfyui, stop_comfyui  # noqa: E402

# Thumbnails show the graph, not the menus and banners around it.
HIDE_CHROME_CSS = """
.p-toast, .p-dialog-mask, [class*="banner"], [class*="Banner"], .side-tool-bar-container, .actionbar,
.graph-canvas-menu, .p-splitter-gutter, .comfyui-menu, .workflow-tabs-container, .minimap-main-container
{ display: none !important; }
"""

FIT_JS = """
() => {
  // Frame every node and group, so the thumbnail shows the whole flow.
  const app = window.app, canvas = app.canvas, el = canvas.canvas;
  const rects = app.graph._nodes.map(n => [n.pos[0], n.pos[1] - 30, n.pos[0] + n.size[0], n.pos[1] + n.size[1]])
    .concat(app.graph._groups.map(g => [g.pos[0], g.pos[1], g.pos[0] + g.size[0], g.pos[1] + g.size[1]]));
  const x0 = Math.min(...rects.map(r => r[0])), y0 = Math.min(...rects.map(r => r[1]));
  const x1 = Math.max(...rects.map(r => r[2])), y1 = Math.max(...rects.map(r => r[3]));
  const margin = 60;
  const scale = Math.min((el.clientWidth - 2 * margin) / (x1 - x0), (el.clientHeight - 2 * margin) / (y1 - y0), 1.2);
  canvas.ds.scale = scale;
  canvas.ds.offset = [margin / scale - x0, margin / scale - y0];
  canvas.setDirty(true, true);
  canvas.draw(true, true);
}
"""

BUILD_JS = """
async (spec) => {
  const app = window.app, LG = window.LiteGraph;
  app.graph.clear();
  const byKey = {};
  app.canvas.show_info = false;
  for (const [key, type, pos, widgets, title, size] of spec.nodes) {
    const node = LG.createNode(type);
    if (!node) throw new Error(`unknown node type ${type}`);
    node.pos = pos;
    if (size) node.size = size;
    if (title) node.title = title;
    app.graph.add(node);
    for (const [name, value] of Object.entries(widgets)) {
      const w = (node.widgets || []).find(w => w.name === name);
      if (!w) throw new Error(`${type} has no widget ${name}`);
      w.value = value;
    }
    byKey[key] = node;
  }
  for (const [src, slot, dst, input] of spec.links) {
    const target = byKey[dst];
    const index = target.inputs.findIndex(i => i.name === input);
    if (index < 0) throw new Error(`${target.type} has no input ${input}`);
    if (!byKey[src].connect(slot, target, index)) throw new Error(`cannot link ${src}.${slot} -> ${dst}.${input}`);
  }
  for (const [title, rect, color] of spec.groups) {
    const group = new LG.LGraphGroup(title);
    group.color = color;
    app.graph.add(group);
    group.pos = [rect[0], rect[1]];
    group.size = [rect[2], rect[3]];
  }
  return JSON.parse(JSON.stringify(app.graph.serialize()));  // drop undefined, as a saved file does
}
"""


def build(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "input").mkdir()
        shutil.copy(COMFYUI / "input" / "example.png", base / "input" / PHOTO)
        server = start_comfyui(base)
        # A returning user: no first-run templates dialog over the canvas.
        requests.post(f"{server.url}/settings/Comfy.TutorialCompleted", json=True, timeout=30)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(server.url, timeout=60_000)
                page.wait_for_function("() => window.app && window.app.graph", timeout=60_000)
                page.add_style_tag(content=HIDE_CHROME_CSS)
                for name in names:
                    spec = WORKFLOWS[name]
                    workflow = page.evaluate(BUILD_JS, {k: spec[k] for k in ("nodes", "links", "groups")})
                    workflow["models"] = [{"name": m, "url": MODELS[m][0], "directory": MODELS[m][1]}
                                          for m in spec["models"]]
                    out = ROOT / "workflows" / f"{name}.json"
                    out.write_text(json.dumps(workflow, indent=1) + "\n")
                    page.wait_for_timeout(1000)  # let the image preview load
                    page.evaluate(FIT_JS)
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(out.with_suffix(".jpg")), type="jpeg", quality=80,
                                    clip={"x": 0, "y": 40, "width": 1600, "height": 900})  # below the banner
                    print(f"wrote {out.relative_to(ROOT)} and its thumbnail")
                browser.close()
        finally:
            stop_comfyui(server)


if __name__ == "__main__":
    build(sys.argv[1:] or list(WORKFLOWS))
