"""Scene From Boxes' boxes socket (type BBOX,BOUNDING_BOX) in the real frontend, in headless Chromium.

A workflow saved before the socket took BOUNDING_BOX (its input typed BBOX, linked to a BBOX list) must
load, convert and run unchanged, and core SAM3 Detect's bboxes output must connect to the same socket.
"""

from __future__ import annotations

import json

import pytest

from devkit.comfyui import describe, execution_error

pytestmark = pytest.mark.slow

BOXES = [[100, 80, 300, 260], [420, 300, 700, 560]]
DETECTIONS = [[[100, 80, 300, 260, 0.9], [420, 300, 700, 560, 0.7]]]


def _node(id_, type_, inputs=(), outputs=(), widgets=()) -> dict:
    return {"id": id_, "type": type_, "pos": [100 * id_, 100], "size": [300, 120], "flags": {}, "order": id_,
            "mode": 0, "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {"Node name for S&R": type_}, "widgets_values": list(widgets)}


def saved_workflow() -> dict:
    """A UI workflow as the frontend saved it when boxes was typed BBOX: photo and BBOX list into Scene From
    Boxes, its report shown; a SAM3 Detect stand-in beside it, not yet connected."""
    nodes = [
        _node(1, "LoadImage", outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1, 4], "slot_index": 0},
                                       {"name": "MASK", "type": "MASK", "links": None, "slot_index": 1}],
              widgets=["cielr_photo.png", "image"]),
        _node(2, "TestOnlyBBOX", outputs=[{"name": "BBOX", "type": "BBOX", "links": [2], "slot_index": 0}],
              widgets=[json.dumps(BOXES)]),
        _node(3, "CIELRSceneFromBoxes",
              inputs=[{"name": "image", "type": "IMAGE", "link": 1}, {"name": "boxes", "type": "BBOX", "link": 2},
                      {"name": "segmenter", "type": "CIELR_SEGMENTER", "link": None}],
              outputs=[{"name": "scene", "type": "CIELR_SCENE", "links": None, "slot_index": 0},
                       {"name": "report", "type": "STRING", "links": [3], "slot_index": 1}],
              widgets=["tv, sofa", "x0, y0, x1, y1", ""]),
        _node(4, "PreviewAny", inputs=[{"name": "source", "type": "*", "link": 3}]),
        _node(5, "TestOnlySAM3Detect", inputs=[{"name": "image", "type": "IMAGE", "link": 4}],
              outputs=[{"name": "masks", "type": "MASK", "links": None, "slot_index": 0},
                       {"name": "bboxes", "type": "BOUNDING_BOX", "links": None, "slot_index": 1}],
              widgets=[json.dumps(DETECTIONS)]),
    ]
    links = [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "BBOX"], [3, 3, 1, 4, 0, "STRING"], [4, 1, 0, 5, 0, "IMAGE"]]
    return {"last_node_id": 5, "last_link_id": 4, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4}


def test_a_saved_bbox_link_still_runs_and_core_sam3_connects(server, page):
    loaded = page.evaluate("""async (wf) => {
        await window.app.loadGraphData(wf);
        const LG = window.LiteGraph;
        const nodes = window.app.graph._nodes;
        return {missing: nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type),
                errors: nodes.filter(n => n.has_errors).map(n => n.type),
                prompt: (await window.app.graphToPrompt()).output};
    }""", saved_workflow())
    assert loaded["missing"] == [] and loaded["errors"] == []
    prompt = loaded["prompt"]
    assert prompt["3"]["inputs"]["boxes"] == ["2", 0] and prompt["3"]["inputs"]["labels"] == "tv, sofa"
    entry = server.run(prompt)
    assert execution_error(entry) is None, describe(execution_error(entry))
    assert entry["outputs"]["4"]["text"][0].startswith("2 objects")

    # the user rewires the socket to core SAM3 Detect's bboxes, as they would with the mouse
    rewired = page.evaluate("""async () => {
        const graph = window.app.graph;
        const [scene, sam3] = [graph.getNodeById(3), graph.getNodeById(5)];
        const slot = scene.findInputSlot("boxes");
        const accepts = window.LiteGraph.isValidConnection("BOUNDING_BOX", scene.inputs[slot].type);
        const link = sam3.connect(1, scene, slot);
        return {accepts, linked: link != null, prompt: (await window.app.graphToPrompt()).output};
    }""")
    assert rewired["accepts"] and rewired["linked"]
    assert rewired["prompt"]["3"]["inputs"]["boxes"] == ["5", 1]
    entry = server.run(rewired["prompt"])
    assert execution_error(entry) is None, describe(execution_error(entry))
    assert entry["outputs"]["4"]["text"][0].startswith("2 objects")
