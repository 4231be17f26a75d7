"""Image normalisation and safe checkpoint loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cielr_core.errors import CheckpointError, InputError
from cielr_core.images import to_rgb_uint8
from cielr_core.weights import load_checkpoint, state_dict_of, strip_prefix


@pytest.mark.parametrize("shape,dtype,scale", [
    ((5, 7), np.uint8, 1), ((5, 7, 1), np.uint8, 1), ((5, 7, 2), np.uint8, 1), ((5, 7, 4), np.uint8, 1),
    ((5, 7, 3), np.uint16, 257), ((5, 7), np.int32, 257), ((5, 7, 3), np.float32, 1 / 255),
])
def test_to_rgb_uint8_formats(shape, dtype, scale):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=shape[:2] + (1,)).astype(np.float64)
    a = np.broadcast_to(base, shape[:2] + ((shape[2],) if len(shape) == 3 else (1,))).copy()
    a = (a * scale).astype(dtype).reshape(shape)
    before = a.copy()
    out = to_rgb_uint8(a)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], base[:, :, 0].astype(np.uint8))
    assert np.array_equal(a, before)  # input untouched
    assert not np.shares_memory(out, a)


def test_to_rgb_uint8_rejects_bad_shapes():
    with pytest.raises(InputError, match="batch"):
        to_rgb_uint8(np.zeros((2, 4, 4, 3)))
    with pytest.raises(InputError, match="channels"):
        to_rgb_uint8(np.zeros((4, 4, 5)))
    with pytest.raises(InputError, match="empty"):
        to_rgb_uint8(np.zeros((0, 4, 3)))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"model": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="refused") as err:
        load_checkpoint(path, "a state dict")
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_truncated_and_empty_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(64, 64)}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut, "a state dict")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty, "a state dict")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk, "a state dict")


def test_state_dict_unwrapping(tmp_path):
    sd = {"module.a": torch.zeros(2), "module.b": torch.ones(1)}
    assert set(state_dict_of({"model": sd}, "f", "x")) == set(sd)
    assert set(strip_prefix(sd, "module.")) == {"a", "b"}
    with pytest.raises(CheckpointError, match="no tensors"):
        state_dict_of({"model": {"epoch": 3}}, "f", "x")
    with pytest.raises(CheckpointError, match="list"):
        state_dict_of([1, 2], "f", "x")
