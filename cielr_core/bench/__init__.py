"""The benchmark runner: CIELR (or an oracle) over a dataset, with per-sample records and summary tables.

For each entry of a dataset in the CIEBench or SmartEdit layout (``datasets``), in the
dataset's order: decode the photo and the ground-truth mask, run the method, compute every metric
(``cielr_core.evaluation.evaluate_edit``), and write one JSON record per sample into ``OUT/samples/``.
Then the summary tables are written from all records: ``results.csv`` (one row per sample),
``summary.csv`` (metrics, both ways), ``timings.csv`` (per-stage seconds and peak memory),
``summary.json`` (all of it) and ``summary.md`` (the tables for a report).

- **Resumable**: a sample whose record exists is finished and is not run again, so a run that was
  interrupted (Ctrl-C, a killed process, ``--limit``) continues where it stopped and ends with the
  same tables. Records are written atomically (a killed run never leaves half a record). ``run.json``
  keeps the settings of the run; resuming with other settings is refused (the tables would mix two
  configurations). ``retry_failed`` runs failed samples again.
- **One process or a Ray cluster** (``runs``): samples are handed out one at a time to workers that
  load the models once; on Ray each worker is an actor, a sample whose actor died runs again on
  another (a record ``stage: worker`` after three deaths), and only the run's own process writes,
  so the records and tables are the same as in one process.
- **Failures are results**: an entry the dataset reader rejects (missing file, mask of the wrong
  size, empty instruction, ...) and a sample the method fails on (no plan, a model error, ...) each
  get a record with the stage and the reason, and are counted in every table. ``evaluation.summarise``
  reports each metric both ways: failures dropped (the original protocol) and failures counted.
  Only an unreachable LLM stops the run (it is not a property of a sample, and recording it would
  mark every remaining sample as finished); the records written so far are kept.
- **Oracle mode** uses the ground-truth masks as the plan's regions: a scene of one object per mask
  file, a plan that replaces each with the sample's CLIP target text (or removes it when there is
  none), grow 0. No perception and no LLM run. Every changed pixel then lies inside the
  ground-truth mask, so the strict background PSNR is inf on every sample: the runner's proof that
  editing leaves the background bit-exact.
- **Timings and memory**: per-stage seconds (``PipelineResult.seconds`` plus loading and metrics)
  and the peak resident memory seen during each stage (``runs.memory``: a side thread with psutil).

Modules: ``datasets`` (the two layouts, read into typed samples), ``records`` (the typed per-sample
record), ``options`` (what a run is given and returns), ``files`` (record files and JSON), ``oracle``
(the ground-truth plan), ``runner`` (the worker for one sample, the whole run), ``summary`` (the
numbers the tables show) and ``report`` (CSV and Markdown tables).
"""
