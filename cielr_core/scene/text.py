"""The scene as text, in every layout it is read in. No mask pixels in any of them.

- ``scene_to_text``, for people (logs, the command line, a node's text output): the image size and
  object count, one line per object in id order (label, score, position in thirds, size, size rank,
  depth, parent, attributes), then the relations grouped per subject.
- ``llm_scene_text``, for the LLM: the same lines laid out so that a refinement round, which adds
  objects with higher ids, appends lines instead of rewriting earlier ones (a server's prefix cache
  then reuses them). The head holds only the image size; the size ranks, which change when an object
  is added, leave the object lines; the count and the size order follow the object lines.
- ``compact_scene_text``, for the LLM when a scene is crowded (the relations of 50 objects take
  about 25 KB): short object lines, a few relations per object, and, when the lines alone would not
  fit, the least confident objects counted by label instead of listed. Its head and count sit where
  the LLM layout has them.

The LLM layouts come as a ``SceneView``: the text and the ids it lists, the only ids an answer may use.
Labels and attributes come from users and models; each is cut to one bounded line here, so none can
break a layout or pose as another line.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Scene, SceneObject
from .relations import PREDICATES

SCENE_CHARS = 3000  # the LLM's default budget for the scene text (about 1,000 tokens)
MAX_LISTED = 40  # objects listed by id at most; answers name only listed ids
RELATIONS_PER_OBJECT = 4  # in the compact layout, at most this many relations per object
OBJECTS_HEAD = "Objects (position in thirds of the image; depth 1 = nearest):"

# The order relations are kept in when an object has more than fit: containment and support say
# the most about what an object is; "nearest" is the most useful of the rest for small scenes.
_RELATION_PRIORITY = ("inside", "contains", "on_top_of", "nearest", "overlaps", "in_front_of", "behind",
                      "left_of", "right_of", "above", "below")
assert set(_RELATION_PRIORITY) == set(PREDICATES)


@dataclass(frozen=True)
class SceneView:
    """The scene as the LLM sees it: the text, and the ids of the objects listed in it (the only
    ids an answer may use; low-confidence objects left out of a crowded scene cannot be named)."""

    text: str
    ids: tuple[int, ...]


def one_line(text: object, limit: int = 60) -> str:
    """One line, bounded: labels come from users and LLMs and go back into prompts."""
    return " ".join(str(text).split())[:limit]


def _count(n: int) -> str:
    return f"{n} object{'s' if n != 1 else ''}"


def _image_line(scene: Scene) -> str:
    return f"Image {scene.width}x{scene.height} pixels."


def _count_line(n: int) -> str:
    return f"{_count(n)} in all."


def _percent(area: float) -> str:
    pct = 100.0 * area
    return f"{pct:.1f}%" if pct >= 1 or pct == 0 else f"{pct:.2f}%"


def _by_id(scene: Scene) -> list[SceneObject]:
    return sorted(scene.objects, key=lambda o: o.id)


# ---------------------------------------------------------------- the full lines (people and LLM)

def _object_line(o: SceneObject, width: int, height: int, size_rank: bool) -> str:
    if o.area > 0:
        size = f"{_percent(o.area)} of image"
    else:  # a detection without mask pixels: its box is all we know about its size
        box_area = max(0.0, o.box[2] - o.box[0]) * max(0.0, o.box[3] - o.box[1])
        size = f"box {_percent(box_area / (width * height))} of image, no mask"
    parts = [f"#{o.id} {one_line(o.label)} (score {o.score:.2f}) {o.position[0]}-{o.position[1]}", size]
    if size_rank and o.size_rank is not None:
        parts.append(f"size rank {o.size_rank}")
    if o.depth is not None:
        parts.append(f"depth {o.depth:.2f}")
    if o.parent is not None:
        parts.append(f"part of #{o.parent}")
    parts += [f"{one_line(k, 30)}={one_line(v, 60)}" for k, v in sorted(o.attributes.items())]
    return ", ".join(parts)


def _relation_lines(scene: Scene) -> list[str]:
    if scene.relations is None:
        return ["Relations: not computed yet."]
    if not scene.relations:
        return ["Relations: none."]
    by_subject: dict[int, dict[str, list[int]]] = {}
    for r in scene.relations:
        by_subject.setdefault(r.subject, {}).setdefault(r.predicate, []).append(r.object)
    labels = {o.id: one_line(o.label) for o in scene.objects}
    rank = {p: k for k, p in enumerate(PREDICATES)}
    lines = ["Relations:"]
    for subject in sorted(by_subject):
        groups = sorted(by_subject[subject].items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        text = "; ".join(f"{p} " + ", ".join(f"#{i}" for i in sorted(ids)) for p, ids in groups)
        lines.append(f"#{subject} {labels.get(subject, '?')}: {text}")
    return lines


def scene_to_text(scene: Scene) -> str:
    """For people: the count in the head, one line per object with its size rank, then relations."""
    n = len(scene.objects)
    head = f"Image {scene.width}x{scene.height} pixels, {_count(n)}."
    if not n:
        return head
    objects = [_object_line(o, scene.width, scene.height, size_rank=True) for o in _by_id(scene)]
    return "\n".join([head, OBJECTS_HEAD, *objects, *_relation_lines(scene)])


def llm_scene_text(scene: Scene) -> SceneView:
    """For the LLM, every object listed: laid out so that objects added later append lines."""
    objects = _by_id(scene)
    lines = [_image_line(scene)]
    if objects:
        lines += [OBJECTS_HEAD, *(_object_line(o, scene.width, scene.height, size_rank=False) for o in objects)]
    lines.append(_count_line(len(objects)))
    ranked = sorted((o.size_rank, o.id) for o in objects if o.size_rank is not None)
    if ranked:
        lines.append("Largest first: " + ", ".join(f"#{i}" for _, i in ranked) + ".")
    if objects:
        lines += _relation_lines(scene)
    return SceneView("\n".join(lines), tuple(o.id for o in objects))


# ---------------------------------------------------------------- the compact layout (crowded scenes)

def _short_object_line(o: SceneObject) -> str:
    parts = [f"#{o.id} {one_line(o.label, 40)}", f"{o.position[0]}-{o.position[1]}",
             f"{100 * o.area:.1f}% of image" if o.area > 0 else "no mask"]
    if o.parent is not None:
        parts.append(f"part of #{o.parent}")
    if o.depth is not None:
        parts.append(f"depth {o.depth:.2f}")
    return ", ".join(parts)


def _compact_relations(scene: Scene, shown: set[int], per_object: int) -> list[str]:
    rank = {p: k for k, p in enumerate(_RELATION_PRIORITY)}
    grouped: dict[int, list[tuple[int, str, int]]] = {}
    for r in scene.relations or []:
        if r.subject in shown and r.object in shown:
            order = rank.get(r.predicate, len(rank))
            grouped.setdefault(r.subject, []).append((order, r.predicate, r.object))
    lines = []
    for subject in sorted(grouped):
        kept = sorted(grouped[subject])[:per_object]
        lines.append(f"#{subject}: " + "; ".join(f"{p} #{o}" for _, p, o in kept))
    return lines


def compact_scene_text(scene: Scene, max_chars: int = SCENE_CHARS, max_objects: int = MAX_LISTED,
                       relations_per_object: int = RELATIONS_PER_OBJECT) -> SceneView:
    """A short scene description that fits ``max_chars`` where at all possible.

    Objects are listed by id with label, position, size and parent; relations follow, at most
    ``relations_per_object`` each (fewer, down to none, until the text fits). When the object
    lines alone would not fit (or there are more than ``max_objects``), the most confident objects
    are listed and the rest are counted by label, so the model still knows they exist.
    """
    n = len(scene.objects)
    head = _image_line(scene)
    if not n:
        return SceneView(f"{head}\n{_count_line(n)} Nothing was detected.", ())
    budget = max(200, max_chars)
    shown: list[SceneObject] = []
    used = len(head) + 60
    for o in sorted(scene.objects, key=lambda o: (-o.score, o.id)):
        line = _short_object_line(o)
        if shown and (len(shown) >= max_objects or used + len(line) + 1 > budget * 0.7):
            break
        shown.append(o)
        used += len(line) + 1
    shown_ids = {o.id for o in shown}
    hidden = [o for o in scene.objects if o.id not in shown_ids]
    lines = [head, "Objects (position in thirds of the image):"]
    lines += [_short_object_line(o) for o in sorted(shown, key=lambda o: o.id)]
    if hidden:
        counts: dict[str, int] = {}
        for o in hidden:
            counts[one_line(o.label, 40)] = counts.get(one_line(o.label, 40), 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        summary = ", ".join(f"{c} {label}" for label, c in ranked)
        lines.append(f"Not listed (lower confidence, cannot be used): {summary[:300]}.")
    lines.append(_count_line(n))
    text = "\n".join(lines)
    ids = tuple(sorted(shown_ids))
    if scene.relations is None:
        return SceneView(text + "\nRelations: not computed.", ids)
    for per_object in range(max(0, relations_per_object), 0, -1):
        rel = _compact_relations(scene, shown_ids, per_object)
        candidate = text + "\nRelations:\n" + "\n".join(rel) if rel else text + "\nRelations: none."
        if len(candidate) <= budget:
            return SceneView(candidate, ids)
    return SceneView(text, ids)
