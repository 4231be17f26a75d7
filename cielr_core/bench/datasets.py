"""Benchmark datasets: the CIEBench layout and the SmartEdit reasoning layout, read into typed samples.

Reading never crashes on one bad entry: ``read_dataset`` returns the samples that are usable and a
``Problem`` (id, reason) for each that is not, so a benchmark can count them as failures. Only a
dataset that cannot be read at all (no such folder, no index, data.json not JSON) raises
``DatasetError``.

**CIEBench** (the CIELR authors' 86-sample set)::

    data.json  {"<k>": {"image path": "k/k.png", "instruction": "...",
                        "mask path": ["k/k_mask.png", ...], "CLIP": ["<target text>", ...]}}

Samples come in data.json order; the id is the key. Paths are relative to the folder holding
data.json (an absolute path, or one that leads outside that folder, is a problem). A single string
is accepted where a list is expected. Several CLIP texts are joined with ", " into ``target_text``.
An empty or missing CLIP list is allowed (the CLIP score is then not computed) and noted.

**SmartEdit reasoning** (``6-Reasoning`` of SmartEdit's ReasonEdit benchmark)::

    X.png, X_mask.jpg, ...   and one text file with a line "instruction CLIP: target" per image

Read as SmartEdit's own scripts read it: images are ``*.png`` in ``sorted()`` order (plain string
order, so "10.png" sorts before "2.png"), and line i of the text file belongs to image i. The text
file is the one ``.txt`` in the folder with a "CLIP:" line (or ``text_file``). A line splits at its
first "CLIP:": the instruction before it (trailing spaces removed), the target after it. Masks are
paired by name, ``X.png`` with ``X_mask.jpg`` (``X_mask.png`` / ``X_mask.jpeg`` also accepted);
SmartEdit's scripts pair the i-th sorted mask with the i-th sorted image instead, and a note says so
when the two pairings differ. The id is the image's file stem.

**Files**: images and masks are read by ``cielr_core.images`` (by content, not extension: some
CIEBench ``.png`` files hold JPEG data); an image becomes RGB uint8. A mask becomes greyscale
(``convert("L")``; the CIEBench masks are greyscale JPEGs with compression noise) and is binarised:
value > 127 is inside; several masks are united.
A mask whose size differs from its image's is a problem for that sample (it is not resized: the
sizes are given so the data can be fixed), and so is a mask that is empty after thresholding.

``check`` decides how much ``read_dataset`` verifies up front: "paths" (the files exist),
"header" (default: the files are images Pillow can identify and every mask has its image's size;
reads headers only), "full" (decodes every image and mask, so truncated files and empty masks are
found too). Whatever was not checked surfaces from ``load_sample`` as a ``SampleError`` with the
same kind of reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..images import decode_file, image_info, load_image

CIEBENCH = "ciebench"
SMARTEDIT = "smartedit"
LAYOUTS = (CIEBENCH, SMARTEDIT)
CHECKS = ("paths", "header", "full")
MASK_THRESHOLD = 127
_MASK_SUFFIXES = ("_mask.jpg", "_mask.png", "_mask.jpeg")


class DatasetError(InputError):
    """The dataset as a whole cannot be read."""


class SampleError(InputError):
    """One sample cannot be used; ``reason`` says why, without the id."""

    def __init__(self, sample_id: str, reason: str):
        self.sample_id = sample_id
        self.reason = reason
        super().__init__(f"sample {sample_id}: {reason}")


@dataclass(frozen=True)
class Sample:
    """One benchmark entry. Paths are absolute; nothing is loaded yet."""

    id: str
    image_path: Path
    instruction: str
    mask_paths: tuple[Path, ...]
    targets: tuple[str, ...] = ()
    layout: str = CIEBENCH

    @property
    def target_text(self) -> str:
        """The CLIP target text ("" when the entry has none)."""
        return ", ".join(self.targets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (paths as strings), for per-sample result files."""
        return {"id": self.id, "image_path": str(self.image_path), "instruction": self.instruction,
                "mask_paths": [str(p) for p in self.mask_paths], "targets": list(self.targets),
                "layout": self.layout}


@dataclass(frozen=True)
class Problem:
    """A sample that cannot be used, and why."""

    id: str
    reason: str


@dataclass
class Dataset:
    """What ``read_dataset`` found: usable samples, problems, and notes about the whole set."""

    root: Path
    layout: str
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Entries in the dataset, usable or not."""
        return len(self.samples) + len(self.problems)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


@dataclass(frozen=True)
class LoadedSample:
    """A sample with its pixels: the photo (H x W x 3 uint8) and the ground-truth mask (H x W bool)."""

    sample: Sample
    image: np.ndarray
    mask: np.ndarray


# ------------------------------------------------------------------------------- files

def _describe(path: Path, root: Path | None = None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def load_mask(paths: str | Path | Sequence[str | Path], size: tuple[int, int] | None = None,
              threshold: int | None = MASK_THRESHOLD) -> np.ndarray:
    """The union of one or more mask files as H x W bool (value > ``threshold`` is inside).

    ``size`` (width, height): the image's size; a mask of another size raises InputError naming
    both. ``threshold=None`` returns the raw 8-bit union (the pixel-wise maximum), for the
    original SmartEdit script's soft masking.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise InputError("no mask file given")
    union: np.ndarray | None = None
    for p in items:
        m = decode_file(p, "L")
        h, w = m.shape
        if size is not None and (w, h) != tuple(size):
            raise InputError(f"mask {p} is {w}x{h} but the image is {size[0]}x{size[1]}")
        if union is not None and union.shape != m.shape:
            raise InputError(f"mask {p} is {w}x{h} but the sample's first mask is {union.shape[1]}x{union.shape[0]}")
        union = m if union is None else np.maximum(union, m)
    assert union is not None
    return union if threshold is None else union > threshold


def load_sample(sample: Sample, threshold: int = MASK_THRESHOLD) -> LoadedSample:
    """Decode the photo and its mask; SampleError with the reason when either is unusable."""
    try:
        image = load_image(sample.image_path)
        h, w = image.shape[:2]
        raw = load_mask(sample.mask_paths, size=(w, h), threshold=None)
    except InputError as e:
        raise SampleError(sample.id, str(e)) from None
    mask = raw > threshold
    if not mask.any():
        raise SampleError(sample.id, f"the mask is empty after thresholding at {threshold} (its largest value is "
                                     f"{int(raw.max())}): there is no target region")
    return LoadedSample(sample, image, mask)


def _verify(sample: Sample, check: str, root: Path) -> None:
    """Raise SampleError when the sample's files fail the chosen check."""
    files = [("image", sample.image_path)] + [("mask", p) for p in sample.mask_paths]
    for kind, p in files:
        if not p.is_file():
            raise SampleError(sample.id, f"{kind} file missing: {_describe(p, root)}")
    if check == "paths":
        return
    if check == "full":
        load_sample(sample)
        return
    try:
        size = image_info(sample.image_path)[2]
        for p in sample.mask_paths:
            msize = image_info(p)[2]
            if msize != size:
                raise SampleError(sample.id, f"mask {_describe(p, root)} is {msize[0]}x{msize[1]} but the image is "
                                             f"{size[0]}x{size[1]}")
    except InputError as e:
        if isinstance(e, SampleError):
            raise
        raise SampleError(sample.id, str(e).replace(str(root) + os.sep, "")) from None


# ------------------------------------------------------------------------------- layouts

def detect_layout(path: str | Path) -> str:
    """"ciebench" when the folder (or the file given) is a data.json; "smartedit" when it holds
    ``*_mask.*`` files and a text file; else DatasetError saying what was looked for."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".json":
        return CIEBENCH
    if not p.is_dir():
        raise DatasetError(f"dataset folder not found: {p}")
    if (p / "data.json").is_file():
        return CIEBENCH
    has_masks = any(f.name.lower().endswith(_MASK_SUFFIXES) for f in p.iterdir())
    has_text = any(f.suffix.lower() == ".txt" for f in p.iterdir())
    if has_masks and has_text:
        return SMARTEDIT
    raise DatasetError(f"{p} is not a dataset folder: expected a data.json (CIEBench layout) or images with "
                       "*_mask.jpg masks and a text file of 'instruction CLIP: target' lines (SmartEdit layout)")


def _inside(root: Path, rel: Any, what: str) -> Path:
    """A path from the index, resolved under ``root``; InputError when it is malformed or escapes."""
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"{what} must be a non-empty string, got {rel!r:.80}")
    if os.path.isabs(rel) or rel.startswith(("/", "\\")):
        raise InputError(f"{what} {rel!r} is absolute; paths in data.json are relative to the dataset folder")
    # Lexical check (no resolve()): a dataset may hold symlinks to photos kept elsewhere.
    if os.path.normpath(rel).split(os.sep)[0] == os.pardir:
        raise InputError(f"{what} {rel!r} points outside the dataset folder")
    return root / rel


def _strings(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise InputError(f"{what} must be a list of strings, got {type(value).__name__}")


def _ciebench_entry(key: str, entry: Any, root: Path) -> Sample:
    if not isinstance(entry, dict):
        raise SampleError(key, f"the entry is a {type(entry).__name__}, not an object with 'image path', "
                               "'instruction', 'mask path' and 'CLIP'")
    try:
        missing = [k for k in ("image path", "instruction", "mask path") if k not in entry]
        if missing:
            raise InputError(f"the entry has no {', '.join(repr(k) for k in missing)}")
        instruction = entry["instruction"]
        if not isinstance(instruction, str):
            raise InputError(f"'instruction' must be a string, got {type(instruction).__name__}")
        if not instruction.strip():
            raise InputError("the instruction is empty")
        image = _inside(root, entry["image path"], "'image path'")
        raw_masks = _strings(entry["mask path"], "'mask path'")
        if not raw_masks:
            raise InputError("'mask path' lists no mask")
        masks = tuple(_inside(root, m, "'mask path' entry") for m in raw_masks)
        raw_targets = _strings(entry.get("CLIP", []), "'CLIP'")
        if not all(isinstance(t, str) for t in raw_targets):
            raise InputError("'CLIP' must be a list of strings")
    except SampleError:
        raise
    except InputError as e:
        raise SampleError(key, str(e)) from None
    targets = tuple(t.strip() for t in raw_targets if t.strip())
    return Sample(key, image, instruction.strip(), masks, targets, CIEBENCH)


def _iter_ciebench(path: Path) -> Iterator[Sample | Problem]:
    index = path if path.is_file() else path / "data.json"
    root = index.parent
    try:
        data = json.loads(index.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DatasetError(f"no data.json in {root}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{index} is not valid JSON ({e}); nothing in it can be read") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{index} must hold an object mapping sample ids to entries, not a "
                           f"{type(data).__name__}")
    for key, entry in data.items():
        try:
            yield _ciebench_entry(str(key), entry, root)
        except SampleError as e:
            yield Problem(e.sample_id, e.reason)


def _text_file(root: Path, text_file: str | Path | None) -> Path:
    if text_file is not None:
        p = Path(text_file)
        p = p if p.is_absolute() else root / p
        if not p.is_file():
            raise DatasetError(f"text file not found: {p}")
        return p
    candidates = []
    for f in sorted(root.glob("*.txt")):
        try:
            if "CLIP:" in f.read_text(encoding="utf-8-sig", errors="replace"):
                candidates.append(f)
        except OSError:
            continue
    if not candidates:
        raise DatasetError(f"no text file with 'instruction CLIP: target' lines in {root}")
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise DatasetError(f"several text files in {root} hold 'CLIP:' lines ({names}); say which one with text_file")
    return candidates[0]


def _mask_for(image: Path) -> Path | None:
    for suffix in _MASK_SUFFIXES:
        p = image.with_name(image.stem + suffix)
        if p.is_file():
            return p
    return None


def _iter_smartedit(root: Path, notes: list[str], text_file: str | Path | None) -> Iterator[Sample | Problem]:
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    text = _text_file(root, text_file)
    try:
        lines = text.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"{text} is not UTF-8 text ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    # sorted() of the path strings, as SmartEdit's scripts order them.
    images = [Path(p) for p in sorted(str(p) for p in root.glob("*.png")) if not Path(p).stem.endswith("_mask")]
    if len(lines) != len(images):
        notes.append(f"{text.name} has {len(lines)} lines for {len(images)} images; line i belongs to the i-th "
                     "image in sorted order" + (", extra lines are ignored" if len(lines) > len(images) else ""))
    by_order = sorted(str(p) for p in root.iterdir() if p.name.endswith("_mask.jpg"))
    mismatched = []
    paired = {str(_mask_for(p)) for p in images}
    for p in sorted(root.iterdir()):
        if p.name.lower().endswith(_MASK_SUFFIXES) and str(p) not in paired:
            notes.append(f"{p.name} belongs to no image")
    for i, image in enumerate(images):
        sid = image.stem
        mask = _mask_for(image)
        if i < len(by_order) and mask is not None and str(mask) != by_order[i]:
            mismatched.append(f"{image.name}: {mask.name} by name, {Path(by_order[i]).name} by order")
        if i >= len(lines):
            yield Problem(sid, f"{text.name} has no line {i + 1} for this image")
            continue
        line = lines[i]
        instruction, sep, target = line.partition("CLIP:")
        instruction = instruction.rstrip()
        if not sep:
            yield Problem(sid, f"line {i + 1} of {text.name} has no 'CLIP:' part: {line[:80]!r}")
            continue
        if not instruction.strip():
            yield Problem(sid, f"the instruction is empty (line {i + 1} of {text.name})")
            continue
        if mask is None:
            yield Problem(sid, f"mask file missing: {image.stem}_mask.jpg")
            continue
        target = target.strip()
        yield Sample(sid, image, instruction.strip(), (mask,), (target,) if target else (), SMARTEDIT)
    if mismatched:
        notes.append(f"masks are paired with images by name; SmartEdit's scripts pair them by sorted order, and "
                     f"the two differ for {len(mismatched)} images (e.g. {mismatched[0]})")


def iter_dataset(path: str | Path, layout: str | None = None, check: str = "header",
                 text_file: str | Path | None = None, notes: list[str] | None = None) -> Iterator[Sample | Problem]:
    """Entries one at a time: a ``Sample`` when usable (after ``check``), else a ``Problem``.

    ``notes`` (a list) receives remarks about the whole dataset. Raises DatasetError only when the
    dataset cannot be read at all.
    """
    if check not in CHECKS:
        raise InputError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
    p = Path(path)
    layout = layout or detect_layout(p)
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    notes = notes if notes is not None else []
    root = (p.parent if p.is_file() else p) if layout == CIEBENCH else p
    entries = _iter_ciebench(p) if layout == CIEBENCH else _iter_smartedit(p, notes, text_file)
    seen: set[str] = set()
    for item in entries:
        if item.id in seen:
            yield Problem(item.id, "the id appears twice in the dataset; only the first is used")
            continue
        seen.add(item.id)
        if isinstance(item, Problem):
            yield item
            continue
        try:
            _verify(item, check, root)
        except SampleError as e:
            yield Problem(item.id, e.reason.replace(str(root) + os.sep, ""))
            continue
        if not item.targets:
            notes.append(f"sample {item.id} has no CLIP target text: its CLIP score will be not computed")
        yield item


def read_dataset(path: str | Path, layout: str | None = None, check: str = "header",
                 text_file: str | Path | None = None) -> Dataset:
    """All entries of a dataset: usable samples, problems (id, reason), notes. See the module doc."""
    p = Path(path)
    layout = layout or detect_layout(p)
    notes: list[str] = []
    out = Dataset(p.parent if p.is_file() else p, layout, notes=notes)
    for item in iter_dataset(p, layout, check, text_file, notes):
        (out.problems if isinstance(item, Problem) else out.samples).append(item)
    return out


__all__ = [
    "CHECKS",
    "CIEBENCH",
    "LAYOUTS",
    "MASK_THRESHOLD",
    "SMARTEDIT",
    "Dataset",
    "DatasetError",
    "LoadedSample",
    "Problem",
    "Sample",
    "SampleError",
    "detect_layout",
    "iter_dataset",
    "load_mask",
    "load_sample",
    "read_dataset",
]
