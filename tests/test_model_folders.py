"""The one lookup of a model name in the folders of a ComfyUI models folder (command line and nodes)."""

from __future__ import annotations

import pytest

from cielr_core.config import find_model
from cielr_core.errors import ModelNotFoundError
from cielr_core.model_folders import MODEL_FOLDERS, find_in_folders, subfolders


def test_folders_are_searched_in_order_and_a_named_folder_may_be_the_model(tmp_path):
    first, second = subfolders(tmp_path, "grounding-dino")
    assert (first.name, second.name) == MODEL_FOLDERS["grounding-dino"]
    second.mkdir()
    (second / "g.pth").write_bytes(b"x")
    assert find_in_folders([first, second], ["g.pth"]) == second / "g.pth"
    assert find_in_folders([first, second], ["missing.pth"]) is None
    (bert,) = subfolders(tmp_path, "bert-base-uncased")
    bert.mkdir()
    assert find_in_folders([bert], ["bert-base-uncased"]) is None  # no config.json: not a model folder
    (bert / "config.json").write_text("{}")
    assert find_in_folders([bert], ["bert-base-uncased"]) == bert
    assert find_in_folders([bert], ["bert-base-uncased"], folder_ok=False) is None
    assert [p.name for p in subfolders(tmp_path, "inpaint")] == ["diffusers", "checkpoints", "inpaint"]


def test_a_missing_model_names_every_folder_and_the_expected_files(tmp_path):
    (tmp_path / "sams").mkdir()
    (tmp_path / "sams" / "m.pth").write_bytes(b"x")
    found = find_model("m.pth", "sams", "SAM model", ["m.pth"], "src", str(tmp_path))
    assert found == tmp_path / "sams" / "m.pth"
    with pytest.raises(ModelNotFoundError) as err:
        find_model("n.pth", "grounding-dino", "GroundingDINO model", ["groundingdino_swint_ogc.pth"],
                   "the page", str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "grounding-dino") in message and str(tmp_path / "groundingdino") in message
    assert "n.pth" in message and "groundingdino_swint_ogc.pth" in message and "the page" in message
