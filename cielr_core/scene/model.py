"""The structured semantic representation (SSR): typed objects and relations.

One ``SceneObject`` per instance, never merged, so "the left cup" stays addressable. Ids are
stable: refinement adds objects with new ids and never renumbers. Masks are boolean arrays in
memory and run-length encoded in JSON (see ``masks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the original image


@dataclass
class SceneObject:
    id: int
    label: str
    score: float
    box: Box
    mask: np.ndarray  # bool, H x W, same size as the scene
    area: float = 0.0  # fraction of the image covered by the mask
    centroid: tuple[float, float] = (0.0, 0.0)  # x, y in pixels
    position: tuple[str, str] = ("center", "middle")  # (left|center|right, top|middle|bottom)
    depth: float | None = None  # median of the depth map under the mask, 0 = far, 1 = near
    parent: int | None = None  # id of the object this part was found inside
    size_rank: int | None = None  # 1 = largest mask in the scene
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Relation:
    subject: int
    predicate: str  # left_of, right_of, above, below, inside, contains, overlaps, on_top_of, ...
    object: int


@dataclass
class Scene:
    width: int
    height: int
    objects: list[SceneObject] = field(default_factory=list)
    # None until ``build_scene`` computed them: a raw scene straight from perception.
    relations: list[Relation] | None = None

    @property
    def next_id(self) -> int:
        return max((o.id for o in self.objects), default=0) + 1

    def get(self, object_id: int) -> SceneObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(f"no object with id {object_id} in the scene (ids: {[o.id for o in self.objects]})")


def check_same_size(scene: Scene, image: np.ndarray, node: str = "") -> None:
    """Raise InputError unless ``image`` (H x W[ x C]) is the size the scene was built for.

    ``node`` names the ComfyUI node for the message a graph user sees (its hint is about wiring);
    without it the message is for library and command-line users.
    """
    h, w = image.shape[:2]
    if (scene.width, scene.height) == (w, h):
        return
    built = f"the scene was built for a {scene.width}x{scene.height} image"
    if node:
        raise InputError(f"{node}: {built} but the image connected is {w}x{h}. "
                         "Connect the same image that went into CIELR Perceive.")
    raise InputError(f"{built} but the image is {w}x{h}; use the image the scene was made from")
