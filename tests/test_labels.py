"""The one set of label rules (cielr_core.labels): typed labels, detector labels and LLM answers."""

from __future__ import annotations

import pytest

from cielr_core.errors import InputError
from cielr_core.labels import MAX_LABEL_CHARS, clean_labels


def test_typed_labels_split_at_every_separator():
    assert clean_labels("TV, speaker;\nfloor  lamp . sofa .") == ["tv", "speaker", "floor lamp", "sofa"]
    assert clean_labels(["cup", "Cup ", "..."]) == ["cup"]
    assert clean_labels(" , ;\n . ?! ") == []
    # a list item holding a separator is split like a string; a dot inside a name is kept
    assert clean_labels(["tv, lamp", "mr. potato"]) == ["tv", "lamp", "mr. potato"]


def test_labels_without_a_letter_or_digit_and_repeats_go():
    raw = ["  TV ", "tv", "", "...", " ?! ", "___", "Floor   Lamp", "cup", "CUP"]
    assert clean_labels(raw) == ["tv", "floor lamp", "cup"]


def test_decoration_and_length_only_when_asked():
    raw = ["  The Speaker. ", "a tv", "TV", "", "...", "coffee  table; lamp", '"*vase*"']
    assert clean_labels(raw) == ["the speaker", "a tv", "tv", "coffee table", "lamp", '"*vase*"']
    assert clean_labels(raw, strip_decoration=True) == ["speaker", "tv", "coffee table", "lamp", "vase"]
    assert clean_labels("cup, the cup\nplate . bowl", strip_decoration=True) == ["cup", "plate", "bowl"]
    long = ["word " * 20]
    assert clean_labels(long) == [("word " * 20).strip()]
    cut = clean_labels(long, max_chars=MAX_LABEL_CHARS)
    assert cut == [" ".join(["word"] * 8)] and len(cut[0]) <= MAX_LABEL_CHARS


def test_labels_must_be_strings():
    with pytest.raises(InputError, match="must be strings, got int"):
        clean_labels(["cup", 3])
