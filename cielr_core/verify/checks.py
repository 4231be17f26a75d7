"""Per-op checks of one executed action: the detector looks at the edited region again.

- ``remove``: the removed labels are not detected over their old masks, and the region does not
  still hold the old colours and edges (a pixel check that also catches what a detector misses).
- ``replace``: the prompt's noun is detected inside the edited region and the old label is not.
- ``recolor``: the region's mean CIELAB colour moved toward the named colour, while the old label
  is still detected there with its shape kept (mask IoU with a segmenter, box IoU without).
- ``add``: the prompt's noun is detected in the edited region and stands in the asked relation
  to its anchor, as the scene's own relation code computes it.

A detection counts as "over" an object when its box IoU with the object's mask box (or, with a
segmenter, its mask IoU) reaches ``match_iou``. Every check is kept as evidence in words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..editing.regions import box_mask
from ..editing.stitch import Window, crop_window
from ..images import to_rgb_uint8
from ..perception.detections import Detections
from ..perception.perceive import DetectorLike, SegmenterLike
from ..plan import Action
from ..scene.build import make_object
from ..scene.masks import check_mask, mask_box
from ..scene.model import Box, Scene
from ..scene.relations import compute_relations
from ..settings import BOX_THRESHOLD, TEXT_THRESHOLD, problems
from ..verdict import Check
from . import colours

_DETERMINERS = {"a", "an", "the", "some", "one", "two", "three", "few", "several", "another", "its", "their",
                "his", "her", "new", "small", "large", "big", "little", "single", "pair", "of"}
# where a description of the object ends; a word joined by a hyphen ("floor-standing") is no cut
_CUT = re.compile(r",|;|(?<![\w-])(with|on|in|at|that|which|who|under|over|near|next|beside|behind|holding|made|"
                  r"from|instead|wearing|sitting|standing|placed|for|to)(?![\w-])")


@dataclass(frozen=True)
class VerifySettings:
    box_threshold: float = BOX_THRESHOLD.default  # detector thresholds for the second look
    text_threshold: float = TEXT_THRESHOLD.default
    match_iou: float = 0.5  # a detection this close to an object's old mask is that object
    inside_fraction: float = 0.3  # share of a new object's box inside the edited region
    context: int = 32  # pixels around the edited region the detector sees
    kept_similarity: float = 0.5  # remove: the old pixels are still there at or above this
    colour_progress: float = 0.25  # recolor: share of the way to the named colour it must move
    colour_min_move: float = 3.0  # recolor: and at least this many CIELAB units
    colour_close: float = 12.0  # recolor: a region this close to the colour already is that colour
    shape_iou: float = 0.6  # recolor: the object's mask after vs before
    judge_weight: float = 0.5  # share of the vision judge in the score when it answered

    def problems(self) -> list[str]:
        out = problems(self, (BOX_THRESHOLD, TEXT_THRESHOLD))
        out += [f"{n} must be between 0 and 1, got {getattr(self, n)}"
                for n in ("match_iou", "inside_fraction", "kept_similarity", "colour_progress", "shape_iou",
                          "judge_weight") if not 0.0 <= getattr(self, n) <= 1.0]
        if not 0 <= self.context <= 4096:
            out.append(f"context must be between 0 and 4096 pixels, got {self.context}")
        return out


def prompt_noun(prompt: str) -> str:
    """The object a prompt names: "a red floor lamp with a shade" -> "floor lamp"."""
    text = " ".join(prompt.lower().split())
    text = _CUT.split(text, maxsplit=1)[0]
    words = [w for w in re.findall(r"[a-z][a-z'-]*", text) if w not in _DETERMINERS]
    name = colours.colour_in(" ".join(words))
    if name:  # colours describe the object, they do not name it
        words = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", " ", " ".join(words)).split()
    return " ".join(words[-3:])


@dataclass
class Look:
    """One detector pass on the edited region of the image after the edit."""

    image: np.ndarray  # the image after, RGB uint8
    found: Detections
    window: Window
    segmenter: SegmenterLike | None
    _masks: dict[int, np.ndarray] | None = None

    def mask(self, i: int) -> np.ndarray | None:
        """Detection i's mask from the segmenter (computed once for every detection), or None."""
        if self.segmenter is None or not len(self.found):
            return None
        if self._masks is None:
            masks = self.segmenter.segment(self.image, self.found.boxes)
            self._masks = {k: np.asarray(m, bool) for k, m in enumerate(masks)}
        return self._masks[i]


def look(after: np.ndarray, edited: np.ndarray, labels: Sequence[str], detector: DetectorLike,
         segmenter: SegmenterLike | None, settings: VerifySettings) -> Look:
    """Detect ``labels`` on the window around the edited pixels (plus context) of ``after``."""
    rgb = to_rgb_uint8(after)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in mask_box(edited))
    window = crop_window((x0, y0, x1, y1), settings.context, w, h)
    found = detector.detect(rgb, list(dict.fromkeys(labels)), box_threshold=settings.box_threshold,
                            text_threshold=settings.text_threshold, within=(window.x0, window.y0, window.x1, window.y1))
    return Look(rgb, found, window, segmenter)


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def overlap(view: Look, i: int, mask: np.ndarray) -> tuple[float, str]:
    """How well detection i covers an object mask: mask IoU with a segmenter, else box IoU."""
    seg = view.mask(i)
    if seg is not None:
        return mask_iou(seg, mask), "mask IoU"
    box = mask_box(mask)
    return (box_iou(tuple(view.found.boxes[i]), box) if box is not None else 0.0), "box IoU"


def inside_fraction(box: Sequence[float], region: np.ndarray) -> float:
    """Share of a box's pixels that lie in ``region``."""
    h, w = region.shape
    pixels = box_mask(tuple(float(v) for v in box), w, h)
    n = np.count_nonzero(pixels)
    return float(np.count_nonzero(pixels & region) / n) if n else 0.0


def _where(box: Sequence[float]) -> str:
    return "(" + ", ".join(str(round(float(v))) for v in box) + ")"


def object_detected(view: Look, labels: Sequence[str], masks: Sequence[np.ndarray], threshold: float,
                    name: str, want: bool) -> Check:
    """Is one of ``labels`` detected over one of ``masks``? ``want`` says which answer passes."""
    best, best_i, best_kind = 0.0, -1, "box IoU"
    for i, label in enumerate(view.found.labels):
        if label not in labels:
            continue
        for m in masks:
            iou, kind = overlap(view, i, m)
            if iou > best:
                best, best_i, best_kind = iou, i, kind
    seen = best >= threshold
    what = " or ".join(f"'{x}'" for x in labels)
    if seen:
        conf = float(view.found.scores[best_i])
        detail = (f"{what} detected at {_where(view.found.boxes[best_i])} (score {conf:.2f}), "
                  f"{best_kind} {best:.2f} with the old mask")
        score = (1.0 - conf) if not want else min(1.0, 0.5 + 0.5 * conf)
    else:
        near = f" (closest {best_kind} {best:.2f})" if best_i >= 0 else ""
        detail = f"no {what} detected over the old mask{near}"
        score = 1.0 if not want else 0.0
    return Check(name, seen == want, score, detail)


def new_object(view: Look, noun: str, edited: np.ndarray, settings: VerifySettings) -> tuple[int, Check]:
    """The best detection of ``noun`` lying mostly in the edited region (index -1 when none)."""
    best, best_i, best_frac = 0.0, -1, 0.0
    for i, label in enumerate(view.found.labels):
        if label != noun:
            continue
        frac = inside_fraction(view.found.boxes[i], edited)
        if frac >= settings.inside_fraction and float(view.found.scores[i]) * frac > best:
            best, best_i, best_frac = float(view.found.scores[i]) * frac, i, frac
    if best_i < 0:
        return -1, Check(f"'{noun}' detected", False, 0.0, f"no '{noun}' detected in the edited region")
    conf = float(view.found.scores[best_i])
    return best_i, Check(f"'{noun}' detected", True, min(1.0, 0.5 + 0.5 * conf),
                         f"'{noun}' detected at {_where(view.found.boxes[best_i])} (score {conf:.2f}), "
                         f"{best_frac:.0%} of its box inside the edited region")


def pixels_kept(before: np.ndarray, after: np.ndarray, mask: np.ndarray, threshold: float) -> Check:
    """Does the region still hold the old object's colours and edges? Share of pixels within 10
    CIELAB units of before, and the correlation of the lightness gradients, averaged."""
    box = mask_box(mask)
    if box is None:
        return Check("old pixels gone", None, 0.5, "the old mask is empty")
    x0, y0, x1, y1 = (int(v) for v in box)
    m = mask[y0:y1, x0:x1]
    lab_b = colours.rgb_to_lab(to_rgb_uint8(before)[y0:y1, x0:x1])
    lab_a = colours.rgb_to_lab(to_rgb_uint8(after)[y0:y1, x0:x1])
    colour_kept = float(np.mean(np.linalg.norm(lab_b[m] - lab_a[m], axis=-1) < 10.0))
    edge_kept = 0.0
    if min(m.shape) >= 3:
        gb, ga = (np.hypot(*np.gradient(lab[..., 0]))[m] for lab in (lab_b, lab_a))
        if gb.std() > 1e-6 and ga.std() > 1e-6:
            edge_kept = max(0.0, float(np.corrcoef(gb, ga)[0, 1]))
        elif gb.std() <= 1e-6 and ga.std() <= 1e-6:
            edge_kept = 1.0 if colour_kept > 0.5 else 0.0  # two flat regions: as alike as their colours
    similarity = 0.5 * colour_kept + 0.5 * edge_kept
    gone = similarity < threshold
    detail = (f"{colour_kept:.0%} of the old pixels keep their colour (within 10 CIELAB units), lightness "
              f"edges correlate {edge_kept:.2f}: " + ("the old object's look is gone" if gone
                                                      else "the region still looks like the old object"))
    return Check("old pixels gone", gone, 1.0 - similarity, detail)


def colour_moved(before: np.ndarray, after: np.ndarray, mask: np.ndarray, prompt: str,
                 settings: VerifySettings) -> Check:
    """Did the region's mean CIELAB colour move toward the colour the prompt names?"""
    name = colours.colour_in(prompt)
    if name is None:
        return Check("colour moved", None, 0.5, f"no colour name found in the prompt {prompt!r}; not checked")
    if not mask.any():
        return Check("colour moved", None, 0.5, "the object's mask is empty; not checked")
    target = colours.colour_lab(name)
    weight = 1.0 if name in colours.ACHROMATIC else 0.5
    lab_b, lab_a = colours.mean_lab(before, mask), colours.mean_lab(after, mask)
    d_b, d_a = colours.distance(lab_b, target, weight), colours.distance(lab_a, target, weight)
    moved = d_b - d_a
    share = moved / d_b if d_b > 1e-6 else 0.0
    if d_b < settings.colour_close:  # it already was that colour: it must stay so
        ok = d_a < settings.colour_close
        score = 1.0 - min(1.0, d_a / (2 * settings.colour_close))
    else:
        ok = share >= settings.colour_progress and moved >= settings.colour_min_move
        score = float(np.clip(share, 0.0, 1.0))
    detail = (f"mean colour {_lab(lab_b)} -> {_lab(lab_a)}, distance to {name} {_lab(target)} "
              f"{d_b:.1f} -> {d_a:.1f} ({share:.0%} of the way)")
    return Check(f"colour moved toward {name}", ok, score, detail)


def _lab(v: np.ndarray) -> str:
    return "L*a*b* (" + ", ".join(f"{x:.0f}" for x in v) + ")"


def relation_holds(view: Look, i: int, scene: Scene, anchor_id: int, placement: str, noun: str) -> Check:
    """Does the new object (detection i) stand in ``placement`` to the anchor, by the scene's rules?"""
    anchor = scene.get(anchor_id)
    name = f"{placement} #{anchor_id} {anchor.label}"
    if placement in ("in_front_of", "behind"):
        return Check(name, None, 0.5, f"'{placement}' needs depth, which the image alone does not give; not checked")
    h, w = scene.height, scene.width
    box = tuple(float(v) for v in view.found.boxes[i])
    seg = view.mask(i)
    mask = seg if seg is not None and seg.any() else box_mask(box, w, h)
    new_id = max(scene.next_id, anchor_id + 1)
    new = make_object(new_id, noun, float(view.found.scores[i]), box, mask)
    anchor_obj = make_object(anchor.id, anchor.label, anchor.score, anchor.box, check_mask(anchor.mask, h, w))
    held = {r.predicate for r in compute_relations([anchor_obj, new], w, h)
            if r.subject == new_id and r.object == anchor_id}
    if placement == "near":
        ab = anchor.box
        gap = max(ab[0] - box[2], box[0] - ab[2], ab[1] - box[3], box[1] - ab[3], 0.0)
        ok = gap <= 0.5 * max(ab[2] - ab[0], ab[3] - ab[1])
        detail = f"the '{noun}' is {gap:.0f} px from #{anchor_id} {anchor.label}"
    else:
        ok = placement in held
        said = ", ".join(sorted(held - {"nearest"})) or "no relation"
        detail = (f"the '{noun}' is {placement} #{anchor_id} {anchor.label}" if ok else
                  f"the '{noun}' is not {placement} #{anchor_id} {anchor.label}; what holds: {said}")
    return Check(name, ok, 1.0 if ok else 0.0, detail)


def check_action(before: np.ndarray, after: np.ndarray, action: Action, scene: Scene, edited: np.ndarray,
                 detector: DetectorLike, segmenter: SegmenterLike | None,
                 settings: VerifySettings) -> list[Check]:
    """Every check of one action's op, in the order they are reported."""
    h, w = scene.height, scene.width
    edited = check_mask(edited, h, w)
    masks = [check_mask(scene.get(t).mask, h, w) for t in action.targets]
    old = list(dict.fromkeys(scene.get(t).label.strip().lower() for t in action.targets))
    if action.op == "remove":
        view = look(after, edited, old, detector, segmenter, settings)
        union = np.logical_or.reduce(masks) if masks else np.zeros((h, w), bool)
        return [object_detected(view, old, masks, settings.match_iou, "old object gone", want=False),
                pixels_kept(before, after, union, settings.kept_similarity)]
    noun = prompt_noun(action.prompt)
    if not noun and action.op in ("replace", "add"):
        return [Check("new object detected", None, 0.5, f"no object name found in the prompt {action.prompt!r}; "
                                                        "not checked")]
    if action.op == "replace":
        view = look(after, edited, [noun, *old], detector, segmenter, settings)
        _, found = new_object(view, noun, edited, settings)
        gone_labels = [x for x in old if x != noun]
        checks = [found]
        if gone_labels:
            checks.append(object_detected(view, gone_labels, masks, settings.match_iou, "old object gone",
                                          want=False))
        return checks
    if action.op == "recolor":
        union = np.logical_or.reduce(masks)
        view = look(after, edited, old, detector, segmenter, settings)
        kept = object_detected(view, old, masks, settings.match_iou, "object still there", want=True)
        shape = object_detected(view, old, masks, settings.shape_iou, "shape kept", want=True)
        return [colour_moved(before, after, union, action.prompt, settings), kept, shape]
    # add
    view = look(after, edited, [noun], detector, segmenter, settings)
    i, found = new_object(view, noun, edited, settings)
    if i < 0:
        return [found]
    return [found, relation_holds(view, i, scene, action.anchor, action.placement, noun)]
