"""The adapters' tensor conversions (the parts that need no running ComfyUI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cielr_core.errors import InputError
from nodes.bridge import single_image, to_image


def test_single_image_copies_and_keeps_the_input():
    image = torch.rand(1, 6, 5, 3)
    before = image.clone()
    out = single_image(image, "Node")
    out[:] = 0
    assert torch.equal(image, before)
    assert out.shape == (6, 5, 3)


def test_batch_is_a_clear_error():
    with pytest.raises(InputError, match="batch of 3.*Image From Batch"):
        single_image(torch.rand(3, 4, 4, 3), "CIELR Perceive")
    with pytest.raises(InputError, match="batch, height, width"):
        single_image(torch.rand(4, 4, 3), "CIELR Perceive")


def test_to_image_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 7, 3), dtype=np.uint8)
    t = to_image(rgb)
    assert t.shape == (1, 4, 7, 3) and t.dtype == torch.float32
    assert np.array_equal(np.rint(t[0].numpy() * 255).astype(np.uint8), rgb)
