"""The optional vision judge: an LLM that sees the edited region before and after answers whether
the action was carried out, scored 1-5 the way IDCS scores an edit (5 = fully, 1 = not at all).

The two crops go side by side in one picture (before left, after right), through the backends'
ordinary one-image request (OpenAI ``image_url`` with a PNG data URL for remote servers). A
backend without image support, or a server that refuses the image, leaves the verdict to the
detector checks, and the evidence says so.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..editing.stitch import Window
from ..evaluation import side_by_side
from ..llm.base import LLMError, Message
from ..llm.schema import Answer
from ..plan import Action
from ..scene.model import Scene
from ..verdict import Check

JUDGE_SYSTEM_PROMPT = (
    "You check photo edits. You see one picture made of two crops of the same place in a photo: on the "
    "left before the edit, on the right after it. Answer whether the edit was carried out, and score it "
    "from 1 to 5: 5 = fully carried out and natural, 4 = carried out with small flaws, 3 = partly, "
    "2 = barely, 1 = not at all. Reply with JSON only."
)
JUDGE_USER_TEMPLATE = (
    'The edit: "{edit}".\nLeft: before. Right: after. Was the edit carried out? Give done (true or false), '
    "the score (1-5) and a short reason."
)
PASS_SCORE = 3  # a judge score at or above this counts as done


class JudgeAnswer(Answer):
    done: bool
    score: int = Field(ge=1, le=5)
    reason: str = Field(max_length=200)


def describe_action(action: Action, scene: Scene) -> str:
    """The action in words, for a person or a judge: "replace the speaker with a floor lamp"."""
    names = " and ".join(dict.fromkeys(scene.get(t).label for t in action.targets)) or "object"
    if action.op == "remove":
        return f"remove the {names}"
    if action.op == "replace":
        return f"replace the {names} with {action.prompt}"
    if action.op == "recolor":
        return f"recolor the {names}: {action.prompt}"
    anchor = scene.get(action.anchor).label if action.anchor is not None else "anchor"
    return f"add {action.prompt}, {(action.placement or 'near').replace('_', ' ')} the {anchor}"


def judge(llm, before: np.ndarray, after: np.ndarray, window: Window, action: Action, scene: Scene) -> Check:
    """The judge's check: passed when it says done with a score of at least 3; passed None (not
    counted) when the LLM cannot see images or the request failed."""
    name = "vision judge"
    if not getattr(llm, "supports_images", False):
        return Check(name, None, 0.5, "the LLM does not accept images (vision off), so no judge: "
                                      "judged by the detector checks only")
    picture = side_by_side(before[window.slices], after[window.slices])
    messages = [Message(role="system", content=JUDGE_SYSTEM_PROMPT),
                Message(role="user", content=JUDGE_USER_TEMPLATE.format(edit=describe_action(action, scene)))]
    try:
        answer = llm.complete(messages, JudgeAnswer, image=picture)
    except LLMError as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return Check(name, None, 0.5, f"the judge could not answer ({first}): judged by the detector checks only")
    ok = answer.done and answer.score >= PASS_SCORE
    return Check(name, ok, (answer.score - 1) / 4.0,
                 f"{'done' if answer.done else 'not done'}, {answer.score}/5: {answer.reason}")
