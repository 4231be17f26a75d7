"""The per-sample record the runner writes to ``OUT/samples/<id>.json``, typed.

Records are read back on resume (a file from an older or interrupted run is validated, not
trusted), so they are pydantic models; ``model_dump(mode="json")`` writes the same field names the
tables and readers use, leaving out the optional parts a record does not have.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from ..evaluation import Metric, SampleResult
from .datasets import Problem

RECORD_FORMAT = "cielr-bench-record/1"
RUN_FORMAT = "cielr-bench-run/1"
# Stages in the order they run; "load" decodes the sample, "metrics" evaluates it.
TIME_STAGES = ("load", "labels", "perceive", "scene", "refine", "decompose", "edit", "metrics")
ORACLE = "oracle"
PIPELINE = "pipeline"
DATASET_STAGE = "dataset"  # the dataset reader rejected the entry
WORKER_STAGE = "worker"  # the worker process died under the sample on every attempt


class SampleInfo(BaseModel):
    """The dataset entry the record is about (paths as strings)."""

    id: str
    image_path: str
    instruction: str
    mask_paths: list[str]
    targets: list[str]
    layout: str


class ObjectSummary(BaseModel):
    id: int
    label: str
    score: float
    area: float


class RefinementSummary(BaseModel):
    rounds: int
    stop: str
    added: list[int] = Field(default_factory=list)  # ids of the objects refinement added


class SampleRecord(BaseModel):
    """One sample's result: what ran, what it made, its metrics, times and peak memory.

    ``status`` is "ok" or "failed"; a failed record names the ``stage`` it failed in and the
    ``failure`` reason. The optional parts are absent (not null) in the file when a record has none.
    """

    format: str = RECORD_FORMAT
    id: str
    mode: str
    sample: SampleInfo | None = None
    status: Literal["ok", "failed"] = "ok"
    stage: str | None = None
    failure: str | None = None
    labels: list[str] | None = None
    objects: list[ObjectSummary] | None = None
    refinement: RefinementSummary | None = None
    plan: dict[str, Any] | None = None
    actions: list[str] | None = None
    verdicts: list[dict[str, Any]] | None = None  # every candidate's verdict and which one was kept
    edited_pixels: int | None = None
    metrics: dict[str, Metric] = Field(default_factory=dict)
    error_type: str | None = None
    traceback: str | None = None
    seconds: dict[str, float] = Field(default_factory=dict)
    peak_rss_mb: dict[str, float] = Field(default_factory=dict)
    llm: dict[str, int] | None = None  # LLM usage during this sample
    image: str | None = None  # the edited image, relative to the output folder

    @model_serializer(mode="wrap")
    def _without_absent_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in _ALWAYS}

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def result(self) -> SampleResult:
        """The metrics as ``evaluation.summarise`` counts them (a failed sample fails all of them)."""
        return SampleResult(id=self.id, metrics=self.metrics, failure=self.failure if self.failed else None)


_ALWAYS = {"stage", "failure"}  # written as null when empty, as every record has them


def problem_record(problem: Problem, mode: str) -> SampleRecord:
    """The record of an entry the dataset reader rejected."""
    return SampleRecord(id=problem.id, mode=mode, status="failed", stage=DATASET_STAGE,
                        failure=problem.reason, error_type="DatasetProblem")
