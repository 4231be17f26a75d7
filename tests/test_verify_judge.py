"""The vision judge against a scripted OpenAI-compatible server that decodes the picture it was sent
(before | after) and answers from what it sees."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from cielr_core.editing import EditSettings, execute_plan
from cielr_core.llm import RemoteLLM
from cielr_core.verify import Verifier
from tests.fixtures.llm_servers import Reply
from tests.fixtures.scripted_detector import ScriptedDetector
from tests.test_verify_select import BLUE, RED, REMOVE, SMALL, Painter, photo  # noqa: F401  (fixture)


def seen_picture(body: dict) -> np.ndarray:
    content = body["messages"][-1]["content"]
    url = next(part["image_url"]["url"] for part in content if part.get("type") == "image_url")
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def judge_liking(colour, asked: list):
    """A judge that says 'done' only when the after half of the picture is mostly ``colour``."""
    want = int(np.argmax(colour))

    def respond(body: dict) -> Reply:
        picture = seen_picture(body)
        after = picture[:, picture.shape[1] // 2 + 8:].reshape(-1, 3).astype(int)
        dominant = np.bincount(after.argmax(axis=1), minlength=3)
        good = dominant.argmax() == want and dominant[want] > 0.3 * len(after)
        text = body["messages"][-1]["content"][0]["text"]
        asked.append(text)
        answer = {"done": bool(good), "score": 5 if good else 1,
                  "reason": "the region is now plain" if good else "wrong colour patch"}
        return Reply(content=json.dumps(answer))

    return respond


def run(image, scene, llm):
    engine = Painter(RED, BLUE)  # both candidates pass the detector: nothing is seen over the old mask
    result = execute_plan(image, scene, REMOVE, engine, EditSettings(candidates=2, **SMALL),
                          verifier=Verifier(ScriptedDetector(), llm=llm))
    return result.reports[0]


def test_the_judges_answer_changes_the_choice(photo, scripted_server):  # noqa: F811
    image, _, _, scene = photo
    without = run(image, scene, None)
    assert [a.verdict.passed for a in without.attempts] == [True, True] and without.kept.number == 1

    for colour, kept in ((BLUE, 2), (RED, 1)):
        asked: list[str] = []
        scripted_server.responder = judge_liking(colour, asked)
        llm = RemoteLLM(scripted_server.base_url, "vision-model", vision=True, timeout=30, max_retries=0)
        report = run(image, scene, llm)
        assert report.kept.number == kept, [a.verdict.evidence for a in report.attempts]
        loser = report.attempts[2 - kept]
        assert loser.verdict.status == "failed" and "vision judge: not done, 1/5" in loser.verdict.evidence
        assert "done, 5/5" in report.verdict.evidence and report.verdict.passed
        assert len(asked) == 2 and all('remove the speaker' in t for t in asked)


def test_without_image_support_the_detector_decides_and_says_so(photo, scripted_server):  # noqa: F811
    image, _, _, scene = photo
    blind = RemoteLLM(scripted_server.base_url, "text-model", vision=False, timeout=30, max_retries=0)
    report = run(image, scene, blind)
    assert scripted_server.requests == []  # nothing was sent to a model that cannot see
    assert report.verdict.passed and "does not accept images" in report.verdict.evidence
    assert "detector checks only" in report.verdict.evidence

    scripted_server.responder = lambda body: Reply(
        status=400, body=json.dumps({"error": {"message": "image input is not supported by this model"}}))
    refusing = RemoteLLM(scripted_server.base_url, "text-model", vision=True, timeout=30, max_retries=0)
    report = run(image, scene, refusing)
    assert len(scripted_server.requests) >= 2  # it was asked, once per candidate
    assert report.verdict.passed and "the judge could not answer" in report.verdict.evidence
    assert "image input is not supported" in report.verdict.evidence
    assert "detector checks only" in report.verdict.evidence
