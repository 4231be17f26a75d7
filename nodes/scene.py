"""Scene nodes: relations and depth (Build Scene) and the overlay preview."""

from __future__ import annotations

from .base import CIELRNode
from .bridge import single_image, single_map, to_image, ui_images


class CIELRBuildScene(CIELRNode):
    """Completes the scene: relations from geometry (left of, above, on top of, inside, nearest, size rank)
    and, with a depth map, depth per object and in front of / behind."""

    FUNCTION = "build"
    OUTPUTS = (
        ("CIELR_SCENE", "scene",
         "The scene with relations, for Refine Scene, Decompose, Plan From JSON and the editing nodes."),
        ("STRING", "json",
         "The whole scene as JSON, masks run-length encoded: for files and tools, too large for an LLM prompt."),
        ("IMAGE", "preview", "The photo with every object's mask, box, id and label drawn on it."),
        ("STRING", "text", "The scene as the LLM reads it: one line per object (id, label, position, size) and the "
                           "relations; no mask pixels. Small enough for any LLM or prompt node."),
    )

    INPUTS = {
        "required": {
            "image": ("IMAGE", {"tooltip": "The same photo that went into CIELR Perceive (or Scene From "
                                           "Masks / Boxes / SEGS)."}),
            "scene": ("CIELR_SCENE", {"tooltip": "The raw scene from CIELR Perceive, Scene From Masks, Scene "
                                                 "From Boxes or Scene From SEGS."}),
        },
        "optional": {
            "depth": ("IMAGE", {"tooltip": "Optional depth map (bright = near), e.g. from a Depth Anything "
                                           "or MiDaS node. Adds depth and in front of / behind."}),
        },
    }

    def build(self, image, scene, depth=None):
        from cielr_core.reasoning import scene_text
        from cielr_core.scene import build_scene, check_same_size, render_preview, scene_to_json

        rgb = single_image(image, "CIELR Build Scene")
        check_same_size(scene, rgb, "CIELR Build Scene")
        depth_map = None if depth is None else single_map(depth, "CIELR Build Scene (depth)")
        built = build_scene(scene, depth=depth_map)
        return (built, scene_to_json(built, indent=1), to_image(render_preview(rgb, built)), scene_text(built).text)


class CIELRScenePreview(CIELRNode):
    """Draws the scene over the photo: coloured masks, boxes, ids and labels, shown on the node."""

    FUNCTION = "preview"
    OUTPUTS = (("IMAGE", "preview"),)
    OUTPUT_NODE = True

    INPUTS = {"required": {
        "image": ("IMAGE", {"tooltip": "The photo the scene describes."}),
        "scene": ("CIELR_SCENE", {"tooltip": "A scene from CIELR Perceive, Build Scene or Refine Scene."}),
    }}

    def preview(self, image, scene):
        from cielr_core.scene import check_same_size, render_preview

        rgb = single_image(image, "CIELR Scene Preview")
        check_same_size(scene, rgb, "CIELR Scene Preview")
        overlay = render_preview(rgb, scene)
        return {"ui": ui_images(overlay), "result": (to_image(overlay),)}


NODE_CLASS_MAPPINGS = {"CIELRBuildScene": CIELRBuildScene, "CIELRScenePreview": CIELRScenePreview}
NODE_DISPLAY_NAME_MAPPINGS = {"CIELRBuildScene": "CIELR Build Scene", "CIELRScenePreview": "CIELR Scene Preview"}
