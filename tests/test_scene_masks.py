"""Run-length encoding and mask measurements."""

from __future__ import annotations

import numpy as np
import pytest

from cielr_core.errors import InputError
from cielr_core.scene import check_mask, rle_decode, rle_encode
from cielr_core.scene.masks import area_fraction, mask_box, mask_centroid, mask_geometry


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (7, 13), (64, 64), (257, 300), (300, 257)])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 0.97, 1.0])
def test_rle_round_trip_is_bit_exact(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = rng.random(shape) < density
    rle = rle_encode(mask)
    assert rle["size"] == list(shape)
    assert sum(rle["counts"]) == mask.size
    assert all(isinstance(c, int) for c in rle["counts"])
    back = rle_decode(rle)
    assert back.dtype == np.bool_ and back.shape == mask.shape
    assert np.array_equal(back, mask)


def test_rle_is_column_major_and_starts_with_zeros():
    # Columns are read top to bottom: column 0 = [F, T], column 1 = [T, T].
    assert rle_encode(np.array([[False, True], [True, True]]))["counts"] == [1, 3]
    # A True first pixel gives a leading zero-length False run.
    assert rle_encode(np.array([[True, False], [True, False], [True, False]]))["counts"] == [0, 3, 3]
    assert rle_encode(np.ones((2, 3), bool))["counts"] == [0, 6]
    assert rle_encode(np.zeros((2, 3), bool))["counts"] == [6]
    # Row-major reading would give a different answer for this one.
    assert rle_encode(np.array([[True, False], [False, False]]))["counts"] == [0, 1, 3]
    assert rle_encode(np.array([[False, True], [False, False]]))["counts"] == [2, 1, 1]


def test_rle_round_trip_large_mask():
    h, w = 4000, 6000
    yy, xx = np.ogrid[:h, :w]
    mask = ((xx - 3000) ** 2 + (yy - 1500) ** 2 < 900 ** 2) | ((xx // 7 + yy // 5) % 97 == 0)
    assert np.array_equal(rle_decode(rle_encode(mask)), mask)


@pytest.mark.parametrize("rle, words", [
    ({"size": [2, 2], "counts": [1, 2]}, "add up to 3"),
    ({"size": [2, 2], "counts": [5, -1]}, "negative"),
    ({"size": [2, 2], "counts": [2**62, 2**62, 2**62, 2**62 + 4]}, "longer"),
    ({"size": [2, 2], "counts": [2**70]}, "too large"),
    ({"size": [2, 2], "counts": [1.5, 2.5]}, "integers"),
    ({"size": [2, 2], "counts": ["1", "3"]}, "integers"),
    ({"size": [2, 2], "counts": [[1, 3]]}, "integers"),
    ({"size": [2, 2], "counts": [1, [3]]}, "integers"),
    ({"size": [2, 2], "counts": "12"}, "compressed"),
    ({"size": [2, 2], "counts": [True, 3]}, "integers"),
    ({"size": [2], "counts": [4]}, "height, width"),
    ({"size": ["2", 2], "counts": [4]}, "height, width"),
    ({"size": [20000, 2], "counts": [40000]}, "out of range"),
    ({"counts": [4]}, "RLE object"),
    ([2, 2], "RLE object"),
])
def test_rle_decode_rejects_malformed_input(rle, words):
    with pytest.raises(InputError, match=words):
        rle_decode(rle)


def test_rle_encode_needs_2d_bool():
    with pytest.raises(InputError):
        rle_encode(np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError):
        rle_encode(np.zeros((1, 2, 2), bool))


def test_check_mask_names_both_sizes():
    with pytest.raises(InputError, match="mask is 100x50 but the image is 200x100"):
        check_mask(np.zeros((50, 100), bool), 100, 200)
    with pytest.raises(InputError, match="2-D"):
        check_mask(np.zeros((2, 50, 100), bool), 50, 100)


def test_check_mask_converts_numbers_and_drops_batch_axis():
    m = np.zeros((3, 4), bool)
    assert check_mask(m, 3, 4) is m  # bool passes through without a copy
    u8 = np.array([[0, 255], [255, 0]], np.uint8)
    assert check_mask(u8, 2, 2).tolist() == [[False, True], [True, False]]
    soft = np.array([[0.2, 0.7]], np.float32)
    assert check_mask(soft, 1, 2).tolist() == [[False, True]]
    assert check_mask(u8[None], 2, 2).shape == (2, 2)


def test_box_centroid_area():
    m = np.zeros((10, 20), bool)
    m[2:5, 3:9] = True  # 3 rows x 6 columns
    assert mask_box(m) == (3.0, 2.0, 9.0, 5.0)
    assert mask_centroid(m) == pytest.approx((6.0, 3.5))
    assert area_fraction(m) == pytest.approx(18 / 200)
    m[9, 19] = True
    assert mask_box(m) == (3.0, 2.0, 20.0, 10.0)
    empty = np.zeros((4, 4), bool)
    assert mask_box(empty) is None and mask_centroid(empty) is None and area_fraction(empty) == 0.0


@pytest.mark.parametrize("density", [0.0, 0.001, 0.3, 1.0])
def test_mask_geometry_agrees_with_the_separate_measurements(density):
    """One pass for box, count and centroid (the scene's hot path on large photos) changes no number."""
    rng = np.random.default_rng(int(density * 1000))
    big = np.zeros((120, 170), bool)
    big[10:90, 30:150] = rng.random((80, 120)) < density
    for m in (big, big[5:100:2, 7:160:3]):  # contiguous, and a strided view
        got = mask_geometry(m)
        if not m.any():
            assert got is None
            continue
        box, count, centroid = got
        assert box == mask_box(m)
        assert count == np.count_nonzero(m)
        ys, xs = np.nonzero(m)
        assert centroid == pytest.approx((xs.mean() + 0.5, ys.mean() + 0.5), abs=1e-9)
        assert centroid == mask_centroid(m)
