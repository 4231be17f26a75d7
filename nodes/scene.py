"""Scene nodes: relations and depth (Build Scene) and the overlay preview."""

from __future__ import annotations

from comfy_api.latest import io

from .base import SCENE, CIELRNode, Scene, out, socket
from .bridge import single_image, single_map, to_image


class CIELRBuildScene(CIELRNode, title="CIELR Build Scene", stage=SCENE,
                      aliases=("scene graph", "spatial relations", "structured scene", "ssr")):
    """Completes the scene: relations from geometry (left of, above, on top of, inside, nearest, size rank)
    and, with a depth map, depth per object and in front of / behind."""

    OUTPUTS = (
        out(Scene, "scene", "The scene with relations, for Refine Scene, Decompose, Plan From JSON and the editing "
                            "nodes."),
        out(io.String, "json", "The whole scene as JSON, masks run-length encoded: for files and tools, too large "
                               "for an LLM prompt."),
        out(io.Image, "preview", "The photo with every object's mask, box, id and label drawn on it."),
        out(io.String, "text", "The scene as the LLM reads it: one line per object (id, label, position, size) "
                               "and the relations; no mask pixels. Small enough for any LLM or prompt node."),
    )

    INPUTS = (
        socket(io.Image, "image", "The same photo that went into CIELR Perceive (or Scene From Masks / Boxes / "
                                  "SEGS)."),
        socket(Scene, "scene", "The raw scene from CIELR Perceive, Scene From Masks, Scene From Boxes or Scene From "
                               "SEGS."),
        socket(io.Image, "depth", "Optional depth map (bright = near), e.g. from a Depth Anything or MiDaS node. "
                                  "Adds depth and in front of / behind.", optional=True),
    )

    @classmethod
    def execute(cls, image, scene, depth=None) -> io.NodeOutput:
        from cielr_core.reasoning import scene_text
        from cielr_core.scene import build_scene, check_same_size, render_preview, scene_to_json

        rgb = single_image(image, cls.TITLE)
        check_same_size(scene, rgb, cls.TITLE)
        depth_map = None if depth is None else single_map(depth, f"{cls.TITLE} (depth)")
        built = build_scene(scene, depth=depth_map)
        return io.NodeOutput(built, scene_to_json(built, indent=1), to_image(render_preview(rgb, built)),
                             scene_text(built).text)


class CIELRScenePreview(CIELRNode, title="CIELR Scene Preview", stage=SCENE,
                        aliases=("show scene", "overlay", "visualize masks", "draw boxes"), shows_result=True):
    """Draws the scene over the photo: coloured masks, boxes, ids and labels, shown on the node."""

    OUTPUTS = (out(io.Image, "preview", "The photo with the scene drawn on it (also shown on the node)."),)

    INPUTS = (socket(io.Image, "image", "The photo the scene describes."),
              socket(Scene, "scene", "A scene from CIELR Perceive, Build Scene or Refine Scene."))

    @classmethod
    def execute(cls, image, scene) -> io.NodeOutput:
        from cielr_core.scene import check_same_size, render_preview

        rgb = single_image(image, cls.TITLE)
        check_same_size(scene, rgb, cls.TITLE)
        overlay = to_image(render_preview(rgb, scene))
        return io.NodeOutput(overlay, ui=cls.preview(overlay))


NODES = (CIELRBuildScene, CIELRScenePreview)
