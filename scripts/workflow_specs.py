"""The shipped workflows, described as graphs; scripts/build_workflows.py turns each into the UI
format with ComfyUI's own frontend, so widget order and link layout are exactly what it saves.

A node: (key, type, [x, y], {widget: value}, title or None, [width, height] or None). A link: (from key, output index,
to key, input name). Groups: (title, [x, y, w, h], colour). Notes are Note nodes with text.
"""

from __future__ import annotations

PHOTO = "example.png"  # ComfyUI ships input/example.png

MODELS = {
    "groundingdino_swint_ogc.pth": ("https://huggingface.co/ShilongLiu/GroundingDINO/resolve/main/"
                                    "groundingdino_swint_ogc.pth", "grounding-dino"),
    "sam_vit_b_01ec64.pth": ("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth", "sams"),
    "bert-base-uncased": ("https://huggingface.co/google-bert/bert-base-uncased", "bert-base-uncased"),
}

BLUE, GREEN, PURPLE, ORANGE = "#3f789e", "#3f8e5e", "#7a5fa0", "#a1683f"

PERCEPTION_NODES = [
    ("image", "LoadImage", [40, 100], {"image": PHOTO}, None, [340, 380]),
    ("gdino", "CIELRGroundingDINOLoader", [40, 540],
     {"model_name": "groundingdino_swint_ogc.pth", "text_encoder": "bert-base-uncased", "device": "auto"}, None,
     [340, 130]),
    ("sam", "CIELRSAMLoader", [40, 720], {"model_name": "sam_vit_b_01ec64.pth", "device": "auto"}, None,
     [340, 110]),
    ("perceive", "CIELRPerceive", [460, 100],
     {"labels": "tv, speaker, lamp, sofa, table", "box_threshold": 0.3, "text_threshold": 0.25}, None,
     [360, 260]),
    ("build", "CIELRBuildScene", [880, 100], {}, None, [260, 110]),
]
PERCEPTION_LINKS = [
    ("image", 0, "perceive", "image"), ("gdino", 0, "perceive", "detector"), ("sam", 0, "perceive", "segmenter"),
    ("image", 0, "build", "image"), ("perceive", 0, "build", "scene"),
]

WORKFLOWS = {
    "cielr_perception": {
        "nodes": PERCEPTION_NODES + [
            ("scene_json", "PreviewAny", [1220, 100], {}, "Scene JSON", [360, 260]),
            ("preview", "PreviewImage", [1220, 420], {}, "Scene overlay", [360, 380]),
            ("note", "Note", [460, 540], {"text": (
                "CIELR perception: GroundingDINO finds every instance of each label, SAM segments it, "
                "Build Scene adds relations (left of, on top of, inside, nearest...).\n\n"
                "Models: models/grounding-dino/groundingdino_swint_ogc.pth, models/bert-base-uncased/ "
                "(the Hugging Face folder), models/sams/sam_vit_b_01ec64.pth. Optional: connect a depth "
                "map (bright = near) to Build Scene for in front of / behind.")}, "Read me", [680, 200]),
        ],
        "links": PERCEPTION_LINKS + [("build", 1, "scene_json", "source"), ("build", 2, "preview", "images")],
        "groups": [("Input and models", [20, 20, 380, 840], BLUE), ("Perception", [440, 20, 720, 380], GREEN),
                   ("Results", [1200, 20, 400, 820], PURPLE)],
        "models": ["groundingdino_swint_ogc.pth", "sam_vit_b_01ec64.pth", "bert-base-uncased"],
    },
}
