"""Refinement: the chain of scene updates, each round an LLM verdict that may add objects.

Each round the LLM reads the instruction and the scene and returns a verdict: ``sufficient``,
``missing_labels``, ``search_within`` (an object id, for parts) and a ``note``. Missing labels are
detected through the ``detect`` callable (the whole image, or inside the named object's box) and
merged as new objects with new ids; existing ids never change. The loop stops when the verdict is
sufficient, when a round adds nothing new, or after ``max_rounds`` verdicts. Every round is kept.

Refinement never imports perception: the caller passes ``detect(labels, within_box)``, which
returns the objects found (a raw ``Scene`` or a list of ``SceneObject``; their ids do not matter).
With no ``detect`` (a scene from another tool's masks, no detector connected) the LLM is still asked,
the trace records what it would look for, and the scene stays as it is.

``refine_request`` and ``refine_answer`` are one round of the same chain for an LLM the pack does not
drive: the request as text for the scene so far, and the answer text back, read and applied the same
way. The scene that ``refine_answer`` returns carries the rounds so far (a ``RefinedScene``), so the
next round's request and answer continue the chain: its request names the labels already searched
for, and once the chain has stopped, later answers change nothing.
Spatial questions are answered from the scene's computed relations; nothing the model writes is
ever executed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..labels import MAX_LABEL_CHARS, clean_labels
from ..llm import LLM
from ..progress import NO_PROGRESS, Progress
from ..scene import Scene, build_scene, merge_objects
from ..scene.model import Box, SceneObject
from ..settings import MAX_ROUNDS
from .answers import verdict_type
from .exchange import Request, read_answer
from .prompts import SCENE_CHARS, check_instruction, refine_messages, scene_text

DUPLICATE_IOU = 0.85  # a new object this close to an existing one of the same label adds nothing

Detect = Callable[[list[str], "Box | None"], "Scene | Sequence[SceneObject]"]

# Why the loop ended (Refinement.stop)
SUFFICIENT = "sufficient"
NOTHING_NEW = "nothing new"
MAX_ROUNDS_REACHED = "max rounds"
NO_ROUNDS = "no rounds"
NO_DETECTOR = "no detector"


@dataclass
class RefineRound:
    """One verdict and what came of it."""

    index: int  # 1-based
    sufficient: bool
    missing_labels: list[str]
    search_within: int | None
    note: str
    searched: list[str] = field(default_factory=list)  # labels actually detected this round
    added: list[int] = field(default_factory=list)  # ids of the new objects
    duplicates: int = 0  # detections dropped because an object of that label was already there
    wanted: list[str] = field(default_factory=list)  # labels it would have looked for, with no detector


@dataclass
class Refinement:
    scene: Scene
    rounds: list[RefineRound]
    # SUFFICIENT, NOTHING_NEW, MAX_ROUNDS_REACHED, NO_ROUNDS or NO_DETECTOR; None while a chain driven
    # by hand may go on
    stop: str | None
    max_rounds: int | None  # None: the rounds are driven by hand

    @property
    def added(self) -> list[int]:
        return [i for r in self.rounds for i in r.added]

    @property
    def searched(self) -> list[tuple[str, int | None]]:
        """Every (label, search_within) detected so far: a label is looked for once per place."""
        return [(label, r.search_within) for r in self.rounds for label in r.searched]

    def text(self) -> str:
        return trace_text(self)


@dataclass
class RefinedScene(Scene):
    """A scene from a round driven by hand, with the rounds so far: the next round continues them."""

    rounds: tuple[RefineRound, ...] = ()
    stop: str | None = None


def _objects(found: Scene | Sequence[SceneObject]) -> list[SceneObject]:
    if isinstance(found, Scene):
        return list(found.objects)
    if isinstance(found, (list, tuple)) and all(isinstance(o, SceneObject) for o in found):
        return list(found)
    raise InputError("the detect callable must return a Scene or a list of SceneObject, "
                     f"got {type(found).__name__}")


def _iou(a: SceneObject, b: SceneObject) -> float:
    """Mask IoU (box IoU for objects without mask pixels), counted inside the boxes' overlap only."""
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    na, nb = np.count_nonzero(a.mask), np.count_nonzero(b.mask)
    if na and nb:
        if (x1 - x0) * (y1 - y0) < DUPLICATE_IOU * max(na, nb) - 1:
            return 0.0  # the overlap cannot hold enough pixels; skip counting
        ya, yb, xa, xb = int(y0), int(np.ceil(y1)), int(x0), int(np.ceil(x1))
        inter = np.count_nonzero(a.mask[ya:yb, xa:xb] & b.mask[ya:yb, xa:xb])
        return inter / (na + nb - inter)
    inter = (x1 - x0) * (y1 - y0)
    area_a = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1])
    area_b = (b.box[2] - b.box[0]) * (b.box[3] - b.box[1])
    return inter / (area_a + area_b - inter)


def _is_duplicate(o: SceneObject, scene: Scene) -> bool:
    label = o.label.strip().lower()
    return any(e.label.strip().lower() == label and _iou(o, e) >= DUPLICATE_IOU for e in scene.objects)


def _start(scene: Scene, depth: np.ndarray | None, max_rounds: int | None) -> Refinement:
    current = scene if scene.relations is not None else build_scene(scene, depth=depth)
    return Refinement(current, [], None, max_rounds)


def _request(chain: Refinement, instruction: str, scene_chars: int) -> Request:
    view = scene_text(chain.scene, scene_chars)
    asked = [label if within is None else f"{label} (inside #{within})" for label, within in chain.searched]
    return Request(tuple(refine_messages(instruction, view, asked)), verdict_type(view.ids))


def _round(chain: Refinement, verdict, detect: Detect | None, depth: np.ndarray | None,
           progress: Progress) -> Refinement:
    """The chain after one verdict: the round recorded, missing objects detected and merged."""
    labels = clean_labels(verdict.missing_labels, strip_decoration=True, max_chars=MAX_LABEL_CHARS)
    within = verdict.search_within
    step = RefineRound(len(chain.rounds) + 1, bool(verdict.sufficient), labels, within,
                       " ".join(verdict.note.split()))
    rounds = [*chain.rounds, step]

    def ended(stop: str) -> Refinement:
        return Refinement(chain.scene, rounds, stop, chain.max_rounds)

    if verdict.sufficient:
        return ended(SUFFICIENT)
    new = [label for label in labels if (label, within) not in chain.searched]
    if detect is None:
        step.wanted = new
        return ended(NO_DETECTOR if new else NOTHING_NEW)
    step.searched = new
    if not new:
        return ended(NOTHING_NEW)  # nothing to look for that was not looked for already
    progress.check()
    box = chain.scene.get(within).box if within is not None else None
    found = _objects(detect(list(new), box))
    if within is not None:
        found = [dataclasses.replace(o, parent=within) for o in found]
    fresh = [o for o in found if not _is_duplicate(o, chain.scene)]
    step.duplicates = len(found) - len(fresh)
    if not fresh:
        return ended(NOTHING_NEW)
    merged = merge_objects(chain.scene, fresh)
    step.added = [o.id for o in merged.objects[len(chain.scene.objects):]]
    return Refinement(build_scene(merged, depth=depth), rounds, None, chain.max_rounds)


def refine_scene(scene: Scene, instruction: str, llm: LLM, detect: Detect | None, *,
                 max_rounds: int = MAX_ROUNDS.default,
                 depth: np.ndarray | None = None, scene_chars: int = SCENE_CHARS,
                 progress: Progress = NO_PROGRESS) -> Refinement:
    """Run the chain of scene updates; returns the final scene (relations computed) and the trace.

    ``max_rounds`` bounds the LLM verdicts (0 turns refinement off). ``depth`` (optional) is the
    depth map the scene was built with, so new objects get a depth too. ``detect`` None: the first
    verdict that names missing objects ends the loop (asking again about the same scene would
    name them again), with the labels kept in the trace. Cancel is checked before every LLM call
    and every detection.
    """
    check_instruction(instruction)
    MAX_ROUNDS.check(max_rounds)
    chain = _start(scene, depth, max_rounds)
    if max_rounds == 0:
        return dataclasses.replace(chain, stop=NO_ROUNDS)
    progress.start(max_rounds)
    while chain.stop is None and len(chain.rounds) < max_rounds:
        progress.check()
        request = _request(chain, instruction, scene_chars)
        chain = _round(chain, llm.complete(list(request.messages), request.answer_type), detect, depth, progress)
        if chain.stop is None:
            progress.advance()
    progress.advance(max_rounds)  # the bar ends full however the loop ended
    return chain if chain.stop is not None else dataclasses.replace(chain, stop=MAX_ROUNDS_REACHED)


def _continued(scene: Scene, depth: np.ndarray | None = None) -> Refinement:
    """The chain ``scene`` carries (a ``RefinedScene``), or a new one starting from it."""
    if isinstance(scene, RefinedScene):
        plain = Scene(scene.width, scene.height, scene.objects, scene.relations)
        return Refinement(plain, list(scene.rounds), scene.stop, None)
    return _start(scene, depth, None)


def refine_request(scene: Scene, instruction: str, *, scene_chars: int = SCENE_CHARS) -> Request:
    """The request of the next round for the scene so far: the first round's for a scene from
    anywhere but ``refine_answer``. A chain that has stopped still gets one; its answer changes nothing."""
    check_instruction(instruction)
    return _request(_continued(scene), instruction, scene_chars)


def refine_answer(scene: Scene, answer: str, detect: Detect | None, *, depth: np.ndarray | None = None,
                  scene_chars: int = SCENE_CHARS) -> Refinement:
    """One round from an answer given as text (to ``refine_request`` for the same scene): the verdict
    read and checked as the backends read it, missing objects detected and merged as ``refine_scene``
    does. The returned refinement's scene carries the chain; its ``stop`` is None while another round
    may add more. On a chain that has already stopped the answer is not read."""
    chain = _continued(scene, depth)
    if chain.stop is None:
        answer_type = verdict_type(scene_text(chain.scene, scene_chars).ids)
        chain = _round(chain, read_answer(answer, answer_type), detect, depth, NO_PROGRESS)
    carried = RefinedScene(chain.scene.width, chain.scene.height, list(chain.scene.objects), chain.scene.relations,
                           rounds=tuple(chain.rounds), stop=chain.stop)
    return dataclasses.replace(chain, scene=carried)


_STOP_TEXT = {
    SUFFICIENT: "the LLM found the scene sufficient",
    NOTHING_NEW: "the last round added nothing new",
    MAX_ROUNDS_REACHED: "max_rounds reached",
    NO_ROUNDS: "refinement is off (max_rounds 0)",
    NO_DETECTOR: ("no detector is connected, so nothing was added (connect CIELR GroundingDINO Loader, and "
                  "CIELR SAM Loader for outlines, to add the objects the LLM named)"),
}


def trace_text(refinement: Refinement) -> str:
    """The rounds as text a user can read (the Refine Scene node's trace output)."""
    scene = refinement.scene
    labels = {o.id: " ".join(o.label.split())[:40] for o in scene.objects}
    lines = []
    for r in refinement.rounds:
        verdict = "sufficient" if r.sufficient else "not sufficient"
        note = f' ("{r.note}")' if r.note else ""
        lines.append(f"Round {r.index}: {verdict}{note}.")
        if r.sufficient:
            continue
        where = "the whole image" if r.search_within is None else \
            f"#{r.search_within} {labels.get(r.search_within, '?')}"
        if not r.missing_labels:
            lines.append("  Named nothing to look for.")
            continue
        if r.wanted:
            lines.append(f"  Would look for {', '.join(r.wanted)} in {where}, but no detector is connected: "
                         "nothing added.")
            continue
        again = [label for label in r.missing_labels if label not in r.searched]
        if r.searched:
            lines.append(f"  Looked for {', '.join(r.searched)} in {where}.")
        if again:
            lines.append(f"  Already searched: {', '.join(again)}.")
        if r.added:
            lines.append("  Added " + ", ".join(f"#{i} {labels.get(i, '?')}" for i in r.added) + ".")
        elif r.searched:
            lines.append("  Found nothing new" + (f" ({r.duplicates} duplicate detections dropped)."
                                                  if r.duplicates else "."))
    n = len(scene.objects)
    objects = f"The scene has {n} object{'s' if n != 1 else ''}."
    done = f"{len(refinement.rounds)} round{'s' if len(refinement.rounds) != 1 else ''}"
    if refinement.stop is None:
        lines.append(f"After {done} the chain goes on: objects were added, and another round asks whether "
                     f"the scene is now enough. {objects}")
    elif refinement.max_rounds is None:
        lines.append(f"Stopped after {done}: {_STOP_TEXT[refinement.stop]}. {objects}")
    else:
        lines.append(f"Stopped after {len(refinement.rounds)} of {refinement.max_rounds} rounds: "
                     f"{_STOP_TEXT[refinement.stop]}. {objects}")
    return "\n".join(lines)
