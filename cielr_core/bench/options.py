"""What a benchmark run is given (options, models) and what it returns (the report)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..editing import InpaintEngine
from ..errors import InputError
from ..evaluation import PROTOCOL_SIZES
from ..pipeline import PipelineSettings
from .records import ORACLE, PIPELINE, SampleRecord


class BenchError(InputError):
    """The benchmark cannot run as asked (the output folder holds another configuration, ...)."""


@dataclass
class BenchOptions:
    dataset: Path
    out: Path
    layout: str | None = None  # "ciebench" or "smartedit"; None: detected
    text_file: str | None = None  # SmartEdit: the instruction file, when the folder holds several
    check: str = "header"  # how much the dataset reader verifies up front (see datasets)
    limit: int | None = None  # the first N entries of the dataset (rejected entries included)
    oracle: bool = False
    retry_failed: bool = False
    overwrite: bool = False  # discard the records in ``out`` first
    save_images: bool = True  # OUT/images/<id>.png (edited) and <id>_mask.png (edited region)
    sizes: tuple[int, ...] = PROTOCOL_SIZES
    progress: bool = True  # a progress bar on stderr

    @property
    def mode(self) -> str:
        return ORACLE if self.oracle else PIPELINE


@dataclass
class BenchModels:
    """What a run needs; oracle runs need only ``engine``."""

    engine: InpaintEngine
    detector: Any = None
    segmenter: Any = None
    llm: Any = None
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    lpips: Any = None  # evaluation.LPIPSModel, Unavailable or None (not computed)
    clip: Any = None  # evaluation.CLIPScorer, Unavailable or None
    idcs: bool = False  # IDCS with ``llm`` (describer needs vision)


ModelLoader = Callable[[], BenchModels]


@dataclass
class BenchReport:
    out: Path
    entries: int  # entries in the run (after --limit)
    ran: int  # samples run in this invocation
    skipped: int  # finished earlier, not run again
    records: list[SampleRecord]  # one per entry that has a record, in dataset order
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False
