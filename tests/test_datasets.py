"""Dataset reader: the real ciebench-dev set (20 samples, one mask of the wrong size), malformed
copies of it (each problem recorded with its reason, the rest still read), and the SmartEdit
reasoning layout."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from cielr_core.bench.datasets import (
    CIEBENCH,
    SMARTEDIT,
    DatasetError,
    LoadedSample,
    Problem,
    Sample,
    SampleError,
    detect_layout,
    iter_dataset,
    load_mask,
    load_sample,
    read_dataset,
)
from cielr_core.images import image_info, load_image

from .conftest import CIEBENCH as DEV


def reasons(ds) -> dict[str, str]:
    return {p.id: p.reason for p in ds.problems}


def iter_loaded(ds):
    """Each sample decoded in turn, or a Problem when it cannot be."""
    for sample in ds.samples:
        try:
            yield load_sample(sample)
        except SampleError as e:
            yield Problem(sample.id, e.reason)


# ------------------------------------------------------------------------------- the real dev set

def test_dev_set_reads_19_samples_and_flags_the_mask_of_the_wrong_size():
    ds = read_dataset(DEV)
    assert ds.layout == CIEBENCH and ds.total == 20
    assert [s.id for s in ds.samples] == [str(i) for i in range(20) if i != 5]
    # Sample 5's mask is 320x240 for a 796x597 photo: a failure with both sizes, not a resize.
    assert reasons(ds) == {"5": "mask 5/5_mask.png is 320x240 but the image is 796x597"}
    s0 = ds.samples[0]
    assert s0.target_text == "lamp" and s0.instruction.startswith("Many people like to watch movies")
    assert s0.image_path == DEV / "0" / "0.png" and s0.mask_paths == (DEV / "0" / "0_mask.png",)
    assert ds.notes == []
    assert json.loads(json.dumps(s0.to_dict()))["mask_paths"] == [str(DEV / "0" / "0_mask.png")]


def test_dev_set_samples_load_as_rgb_with_binary_masks_of_their_size():
    ds = read_dataset(DEV)
    loaded = list(iter_loaded(ds))
    assert len(loaded) == 19 and all(isinstance(x, LoadedSample) for x in loaded)
    for x in loaded:
        assert x.image.dtype == np.uint8 and x.image.ndim == 3 and x.image.shape[2] == 3
        assert x.mask.dtype == np.bool_ and x.mask.shape == x.image.shape[:2]
        assert x.mask.any() and not x.mask.all()
    # The files are JPEG data named .png; the masks greyscale JPEGs with compression noise.
    assert image_info(DEV / "0" / "0.png")[:2] == ("JPEG", "RGB")
    assert image_info(DEV / "0" / "0_mask.png")[:2] == ("JPEG", "L")
    raw = np.asarray(Image.open(DEV / "0" / "0_mask.png").convert("L"))
    assert len(np.unique(raw)) > 2  # not binary on disk
    assert np.array_equal(loaded[0].mask, raw > 127)
    first = ds.samples[0]
    size = image_info(first.image_path)[2]
    assert np.array_equal(load_mask(first.mask_paths, size=size, threshold=None), raw)  # the soft mask


def test_the_wrong_size_mask_also_fails_at_load_time_when_not_checked_up_front():
    ds = read_dataset(DEV, check="paths")
    assert len(ds.samples) == 20 and ds.problems == []
    five = next(s for s in ds.samples if s.id == "5")
    with pytest.raises(SampleError, match="320x240 but the image is 796x597") as e:
        load_sample(five)
    assert e.value.sample_id == "5"
    problems = [x for x in iter_loaded(ds) if isinstance(x, Problem)]
    assert [p.id for p in problems] == ["5"]


def test_full_check_on_the_dev_set_agrees_with_the_header_check():
    ds = read_dataset(DEV, check="full")
    assert [p.id for p in ds.problems] == ["5"] and len(ds.samples) == 19


def test_iter_dataset_is_lazy_and_accepts_the_json_file():
    it = iter_dataset(DEV / "data.json")
    assert isinstance(it, types.GeneratorType)
    first = next(it)
    assert isinstance(first, Sample) and first.id == "0"
    assert detect_layout(DEV) == CIEBENCH and detect_layout(DEV / "data.json") == CIEBENCH


# ------------------------------------------------------------------------------- malformed copies

def _jpeg(path, array, quality=90):
    """Save JPEG data under any name (the dataset's own quirk)."""
    buf = Image.fromarray(array)
    with open(path, "wb") as f:
        buf.save(f, format="JPEG", quality=quality)


@pytest.fixture
def broken(tmp_path):
    """A copy of dev samples 0-4 plus hand-made entries, each broken in one way."""
    root = tmp_path / "bench"
    root.mkdir()
    meta = json.loads((DEV / "data.json").read_text())
    for k in map(str, range(5)):
        shutil.copytree(DEV / k, root / k)
    data = {k: dict(meta[k]) for k in map(str, range(5))}
    data["1"]["image path"] = "1/missing.png"  # missing file
    small = np.asarray(Image.open(DEV / "2" / "2_mask.png").convert("L").resize((400, 300)))
    _jpeg(root / "2" / "2_mask.png", small)  # mask of the wrong size
    data["3"]["instruction"] = "   "  # empty instruction
    # Greyscale JPEG mask with a .png name, noisy values (fine), and a dark one (empty after 127).
    (root / "g").mkdir()
    shutil.copy(DEV / "0" / "0.png", root / "g" / "g.png")
    m = np.zeros((597, 796), np.uint8)
    m[100:300, 200:500] = 240
    _jpeg(root / "g" / "g_mask.png", m, quality=40)
    _jpeg(root / "g" / "dark_mask.png", (m // 3))  # values up to ~80: nothing above 127
    data["grey"] = {"image path": "g/g.png", "instruction": "Remove the box.", "mask path": ["g/g_mask.png"],
                    "CLIP": ["floor"]}
    data["dark"] = {"image path": "g/g.png", "instruction": "Remove the box.", "mask path": ["g/dark_mask.png"],
                    "CLIP": ["floor"]}
    # An RGB mask and a two-mask entry (the union is the target).
    rgb = np.repeat(m[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(root / "g" / "rgb_mask.png")
    half = np.zeros_like(m)
    half[400:500, 100:200] = 255
    Image.fromarray(half).save(root / "g" / "second_mask.png")
    data["rgb"] = {"image path": "g/g.png", "instruction": "x", "mask path": "g/rgb_mask.png", "CLIP": "floor"}
    data["two"] = {"image path": "g/g.png", "instruction": "x", "mask path": ["g/g_mask.png", "g/second_mask.png"],
                   "CLIP": ["a", "b"]}
    data["list"] = ["g/g.png", "do something"]  # broken entry: not an object
    data["nomask"] = {"image path": "g/g.png", "instruction": "x", "CLIP": ["y"]}
    data["escape"] = {"image path": "../../etc/passwd", "instruction": "x", "mask path": ["g/g_mask.png"]}
    data["absolute"] = {"image path": str(root / "g" / "g.png"), "instruction": "x", "mask path": ["g/g_mask.png"]}
    (root / "g" / "text.png").write_text("this is not an image")
    data["notimage"] = {"image path": "g/text.png", "instruction": "x", "mask path": ["g/g_mask.png"]}
    data["badtype"] = {"image path": "g/g.png", "instruction": 42, "mask path": ["g/g_mask.png"]}
    data["noclip"] = {"image path": "g/g.png", "instruction": "Make it blue.", "mask path": ["g/g_mask.png"]}
    (root / "data.json").write_text(json.dumps(data))
    return root


def test_malformed_entries_are_recorded_and_the_rest_still_read(broken):
    ds = read_dataset(broken)
    assert [s.id for s in ds.samples] == ["0", "4", "grey", "dark", "rgb", "two", "noclip"]
    r = reasons(ds)
    assert set(r) == {"1", "2", "3", "list", "nomask", "escape", "absolute", "notimage", "badtype"}
    assert r["1"] == "image file missing: 1/missing.png"
    assert r["2"] == "mask 2/2_mask.png is 400x300 but the image is 796x597"
    assert r["3"] == "the instruction is empty"
    assert "not an object" in r["list"]
    assert r["nomask"] == "the entry has no 'mask path'"
    assert "outside the dataset folder" in r["escape"]
    assert "is absolute" in r["absolute"]
    assert "not an image" in r["notimage"] and "g/text.png" in r["notimage"]
    assert "'instruction' must be a string" in r["badtype"]
    assert ds.notes == ["sample noclip has no CLIP target text: its CLIP score will be not computed"]
    assert ds.total == 16


def test_greyscale_rgb_and_multiple_masks_load_binarised(broken):
    ds = read_dataset(broken)
    by_id = {s.id: s for s in ds.samples}
    grey = load_sample(by_id["grey"]).mask
    assert grey.dtype == np.bool_ and grey.shape == (597, 796)
    box = np.zeros((597, 796), bool)
    box[100:300, 200:500] = True
    # JPEG ringing at quality 40 moves at most a thin band at the box edges across 127.
    assert grey[150, 300] and not grey[50, 50]
    assert (grey ^ box).mean() < 0.002
    assert np.array_equal(load_sample(by_id["rgb"]).mask, box)  # RGB mask (lossless): exactly the box
    two = load_sample(by_id["two"])
    assert two.mask[450, 150] and two.mask[150, 300] and not two.mask[450, 600]
    assert by_id["two"].target_text == "a, b"


def test_a_mask_empty_after_thresholding_is_a_problem(broken):
    ds = read_dataset(broken)
    dark = next(s for s in ds.samples if s.id == "dark")
    with pytest.raises(SampleError, match="empty after thresholding at 127"):
        load_sample(dark)
    full = read_dataset(broken, check="full")
    assert "dark" in reasons(full) and "largest value is" in reasons(full)["dark"]
    assert [s.id for s in full.samples] == ["0", "4", "grey", "rgb", "two", "noclip"]


def test_unreadable_datasets_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="not a dataset folder"):
        read_dataset(tmp_path)
    (tmp_path / "data.json").write_text('{"0": {"image path": ')
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_dataset(tmp_path)
    (tmp_path / "data.json").write_text('[1, 2]')
    with pytest.raises(DatasetError, match="must hold an object"):
        read_dataset(tmp_path)


def test_loaders_open_by_content_not_extension(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", format="PNG")  # PNG data named .jpg
    assert np.array_equal(load_image(tmp_path / "photo.jpg"), rgb)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png").shape == (20, 30, 3)
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 5:10] = 200
    m[0, 0] = 127  # exactly the threshold: outside
    Image.fromarray(m).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").sum() == 25
    assert load_mask(tmp_path / "m.png", threshold=None).max() == 200
    with pytest.raises(Exception, match="21x20"):
        load_mask(tmp_path / "m.png", size=(21, 20))


# ------------------------------------------------------------------------------- SmartEdit layout

@pytest.fixture
def smartedit(tmp_path):
    root = tmp_path / "6-Reasoning"
    root.mkdir()
    rng = np.random.default_rng(1)
    for stem in ("1", "2", "10", "11", "12", "13"):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(root / f"{stem}.png")
        m = np.zeros((32, 48), np.uint8)
        m[8:20, 10:30] = 255
        if stem != "12":  # 12 has no mask
            _jpeg(root / f"{stem}_mask.jpg", m)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "99_mask.jpg", format="JPEG")  # orphan
    # Lines follow sorted() order of the image paths: 1, 10, 11, 12, 13, 2.
    lines = [
        "What holds the flowers? Replace it with a blue bottle. CLIP: blue bottle",
        "What keeps the room warm? Remove it.CLIP: wall",
        "no separator on this line",
        "Replace the lamp. CLIP: a chair",
        "   CLIP: cat",
    ]  # one line short: image 2 has none
    (root / "Reason_test.txt").write_text("\n".join(lines) + "\n\n")
    (root / "README.txt").write_text("not the instructions\n")
    return root


def test_smartedit_layout(smartedit):
    assert detect_layout(smartedit) == SMARTEDIT
    ds = read_dataset(smartedit)
    assert ds.layout == SMARTEDIT
    assert [s.id for s in ds.samples] == ["1", "10"]
    first, second = ds.samples
    assert first.instruction == "What holds the flowers? Replace it with a blue bottle."
    assert first.target_text == "blue bottle" and first.mask_paths == (smartedit / "1_mask.jpg",)
    assert second.instruction == "What keeps the room warm? Remove it." and second.target_text == "wall"
    assert first.layout == SMARTEDIT
    r = reasons(ds)
    assert r == {
        "11": "line 3 of Reason_test.txt has no 'CLIP:' part: 'no separator on this line'",
        "12": "mask file missing: 12_mask.jpg",
        "13": "the instruction is empty (line 5 of Reason_test.txt)",
        "2": "Reason_test.txt has no line 6 for this image",
    }
    notes = "\n".join(ds.notes)
    assert "5 lines for 6 images" in notes
    assert "99_mask.jpg belongs to no image" in notes
    assert "pair them by sorted order" in notes  # 10_mask.jpg sorts before 1_mask.jpg
    x = load_sample(first)
    assert x.image.shape == (32, 48, 3) and x.mask.shape == (32, 48) and x.mask.sum() == 12 * 20


def test_smartedit_text_file_choice(smartedit):
    (smartedit / "Other_text.txt").write_text("a CLIP: b\n")
    with pytest.raises(DatasetError, match="several text files"):
        read_dataset(smartedit, layout=SMARTEDIT)
    ds = read_dataset(smartedit, layout=SMARTEDIT, text_file="Other_text.txt")
    assert [s.id for s in ds.samples] == ["1"] and ds.samples[0].instruction == "a"
