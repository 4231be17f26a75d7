"""Best of N and retries in the executor, with a scripted detector that "sees" the removed speaker
again whenever the painted region has the colour chosen to fail, and an engine that paints a known
flat colour per sample."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.editing import EditSettings, InpaintRequest, execute_plan, grown_mask
from cielr_core.errors import InputError
from cielr_core.plan import Plan
from cielr_core.progress import Progress
from cielr_core.verify import Verifier
from tests.fixtures.scripted_detector import ScriptedDetector
from tests.scenes import speaker_scene

RED, BLUE, GREEN = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
SMALL = {"working_size": 64, "grow": 8, "feather": 4, "context": 16}


class Painter:
    """An engine that fills each request with the next colour of a list, recording every request."""

    multiple = 8

    def __init__(self, *colours):
        self.colours = colours
        self.requests: list[InpaintRequest] = []

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        colour = self.colours[len(self.requests) % len(self.colours)]
        self.requests.append(request)
        out = np.empty_like(request.image)
        out[:] = np.asarray(colour, np.float32)
        return out


@pytest.fixture(scope="module")
def photo():
    return speaker_scene()


def seen_when(colour, mask, box):
    """A detector that reports the speaker at its old place when the region is painted ``colour``."""
    target = np.asarray(colour) * 255

    def boxes(image):
        mean = image[mask].astype(np.float64).mean(axis=0)
        return [("speaker", box, 0.8)] if np.abs(mean - target).max() < 40 else []

    return ScriptedDetector(boxes)


REMOVE = Plan.model_validate({"actions": [{"op": "remove", "targets": [1]}]})


@pytest.mark.parametrize("colours, kept", [((RED, BLUE), 2), ((BLUE, RED), 1)])
def test_the_passing_candidate_wins_whatever_the_seed_order(photo, colours, kept):
    image, mask, box, scene = photo
    engine = Painter(*colours)
    verifier = Verifier(seen_when(RED, mask, box))
    result = execute_plan(image, scene, REMOVE, engine, EditSettings(seed=40, candidates=2, **SMALL),
                          verifier=verifier)
    report = result.reports[0]
    assert len(engine.requests) == 2 and [r.seed for r in engine.requests] == [40, 41]
    assert report.kept.number == kept and report.seed == 40 + kept - 1
    assert report.verdict.passed and [a.verdict.passed for a in report.attempts] == [c == BLUE for c in colours]
    assert np.all(result.image[mask] == (0, 0, 255))  # the running image moved on with the kept one
    assert f"candidate {kept} of 2 kept, passed" in result.report
    table = result.verdict_table()
    assert f"1 | remove | 2 | {kept} | {40 + kept - 1} | passed" in table and "'speaker' detected" in table


def test_all_fail_then_bounded_retries_with_a_grown_mask(photo):
    image, mask, box, scene = photo
    engine = Painter(RED)
    result = execute_plan(image, scene, REMOVE, engine, EditSettings(seed=3, candidates=2, retries=2, **SMALL),
                          verifier=Verifier(seen_when(RED, mask, box)))
    attempts = result.reports[0].attempts
    assert len(engine.requests) == len(attempts) == 6  # candidates x (1 + retries), no more
    assert [a.seed for a in attempts] == [3, 4, 5, 6, 7, 8]
    assert [a.round for a in attempts] == [0, 0, 1, 1, 2, 2] and [a.grow for a in attempts] == [8, 8, 16, 16, 24, 24]
    assert all(a.verdict.status == "failed" for a in attempts) and result.reports[0].verdict.status == "failed"
    assert sum(a.kept for a in attempts) == 1
    # bit-exact outside the MASK output, which is the kept candidate's grown mask (not a retry's larger one)
    kept = result.reports[0].kept
    expected = grown_mask(mask, EditSettings(**{**SMALL, "grow": kept.grow}))
    assert np.array_equal(result.mask > 0, expected)
    changed = (result.image != image).any(axis=-1)
    assert changed.any() and not (changed & (result.mask == 0)).any()


def test_retries_stop_at_the_first_round_that_passes(photo):
    image, mask, box, scene = photo
    engine = Painter(RED, RED, BLUE, RED)
    result = execute_plan(image, scene, REMOVE, engine, EditSettings(candidates=2, retries=3, **SMALL),
                          verifier=Verifier(seen_when(RED, mask, box)))
    report = result.reports[0]
    assert len(engine.requests) == 4 and report.kept.number == 3 and report.kept.round == 1
    assert report.verdict.passed


def test_recolor_retries_raise_the_denoise_and_firm_up_the_prompt(photo):
    image, _, box, scene = photo
    plan = Plan.model_validate({"actions": [{"op": "recolor", "targets": [1], "prompt": "a red speaker"}]})
    engine = Painter(BLUE)  # never red: every attempt fails
    result = execute_plan(image, scene, plan, engine, EditSettings(retries=2, **SMALL),
                          verifier=Verifier(ScriptedDetector([("speaker", box, 0.8)])))
    assert [round(r.denoise, 2) for r in engine.requests] == [0.6, 0.75, 0.9]
    assert engine.requests[0].prompt == "a red speaker"
    assert engine.requests[1].prompt.startswith("a red speaker, ")
    assert engine.requests[2].prompt != engine.requests[1].prompt
    assert "colour moved toward red" in result.verdict_table()


def test_without_a_detector_one_sample_and_not_verified(photo):
    image, _, _, scene = photo
    for verifier in (None, Verifier(None)):
        engine = Painter(BLUE)
        result = execute_plan(image, scene, REMOVE, engine, EditSettings(candidates=3, retries=2, **SMALL),
                              verifier=verifier)
        assert len(engine.requests) == 1  # nothing could choose between candidates
        report = result.reports[0]
        assert report.verdict.status == "not verified" and not report.verdict.passed
        assert "not verified" in result.report and "passed" not in result.report
        assert "no detector" in result.verdict_table()


def test_default_is_one_sample_per_action(photo):
    image, mask, box, scene = photo
    engine = Painter(RED)
    detector = seen_when(RED, mask, box)
    execute_plan(image, scene, REMOVE, engine, EditSettings(**SMALL), verifier=Verifier(detector))
    assert len(engine.requests) == 1 and len(detector.calls) == 1  # verified, but no extra sampling


def test_cancel_between_candidates_leaves_the_input_untouched(photo):
    image, mask, box, scene = photo
    before = image.copy()
    checks = []

    class Cancelled(Exception):
        pass

    def on_check():
        checks.append(1)
        if len(checks) == 3:  # plan start, candidate 1, then cancel before candidate 2
            raise Cancelled

    engine = Painter(RED, BLUE)
    with pytest.raises(Cancelled):
        execute_plan(image, scene, REMOVE, engine, EditSettings(candidates=3, **SMALL),
                     progress=Progress(on_check=on_check), verifier=Verifier(seen_when(RED, mask, box)))
    assert len(engine.requests) == 1 and np.array_equal(image, before)


def test_candidates_and_retries_are_bounded(photo):
    image, _, _, scene = photo
    for bad in ({"candidates": 0}, {"candidates": 9}, {"retries": 5}):
        with pytest.raises(InputError, match=next(iter(bad))):
            execute_plan(image, scene, REMOVE, Painter(RED), EditSettings(**bad))
