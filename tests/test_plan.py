"""Plan types and validation against a scene."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.plan import Plan, PlanError, plan_from_json, plan_to_json, validate_plan
from cielr_core.scene import make_object
from cielr_core.scene.model import Scene


@pytest.fixture
def scene() -> Scene:
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    objects = [make_object(1, "tv", 0.9, (3, 2, 9, 8), mask), make_object(2, "speaker", 0.8, (3, 2, 9, 8), mask)]
    return Scene(30, 20, objects)


def test_valid_plan_round_trips(scene):
    text = ('{"actions": [{"op": "replace", "targets": [2], "prompt": "a floor lamp"},'
            ' {"op": "add", "anchor": 1, "placement": "left_of", "prompt": "a plant"},'
            ' {"op": "remove", "targets": [1, 2]}]}')
    plan = plan_from_json(text, scene)
    assert [a.op for a in plan.actions] == ["replace", "add", "remove"]
    assert plan_from_json(plan_to_json(plan), scene) == plan
    assert plan_from_json('[{"op": "remove", "targets": [1]}]', scene).actions[0].targets == [1]


@pytest.mark.parametrize("text,needle", [
    ('{"actions": [{"op": "remove", "targets": [9]}]}', "[9] that are not in the scene"),
    ('{"actions": [{"op": "remove", "targets": []}]}', "needs at least one target"),
    ('{"actions": [{"op": "replace", "targets": [1]}]}', "needs a prompt"),
    ('{"actions": [{"op": "add", "prompt": "x"}]}', "needs an anchor"),
    ('{"actions": [{"op": "add", "anchor": 5, "placement": "near", "prompt": "x"}]}', "#5, which is not"),
    ('{"actions": [{"op": "add", "anchor": 1, "placement": "near", "prompt": "x", "targets": [1]}]}',
     "must not have targets"),
    ('{"actions": [{"op": "recolor", "targets": [1], "prompt": "red", "anchor": 2}]}', "must not have an anchor"),
    ('{"actions": [{"op": "explode", "targets": [1]}]}', "actions.0.op"),
    ('{"actions": []}', "actions"),
    ('{"actions": [{"op": "remove", "targets": [1], "code": "import os"}]}', "code"),
    ('{"actions": [{"op": "remove", "targets": [1]}', "not valid JSON"),
    ('{"actions": [{"op": "remove", "targets": [1], "strength": 3}]}', "strength"),
])
def test_bad_plans_name_the_problem(scene, text, needle):
    with pytest.raises(PlanError) as err:
        plan_from_json(text, scene)
    assert needle in str(err.value)


def test_unknown_ids_on_an_empty_scene():
    plan = Plan.model_validate({"actions": [{"op": "remove", "targets": [1]}]})
    with pytest.raises(PlanError, match="the scene is empty"):
        validate_plan(plan, Scene(4, 4, []))
