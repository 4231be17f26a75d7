"""Each op's check on synthetic edits of a real photo (benchmark photo 0, its speaker mask), with a
scripted detector that reports the boxes each case chooses."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.editing.regions import grow, placement_mask
from cielr_core.plan import Action
from cielr_core.scene import make_object
from cielr_core.scene.model import Scene
from cielr_core.verify import VerifySettings, prompt_noun, verify_action
from cielr_core.verify.colours import colour_in
from tests.fixtures.scripted_detector import ScriptedDetector
from tests.scenes import speaker_scene

RED = np.array([220, 30, 30], np.float64)


@pytest.fixture(scope="module")
def photo():
    return speaker_scene()


def background_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The region filled with the colour of its surroundings (plus slight noise): the object is gone."""
    ring = grow(mask, 12) & ~mask
    out = image.copy()
    noise = np.random.default_rng(0).normal(0, 4, (int(mask.sum()), 3))
    out[mask] = np.clip(np.median(image[ring], axis=0) + noise, 0, 255).astype(np.uint8)
    return out


def remove_action() -> Action:
    return Action(op="remove", targets=[1])


def test_remove_passes_when_the_region_is_background(photo):
    image, mask, box, scene = photo
    detector = ScriptedDetector()
    verdict = verify_action(image, background_fill(image, mask), remove_action(), scene, grow(mask, 8), detector)
    assert verdict.status == "passed" and verdict.passed, verdict.evidence
    assert 0.9 < verdict.score <= 1.0
    # one detector pass, on the window around the edited region, asking for the removed label
    assert len(detector.calls) == 1 and detector.calls[0]["labels"] == ["speaker"]
    x0, y0, x1, y1 = detector.calls[0]["within"]
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    assert (x1 - x0) * (y1 - y0) < image.shape[0] * image.shape[1]


def test_remove_fails_when_a_patch_of_the_old_object_is_pasted_back(photo):
    """The detector misses it, but most of the old pixels and edges are still there."""
    image, mask, box, scene = photo
    after = background_fill(image, mask)
    patch = mask.copy()
    patch[int(box[1] + 0.7 * (box[3] - box[1])):] = False  # the upper 70% of the speaker comes back
    after[patch] = image[patch]
    verdict = verify_action(image, after, remove_action(), scene, grow(mask, 8), ScriptedDetector())
    assert verdict.status == "failed", verdict.evidence
    assert "still looks like the old object" in verdict.evidence


def test_remove_fails_when_the_detector_sees_the_object_again(photo):
    image, mask, box, scene = photo
    detector = ScriptedDetector([("speaker", box, 0.8)])
    verdict = verify_action(image, background_fill(image, mask), remove_action(), scene, grow(mask, 8), detector)
    assert verdict.status == "failed"
    assert "'speaker' detected" in verdict.evidence and "box IoU 1.00" in verdict.evidence
    # the same label elsewhere (another speaker, away from the old mask) does not fail the removal
    elsewhere = ScriptedDetector([("speaker", (box[0] - 250, box[1], box[0] - 150, box[1] + 120), 0.8)])
    wide = VerifySettings(context=400)
    assert verify_action(image, background_fill(image, mask), remove_action(), scene, grow(mask, 8), elsewhere,
                         settings=wide).passed


def tinted(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, amount: float = 0.4) -> np.ndarray:
    out = image.copy()
    out[mask] = np.clip(image[mask] * (1 - amount) + amount * colour, 0, 255).astype(np.uint8)
    return out


def test_recolor_passes_when_the_colour_moves_toward_the_named_one(photo):
    image, mask, box, scene = photo
    action = Action(op="recolor", targets=[1], prompt="a bright red speaker")
    verdict = verify_action(image, tinted(image, mask, RED), action, scene, grow(mask, 8),
                            ScriptedDetector([("speaker", box, 0.7)]))
    assert verdict.passed, verdict.evidence
    assert "toward red" in verdict.evidence and "of the way" in verdict.evidence


def test_recolor_fails_when_unchanged_or_toward_another_colour_or_gone(photo):
    image, mask, box, scene = photo
    action = Action(op="recolor", targets=[1], prompt="a bright red speaker")
    seen = ScriptedDetector([("speaker", box, 0.7)])
    unchanged = verify_action(image, image.copy(), action, scene, grow(mask, 8), seen)
    assert unchanged.status == "failed" and "0% of the way" in unchanged.evidence
    blue = verify_action(image, tinted(image, mask, np.array([30, 60, 220.0])), action, scene, grow(mask, 8), seen)
    assert blue.status == "failed"
    # right colour, but the object is no longer detected there: the shape was not kept
    lost = verify_action(image, tinted(image, mask, RED), action, scene, grow(mask, 8), ScriptedDetector())
    assert lost.status == "failed" and "no 'speaker' detected" in lost.evidence
    assert unchanged.score < lost.score or unchanged.score < 0.7  # graded, not all-or-nothing


def test_replace_needs_the_new_object_and_not_the_old(photo):
    image, mask, box, scene = photo
    action = Action(op="replace", targets=[1], prompt="a floor-standing lamp with a white shade")
    after = background_fill(image, mask)
    lamp = (box[0] + 20, box[1], box[2] - 20, box[3])
    good = verify_action(image, after, action, scene, grow(mask, 8),
                         ScriptedDetector([("floor-standing lamp", lamp, 0.6)]))
    assert good.passed, good.evidence
    both = verify_action(image, after, action, scene, grow(mask, 8),
                         ScriptedDetector([("floor-standing lamp", lamp, 0.6), ("speaker", box, 0.5)]))
    assert both.status == "failed" and "'speaker' detected" in both.evidence
    missing = verify_action(image, after, action, scene, grow(mask, 8), ScriptedDetector())
    assert missing.status == "failed" and "no 'floor-standing lamp' detected" in missing.evidence


def test_add_checks_the_relation_to_the_anchor():
    """A cup asked on top of a shelf: found resting on it passes, found below it fails, by the
    scene's own relation rules."""
    h, w = 240, 320
    image = np.full((h, w, 3), 200, np.uint8)
    shelf_box = (80.0, 120.0, 240.0, 140.0)
    shelf = np.zeros((h, w), bool)
    shelf[120:140, 80:240] = True
    image[shelf] = (90, 60, 30)
    scene = Scene(w, h, [make_object(1, "shelf", 0.9, shelf_box, shelf)])
    action = Action(op="add", anchor=1, placement="on_top_of", prompt="a blue cup")
    edited = grow(placement_mask(scene, 1, "on_top_of"), 40)  # a large grow reaches below the shelf
    on_top = ScriptedDetector([("cup", (140.0, 100.0, 180.0, 122.0), 0.6)])
    ok = verify_action(image, image, action, scene, edited, on_top)
    assert ok.passed, ok.evidence
    assert "is on_top_of #1 shelf" in ok.evidence and on_top.calls[0]["labels"] == ["cup"]
    below = ScriptedDetector([("cup", (140.0, 142.0, 180.0, 170.0), 0.6)])
    bad = verify_action(image, image, action, scene, edited, below)
    assert bad.status == "failed"
    assert "not on_top_of #1 shelf" in bad.evidence and "below" in bad.evidence


def test_without_a_detector_nothing_is_verified(photo):
    image, mask, _, scene = photo
    verdict = verify_action(image, background_fill(image, mask), remove_action(), scene, grow(mask, 8), None)
    assert verdict.status == "not verified" and not verdict.passed and verdict.score is None
    assert "no detector" in verdict.evidence


@pytest.mark.parametrize("prompt, noun", [
    ("a floor lamp", "floor lamp"), ("A red floor-standing lamp with a shade", "floor-standing lamp"),
    ("two blue cups on the table", "cups"), ("cat", "cat"), ("the dark blue sofa, velvet", "sofa"),
])
def test_prompt_noun(prompt, noun):
    assert prompt_noun(prompt) == noun


def test_colour_names():
    assert colour_in("make it dark blue") == "dark blue"
    assert colour_in("a Light-Green chair") == "light green"
    assert colour_in("a bored cat") is None
