"""Builds example_workflows/*.json (UI format) and their .jpg thumbnails with ComfyUI's own frontend.

Each graph in scripts/workflow_specs.py is assembled in a real ComfyUI page through LiteGraph,
then saved with the frontend's own serializer, so the files are exactly what ComfyUI writes. Each
loader node declares the model files its widgets name (``properties.models``: name, url, directory),
so ComfyUI offers the absent ones for download when the workflow is opened.

The thumbnail is the whole graph drawn at THUMBNAIL_SCALE, where the canvas draws titles and widgets
(further out it draws blank boxes), with the example photo in Load Image and none of the editor's own
chrome. The view is saved as the workflow's ``extra.ds``, so the template opens where the picture
shows it, and a test can find every node's title bar in the picture.

Run after changing a node's inputs or a spec:  python scripts/build_workflows.py [NAME ...]
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from workflow_specs import (  # noqa: E402
    COMFY_EXAMPLE,
    MODEL_FOLDERS,
    MODELS,
    PHOTO,
    PHOTO_SOURCE,
    THUMBNAIL_SCALE,
    WORKFLOWS,
)

from devkit import COMFYUI, DATA  # noqa: E402
from devkit.browser import CHROMIUM_FLAGS, chromium_path  # noqa: E402
from devkit.comfyui import start_comfyui, stop_comfyui  # noqa: E402

OUT = ROOT / "example_workflows"
MARGIN = 24  # screen pixels around the graph
MAX_SIDE = 4000  # a sanity bound on the picture, in pixels

# Only the canvas and the widgets drawn over it (text areas) are painted: no menus, tabs, banners, side
# bar, run button, history button, minimap or zoom controls.
CANVAS_ONLY_CSS = """
#vue-app * { visibility: hidden !important; }
#vue-app #graph-canvas, #vue-app .dom-widget, #vue-app .dom-widget * { visibility: visible !important; }
.p-toast, .p-dialog-mask { display: none !important; }
"""
# A returning user (no first-run templates dialog over the canvas), and no pack-name badges over the nodes.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.NodeBadge.NodeSourceBadgeMode": "None"}

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
      if (type === 'LoadImage') w.callback?.(value);  // as a user's choice: it fetches the photo's preview
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
  // Frame every node (title bar included) and group at the thumbnail's zoom.
  const title = LG.NODE_TITLE_HEIGHT;
  const rects = app.graph._nodes.map(n => [n.pos[0], n.pos[1] - title, n.pos[0] + n.size[0], n.pos[1] + n.size[1]])
    .concat(app.graph._groups.map(g => [g.pos[0], g.pos[1], g.pos[0] + g.size[0], g.pos[1] + g.size[1]]));
  const x0 = Math.min(...rects.map(r => r[0])), y0 = Math.min(...rects.map(r => r[1]));
  const x1 = Math.max(...rects.map(r => r[2])), y1 = Math.max(...rects.map(r => r[3]));
  const scale = spec.scale, margin = spec.margin;
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [margin / scale - x0, margin / scale - y0];
  const size = [Math.ceil((x1 - x0) * scale + 2 * margin), Math.ceil((y1 - y0) * scale + 2 * margin)];
  const workflow = JSON.parse(JSON.stringify(app.graph.serialize()));  // drop undefined, as a saved file does
  // the template opens at the thumbnail's view
  workflow.extra = {...workflow.extra, ds: {scale, offset: [...app.canvas.ds.offset]}};
  return {workflow, size};
}
"""

# Draw one frame once the page has its final size, and wait for Load Image's photo to be drawn.
DRAW_JS = """
async () => {
  const app = window.app;
  const ready = () => app.graph._nodes.filter(n => n.type === 'LoadImage')
    .every(n => n.imgs?.length && n.imgs.every(i => i.complete && i.naturalWidth > 0));
  for (let i = 0; i < 100 && !ready(); i++) await new Promise(r => setTimeout(r, 100));
  if (!ready()) throw new Error('Load Image did not show its photo');
  app.canvas.resize();
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  if (app.canvas.low_quality) throw new Error(`the canvas draws blank boxes at zoom ${app.canvas.ds.scale}`);
}
"""


def declare_models(workflow: dict) -> None:
    """Each node names the model files its widgets hold; the files of model folders go on the workflow."""
    folders = []
    for node in workflow["nodes"]:
        values = [v for v in node.get("widgets_values") or [] if isinstance(v, str)]
        files = [{"name": v, "url": MODELS[v][0], "directory": MODELS[v][1]} for v in values if v in MODELS]
        if files:
            node.setdefault("properties", {})["models"] = files
        folders += [{"name": n, "url": u, "directory": d} for v in values for n, u, d in MODEL_FOLDERS.get(v, [])]
    workflow.pop("models", None)
    if folders:
        workflow["models"] = list({m["url"]: m for m in folders}.values())


def build(names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    photo = DATA.joinpath(*PHOTO_SOURCE)
    shutil.copy(photo, OUT / PHOTO)  # shipped, for users to copy into ComfyUI/input, with its licence
    shutil.copy(DATA / PHOTO_SOURCE[0] / "LICENSE", OUT / f"{Path(PHOTO).stem}.LICENSE.txt")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "input").mkdir()
        shutil.copy(photo, base / "input" / PHOTO)
        shutil.copy(COMFYUI / "input" / COMFY_EXAMPLE, base / "input" / COMFY_EXAMPLE)
        server = start_comfyui(base)
        for key, value in SETTINGS.items():
            requests.post(f"{server.url}/settings/{key}", json=value, timeout=30).raise_for_status()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(server.url, timeout=60_000)
                page.wait_for_function("() => window.app && window.app.graph", timeout=60_000)
                page.add_style_tag(content=CANVAS_ONLY_CSS)
                for name in names:
                    spec = {k: WORKFLOWS[name][k] for k in ("nodes", "links", "groups")}
                    built = page.evaluate(BUILD_JS, {**spec, "scale": THUMBNAIL_SCALE, "margin": MARGIN})
                    width, height = (min(MAX_SIDE, math.ceil(v)) for v in built["size"])
                    page.set_viewport_size({"width": width, "height": height})
                    page.wait_for_timeout(500)  # the canvas follows the window's size
                    page.evaluate(DRAW_JS)
                    page.wait_for_timeout(500)  # text areas follow the canvas on the next frame
                    workflow = built["workflow"]
                    declare_models(workflow)
                    out = OUT / f"{name}.json"
                    out.write_text(json.dumps(workflow, indent=1) + "\n")
                    page.screenshot(path=str(out.with_suffix(".jpg")), type="jpeg", quality=85)
                    print(f"wrote {out.relative_to(ROOT)} and its {width}x{height} thumbnail")
                browser.close()
        finally:
            stop_comfyui(server)


if __name__ == "__main__":
    build(sys.argv[1:] or list(WORKFLOWS))
