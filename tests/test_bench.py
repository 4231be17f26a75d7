"""The benchmark runner end to end on ciebench-dev: oracle mode (bit-exact background on every sample),
resuming (after --limit and after a killed process) gives the same tables, malformed entries become
recorded failures, the SmartEdit layout, and the full pipeline with tiny perception models, the tiny
diffusers pipeline and an LLM (a scripted server where determinism matters, SmolLM2 on llama.cpp)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cielr_core.bench.datasets import read_dataset
from cielr_core.bench.files import read_record, record_path
from cielr_core.bench.options import BenchModels, BenchOptions
from cielr_core.bench.report import markdown
from cielr_core.bench.runner import run_bench
from cielr_core.editing import EditSettings
from cielr_core.pipeline import PipelineSettings
from tests.conftest import CIEBENCH, REPO
from tests.fixtures.llm_servers import Reply, first_enum, schema_name
from tests.fixtures.sd_models import tiny_inpaint_pipeline_dir  # noqa: F401  (session fixture)

SIZES = (256,)  # the protocol at one size keeps these runs short; the CLI test uses both
EDIT = EditSettings(working_size=64, context=16)
FINGERPRINT = {"engine": "tiny diffusers, 1 step, cfg 1", "working_size": 64}
READABLE = [s.id for s in read_dataset(CIEBENCH, check="full").samples]  # 19 of 20: "5" has a mask of another size


# ------------------------------------------------------------------------------- shared set-up

@pytest.fixture(scope="module")
def engine(tiny_inpaint_pipeline_dir):  # noqa: F811
    from cielr_core.editing.diffusers_engine import DiffusersEngine, load_inpaint_pipeline
    from cielr_core.editing.engine import SamplerSettings

    return DiffusersEngine(load_inpaint_pipeline(tiny_inpaint_pipeline_dir), SamplerSettings(steps=1, cfg=1.0))


@pytest.fixture(scope="module")
def oracle_models(engine) -> BenchModels:
    from cielr_core.evaluation import load_clip, load_lpips

    # as the command line loads them: no weights here, so both report why they are not computed
    return BenchModels(engine=engine, settings=PipelineSettings(edit=EDIT), lpips=load_lpips(), clip=load_clip())


def oracle_options(out: Path, dataset: Path = CIEBENCH, **kw) -> BenchOptions:
    return BenchOptions(dataset=dataset, out=out, oracle=True, sizes=SIZES, progress=False, **kw)


@pytest.fixture(scope="module")
def full_oracle(tmp_path_factory, oracle_models):
    """One full oracle pass over all 20 entries of ciebench-dev (19 readable)."""
    out = tmp_path_factory.mktemp("bench") / "oracle-full"
    return run_bench(oracle_options(out), oracle_models, FINGERPRINT)


def no_models():
    raise AssertionError("nothing was left to run, so no model should have been loaded")


@pytest.fixture(scope="module")
def first_eight(tmp_path_factory, full_oracle) -> Path:
    """The straight run's tables for the first 8 entries ("5", the dataset problem, among them), made from
    its own records: nothing is left to run, so no model loads. Resumed runs of 8 entries compare to it."""
    out = tmp_path_factory.mktemp("bench") / "first-eight"
    (out / "samples").mkdir(parents=True)
    for sid in [str(i) for i in range(8)]:
        shutil.copy(record_path(full_oracle.out, sid), record_path(out, sid))
    shutil.copy(full_oracle.out / "run.json", out / "run.json")
    run_bench(oracle_options(out, limit=8), no_models, FINGERPRINT)
    return out


def read_csv(path: Path, drop_prefixes: tuple[str, ...] = ()) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if not name.startswith(drop_prefixes)]
    return [[row[i] for i in keep] for row in rows]


def deterministic_parts(out: Path) -> dict:
    """What must not change between an interrupted-and-resumed run and a straight one: the metrics table
    (CSV and Markdown), the per-sample results without the timing columns, the failures."""
    md = (out / "summary.md").read_text()
    return {"summary.csv": (out / "summary.csv").read_text(),
            "results": read_csv(out / "results.csv", ("seconds_", "peak_rss")),
            "metrics.md": md[md.index("## Metrics"):md.index("## Time per stage")]}


# ------------------------------------------------------------------------------- oracle

def test_oracle_full_pass_background_is_bit_exact_on_every_sample(full_oracle):
    report = full_oracle
    assert report.entries == 20 and report.ran == 19 and report.skipped == 0
    ok = [r for r in report.records if r.status == "ok"]
    assert [r.id for r in ok] == READABLE
    for r in ok:
        m = r.metrics
        assert m["strict_psnr"].value == math.inf, r.id
        assert m["strict_max_diff"].value == 0, r.id
        assert m["outside_edit_psnr"].value == math.inf, r.id
        assert m["iou"].value == 1.0, r.id  # grow 0: the edited region is the ground-truth mask
        assert r.plan["actions"][0]["op"] == "replace" and r.plan["actions"][0]["prompt"]
        assert r.edited_pixels > 0
    # the record on disk says the same, infinities written as "inf"
    stored = json.loads(record_path(report.out, ok[0].id).read_text())
    assert stored["metrics"]["strict_psnr"] == {"status": "ok", "value": "inf"}
    assert stored["status"] == "ok" and stored["stage"] is None and stored["failure"] is None
    # the saved image tells the same story: outside the ground-truth mask, every pixel is the input's
    sample = next(s for s in read_dataset(CIEBENCH).samples if s.id == "0")
    from cielr_core.bench.datasets import load_sample

    loaded = load_sample(sample)
    edited = np.asarray(Image.open(report.out / ok[0].image))
    assert np.array_equal(edited[~loaded.mask], loaded.image[~loaded.mask])
    assert not np.array_equal(edited[loaded.mask], loaded.image[loaded.mask])  # and the inside was edited
    s = report.summary["metrics"]["strict_psnr"]
    assert s["protocol"]["n"] == 19 and s["protocol"]["n_inf"] == 19 and s["protocol"]["mean"] == math.inf
    assert s["all"]["failed"] == 1 and s["all"]["success_rate"] == pytest.approx(19 / 20)


def test_oracle_failures_are_recorded_and_counted_both_ways(full_oracle):
    out = full_oracle.out
    bad = read_record(record_path(out, "5"), "5")
    assert bad.status == "failed" and bad.stage == "dataset"
    assert "320x240" in bad.failure and "796x597" in bad.failure
    rows = {r[0]: r for r in read_csv(out / "summary.csv")}
    header = read_csv(out / "summary.csv")[0]
    psnr = dict(zip(header, rows["strict_psnr"]))
    assert (psnr["total"], psnr["ok"], psnr["failed"], psnr["protocol_n"], psnr["protocol_mean"]) == \
        ("20", "19", "1", "19", "inf")
    iou = dict(zip(header, rows["iou"]))
    assert float(iou["protocol_mean"]) == 1.0 and float(iou["mean_failures_as_worst"]) == pytest.approx(19 / 20)
    # not computed (no LPIPS / CLIP weights here) is reported as such, never as a zero
    lpips = dict(zip(header, rows["lpips_256"]))
    assert (lpips["ok"], lpips["not_computed"], lpips["protocol_mean"]) == ("0", "19", "")
    md = (out / "summary.md").read_text()
    assert "| 5 | dataset | mask 5/5_mask.png is 320x240 but the image is 796x597 |" in md
    assert "inf (19 of 19 inf)" in md and "### Not computed" in md and "no LPIPS weights given" in md
    results = read_csv(out / "results.csv")
    assert len(results) == 21 and [r[1] for r in results[1:]].count("failed") == 1
    timings = read_csv(out / "timings.csv")
    assert [r[0] for r in timings[1:]] == ["load", "scene", "edit", "metrics", "total"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["samples"] == {"total": 20, "ok": 19, "failed": 1,
                                                           "failed_by_stage": {"dataset": 1}}
    assert summary["memory"]["process_peak_rss_mb"] > 0
    assert all(r.peak_rss_mb.get("edit", 0) > 0 for r in full_oracle.records if r.status == "ok")


def test_resume_after_limit_gives_the_same_table(tmp_path, oracle_models, first_eight):
    out = tmp_path / "resumed"
    first = run_bench(oracle_options(out, limit=3), oracle_models, FINGERPRINT)
    assert first.entries == 3 and first.ran == 3
    assert (out / "summary.md").read_text().count("| ") > 0
    second = run_bench(oracle_options(out, limit=8), oracle_models, FINGERPRINT)
    assert second.skipped == 3 and second.ran == 4  # 8 entries: 3 done, "5" is a dataset problem
    assert deterministic_parts(out) == deterministic_parts(first_eight)
    # a third run finds everything done and loads no model at all
    third = run_bench(oracle_options(out, limit=8), no_models, FINGERPRINT)
    assert third.ran == 0 and third.skipped == 7
    assert deterministic_parts(out) == deterministic_parts(first_eight)


def test_resume_with_other_settings_is_refused(tmp_path, oracle_models):
    from cielr_core.bench.options import BenchError

    out = tmp_path / "run"
    run_bench(oracle_options(out, limit=1), oracle_models, FINGERPRINT)
    with pytest.raises(BenchError, match=r"another configuration.*working_size"):
        run_bench(oracle_options(out, limit=1), no_models, {**FINGERPRINT, "working_size": 128})
    with pytest.raises(BenchError, match="sizes"):
        run_bench(BenchOptions(CIEBENCH, out, oracle=True, sizes=(256, 512), progress=False, limit=1), no_models,
                  FINGERPRINT)
    # --overwrite starts again
    again = run_bench(oracle_options(out, limit=1, overwrite=True), oracle_models, {**FINGERPRINT, "working_size": 1})
    assert again.ran == 1


def test_a_damaged_record_is_run_again(tmp_path, oracle_models, full_oracle):
    out = tmp_path / "damaged"
    shutil.copytree(full_oracle.out, out)
    path = record_path(out, "2")
    path.write_text(path.read_text()[:100])  # as if written by something that was killed (bench writes atomically)
    report = run_bench(oracle_options(out), oracle_models, FINGERPRINT)
    assert report.ran == 1 and report.skipped == 18
    assert deterministic_parts(out) == deterministic_parts(full_oracle.out)


def test_cli_bench_killed_mid_way_resumes_to_the_same_table(tmp_path, tiny_inpaint_pipeline_dir,  # noqa: F811
                                                            first_eight, capsys):
    """A real interruption: the command is killed (SIGKILL) after a few samples, then run again (here, in
    this process: a second child would import torch and diffusers again for what main() does here)."""
    from cielr_core.__main__ import main

    out = tmp_path / "killed"
    args = ["bench", str(CIEBENCH), "--out", str(out), "--oracle", "--limit", "8", "--inpaint",
            str(tiny_inpaint_pipeline_dir), "--steps", "1", "--cfg", "1", "--working-size", "64", "--context", "16",
            "--sizes", "256", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "cielr_core", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in (out / "samples").glob("*.json") if p.stem != "5"]
            if len(done) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    finished = {p.stem for p in (out / "samples").glob("*.json")}
    assert 3 <= len(finished - {"5"}) < 7
    for p in (out / "samples").glob("*.json"):  # every record on disk is whole
        assert read_record(p, p.stem) is not None
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err[-3000:]
    assert capsys.readouterr().out.strip() == str(out / "summary.md")
    # the same table as the straight in-process run, restricted to the same 8 entries
    assert deterministic_parts(out) == deterministic_parts(first_eight)


# ------------------------------------------------------------------------------- malformed entries

def _jpeg(array: np.ndarray, path: Path, mode: str = "L") -> None:
    Image.fromarray(array).convert(mode).save(path, format="JPEG", quality=90)


@pytest.fixture
def malformed_dataset(tmp_path) -> Path:
    """A small CIEBench-layout copy of ciebench-dev with one entry per kind of problem."""
    root = tmp_path / "malformed"
    src = json.loads((CIEBENCH / "data.json").read_text())
    entries: dict[str, dict] = {}

    def copy(key: str, name: str, **change) -> dict:
        (root / name).mkdir(parents=True, exist_ok=True)
        entry = dict(src[key])
        for field in ("image path", "mask path"):
            paths = entry[field] if isinstance(entry[field], list) else [entry[field]]
            new = []
            for p in paths:
                target = root / name / Path(p).name
                shutil.copy(CIEBENCH / p, target)
                new.append(f"{name}/{Path(p).name}")
            entry[field] = new if field == "mask path" else new[0]
        entry.update(change)
        entries[name] = entry
        return entry

    copy("0", "good")
    e = copy("1", "missing_image")
    (root / e["image path"]).unlink()
    e = copy("2", "missing_mask")
    (root / e["mask path"][0]).unlink()
    copy("5", "wrong_size")  # the real sample whose mask is 320x240 for a 796x597 photo
    # a greyscale JPEG mask with a .png name (as every CIEBench mask) and an RGB JPEG one: read, binarised
    e = copy("3", "grey_jpeg_mask")
    mask = np.asarray(Image.open(root / e["mask path"][0]).convert("L"))
    _jpeg(mask, root / e["mask path"][0])
    e = copy("4", "rgb_jpeg_mask")
    _jpeg(np.asarray(Image.open(root / e["mask path"][0]).convert("L")), root / e["mask path"][0], "RGB")
    e = copy("6", "empty_mask")  # JPEG noise below the threshold only
    _jpeg(np.full((597, 796), 60, np.uint8), root / e["mask path"][0])
    copy("7", "empty_instruction", instruction="   ")
    e = copy("8", "truncated_image")
    data = (root / e["image path"]).read_bytes()
    (root / e["image path"]).write_bytes(data[: len(data) // 3])
    e = copy("9", "not_an_image")
    (root / e["image path"]).write_text("this is not a photo")
    entries["no_fields"] = {"instruction": "replace the lamp"}
    (root / "data.json").write_text(json.dumps(entries, indent=1))
    return root


def test_malformed_entries_are_recorded_failures_with_reasons(malformed_dataset, tmp_path, oracle_models):
    report = run_bench(oracle_options(tmp_path / "out", dataset=malformed_dataset), oracle_models, FINGERPRINT)
    by_id = {r.id: r for r in report.records}
    assert list(by_id) == ["good", "missing_image", "missing_mask", "wrong_size", "grey_jpeg_mask",
                           "rgb_jpeg_mask", "empty_mask", "empty_instruction", "truncated_image", "not_an_image",
                           "no_fields"]  # dataset order, nothing dropped
    ok = {k for k, r in by_id.items() if r.status == "ok"}
    assert ok == {"good", "grey_jpeg_mask", "rgb_jpeg_mask"}
    for k in ok:
        assert by_id[k].metrics["strict_psnr"].value == math.inf
    expected = {
        "missing_image": ("dataset", "image file missing: missing_image/1.png"),
        "missing_mask": ("dataset", "mask file missing: missing_mask/2_mask.png"),
        "wrong_size": ("dataset", "is 320x240 but the image is 796x597"),
        "empty_mask": ("load", "the mask is empty after thresholding at 127"),
        "empty_instruction": ("dataset", "the instruction is empty"),
        "truncated_image": ("load", "damaged or unreadable"),
        "not_an_image": ("dataset", "is not an image Pillow can read"),
        "no_fields": ("dataset", "the entry has no 'image path', 'mask path'"),
    }
    for k, (stage, reason) in expected.items():
        r = by_id[k]
        assert r.status == "failed" and r.stage == stage and reason in r.failure, (k, r)
        assert read_record(record_path(report.out, k), k).failure == r.failure
    s = report.summary
    assert s["samples"] == {"total": 11, "ok": 3, "failed": 8, "failed_by_stage": {"dataset": 6, "load": 2}}
    assert s["metrics"]["strict_psnr"]["all"] == {**s["metrics"]["strict_psnr"]["all"], "ok": 3, "failed": 8}
    md = (report.out / "summary.md").read_text()
    for k, (stage, reason) in expected.items():
        assert f"| {k} | {stage} | " in md
    assert "failed: 8 (dataset 6, load 2)" in md


def test_smartedit_layout(tmp_path, oracle_models):
    """SmartEdit's reasoning layout: X.png, X_mask.jpg, one 'instruction CLIP: target' line per image in
    sorted() order of the image names ("10.png" before "2.png")."""
    root = tmp_path / "6-Reasoning"
    root.mkdir()
    data = json.loads((CIEBENCH / "data.json").read_text())
    for name, key in (("1", "1"), ("10", "10"), ("2", "2")):
        Image.open(CIEBENCH / data[key]["image path"]).convert("RGB").save(root / f"{name}.png")
        Image.open(CIEBENCH / data[key]["mask path"][0]).convert("L").save(root / f"{name}_mask.jpg")
    lines = [f"{data[k]['instruction']} CLIP: {data[k]['CLIP'][0]}" for k in ("1", "10", "2")]
    (root / "reason_test.txt").write_text("\n".join(lines) + "\n")
    report = run_bench(oracle_options(tmp_path / "out", dataset=root), oracle_models, FINGERPRINT)
    assert report.summary["layout"] == "smartedit"
    assert [r.id for r in report.records] == ["1", "10", "2"]
    for r in report.records:
        assert r.status == "ok" and r.metrics["strict_psnr"].value == math.inf
    assert report.records[1].plan["actions"][0]["prompt"] == data["10"]["CLIP"][0]


# ------------------------------------------------------------------------------- the pipeline

def scripted_answer(body: dict, fail_plan_for: str = "") -> Reply:
    """A deterministic LLM: answers each request by the schema it asks for."""
    name = schema_name(body)
    text = json.dumps(body["messages"])
    if name == "LabelList":
        return Reply(content=json.dumps({"labels": ["lamp", "tv"]}))
    if name == "SceneVerdict":
        return Reply(content=json.dumps({"note": "enough", "sufficient": True, "missing_labels": [],
                                         "search_within": None}))
    if name == "PlanAnswer":
        if fail_plan_for and fail_plan_for in text:
            return Reply(content="I cannot do that.")
        target = first_enum(body["response_format"]["json_schema"]["schema"])
        return Reply(content=json.dumps({"actions": [{"op": "replace", "targets": [target],
                                                      "prompt": "a floor lamp"}]}))
    return Reply(status=400, body=json.dumps({"error": {"message": f"unexpected schema {name!r}"}}))


def answer_by_schema(server, fail_plan_for: str = "") -> None:
    server.responder = lambda body: scripted_answer(body, fail_plan_for)


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_sam_path):
    from cielr_core.perception import load_sam

    return load_sam(tiny_sam_path)


def pipeline_models(engine, detector, segmenter, llm, max_rounds: int = 1) -> BenchModels:
    settings = PipelineSettings(box_threshold=0.0, text_threshold=0.0, max_rounds=max_rounds, edit=EDIT)
    return BenchModels(engine=engine, detector=detector, segmenter=segmenter, llm=llm, settings=settings)


def test_pipeline_bench_with_a_scripted_llm(tmp_path, scripted_server, engine, tiny_detector, tiny_segmenter):
    from cielr_core.llm import RemoteLLM

    instruction_1 = json.loads((CIEBENCH / "data.json").read_text())["1"]["instruction"]
    answer_by_schema(scripted_server, fail_plan_for=instruction_1[:40])
    llm = RemoteLLM(scripted_server.base_url, "scripted", timeout=30, max_retries=0)
    models = pipeline_models(engine, tiny_detector, tiny_segmenter, llm)
    options = BenchOptions(CIEBENCH, tmp_path / "pipeline", sizes=SIZES, progress=False, limit=3)
    report = run_bench(options, models, FINGERPRINT)
    r0, r1, r2 = report.records
    for r in (r0, r2):
        assert r.status == "ok", r
        assert set(r.seconds) >= {"load", "labels", "perceive", "scene", "refine", "decompose", "edit", "metrics",
                                  "total"}
        assert r.labels == ["lamp", "tv"] and r.refinement.stop == "sufficient"
        assert r.plan["actions"][0]["prompt"] == "a floor lamp"
        assert r.llm["calls"] == 3 and r.llm["repairs"] == 0
        m = r.metrics
        assert m["outside_edit_psnr"].value == math.inf  # outside the edited region: bit-exact
        assert m["outside_edit_max_diff"].value == 0
        assert 0.0 <= m["iou"].value <= 1.0 and m["strict_psnr"].status == "ok"
    # the sample whose plan the LLM would not write is a recorded failure of the decompose stage
    assert r1.status == "failed" and r1.stage == "decompose" and r1.error_type == "LLMAnswerError"
    assert "not a valid PlanAnswer" in r1.failure and r1.llm["repairs"] == 1
    assert set(r1.seconds) >= {"labels", "perceive", "decompose"}
    t = report.summary["timings"]
    assert set(t) >= {"labels", "perceive", "scene", "refine", "decompose", "edit", "metrics", "total"}
    assert t["perceive"]["samples"] == 2 and t["perceive"]["peak_rss_mb"] > 0
    s = report.summary["metrics"]["iou"]
    assert (s["all"]["ok"], s["all"]["failed"]) == (2, 1)
    assert s["all"]["mean_failures_as_worst"] == pytest.approx(s["protocol"]["mean"] * 2 / 3)
    md = markdown(report.summary)
    assert "| 1 | decompose | LLMAnswerError: The LLM's answer is not a valid PlanAnswer" in md
    assert "LLM: 10 requests" in md  # 3 per sample, and the failed plan's repair round

    # resuming with --limit: the same table as the straight run (the scripted LLM is deterministic)
    resumed = tmp_path / "resumed"
    run_bench(BenchOptions(CIEBENCH, resumed, sizes=SIZES, progress=False, limit=1), models, FINGERPRINT)
    again = run_bench(BenchOptions(CIEBENCH, resumed, sizes=SIZES, progress=False, limit=3), models, FINGERPRINT)
    assert again.skipped == 1 and again.ran == 2
    assert deterministic_parts(resumed) == deterministic_parts(report.out)


def test_pipeline_bench_stops_on_an_unreachable_llm(tmp_path, closed_port_url, engine, tiny_detector,
                                                    tiny_segmenter):
    from cielr_core.llm import LLMConnectionError, RemoteLLM

    llm = RemoteLLM(closed_port_url, "none", timeout=5, max_retries=1)
    models = pipeline_models(engine, tiny_detector, tiny_segmenter, llm)
    out = tmp_path / "down"
    start = time.monotonic()
    with pytest.raises(LLMConnectionError, match="cannot connect"):
        run_bench(BenchOptions(CIEBENCH, out, sizes=SIZES, progress=False, limit=3), models, FINGERPRINT)
    assert time.monotonic() - start < 30
    # no sample was marked finished with an error that was not its own
    assert not list((out / "samples").glob("*.json"))
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and summary["not_run"] == ["0", "1", "2"]
    assert "**Incomplete**" in (out / "summary.md").read_text()


class CappedDetector:
    """The tiny detector keeping only its best boxes: SmolLM2 under llama.cpp's JSON-schema grammar decodes
    about one token a second on two busy cores, and a scene of forty random boxes makes long prompts and
    large id enums; four objects keep this test to a couple of minutes."""

    def __init__(self, inner, n: int = 4):
        self.inner, self.n = inner, n

    def detect(self, image, labels, **kw):
        return self.inner.detect(image, labels, max_detections=self.n, **kw)


@pytest.mark.slow
def test_pipeline_bench_with_smollm2_on_llama_cpp(tmp_path, llama_server, engine, tiny_detector, tiny_segmenter):
    """The real thing, small: SmolLM2-135M behind llama.cpp's OpenAI-compatible server proposes labels,
    refines and writes the plan. A weak model may fail a sample; then the failure is recorded with its
    stage and reason, and counted."""
    from cielr_core.llm import RemoteLLM

    llm = RemoteLLM(llama_server.base_url, llama_server.model, timeout=300, max_retries=1, max_tokens=200)
    models = pipeline_models(engine, CappedDetector(tiny_detector), tiny_segmenter, llm)
    report = run_bench(BenchOptions(CIEBENCH, tmp_path / "smollm2", sizes=SIZES, progress=False, limit=1), models,
                       {"llm": "smollm2"})
    (r,) = report.records
    assert r.id == "0" and r.llm["calls"] >= 2 and r.seconds["labels"] > 0
    if r.status == "ok":
        assert r.labels and r.plan["actions"] and len(r.objects) <= 4
        assert r.metrics["outside_edit_psnr"].value == math.inf
        assert {"perceive", "refine", "decompose", "edit", "metrics"} <= set(r.seconds)
    else:
        assert r.stage in ("labels", "perceive", "scene", "refine", "decompose", "edit") and r.failure
    s = report.summary
    assert s["samples"]["total"] == 1 and s["samples"]["ok"] + s["samples"]["failed"] == 1
    assert s["llm"]["calls"] == r.llm["calls"]
    assert (report.out / "summary.md").is_file() and (report.out / "summary.csv").is_file()


def test_best_of_three_records_every_candidate_and_the_rule(tmp_path, engine, tiny_detector):
    """The authors' best-of-3 protocol: each action sampled three times, the detector's verdict on
    each recorded, the kept one marked, and the selection rule written into the summary."""
    settings = PipelineSettings(edit=dataclasses.replace(EDIT, candidates=3))
    models = BenchModels(engine=engine, detector=tiny_detector, settings=settings)
    report = run_bench(oracle_options(tmp_path / "best3", limit=1), models, FINGERPRINT)
    record = report.records[0]
    assert record.status == "ok", record
    for action in record.verdicts:
        assert [c["number"] for c in action["candidates"]] == [1, 2, 3]
        assert sum(c["kept"] for c in action["candidates"]) == 1
        assert all(c["verdict"]["status"] in ("passed", "failed") and c["verdict"]["evidence"]
                   for c in action["candidates"])
    v = report.summary["verification"]
    assert v["candidates_sampled"] == 3 * len(record.verdicts) == 3 * v["verified"]
    assert sum(v["kept_candidate"].values()) == v["verified"] and "the kept candidate" in v["rule"]
    assert "Selection rule: each action is sampled with seeds s + k" in markdown(report.summary)
