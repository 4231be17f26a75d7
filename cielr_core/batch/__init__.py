"""Batch edits: a JSONL manifest of photos and instructions (``manifest``), each line edited by the
method and written as one result folder (``results``), resumably, in one process or on a Ray cluster
(``runner``, through ``cielr_core.runs``), with the run's tables (``summary``).

``OUTPUT_LAYOUT`` is the output folder's description; the command line's help prints it.
"""

OUTPUT_LAYOUT = """\
Output folder (--out):
  <id>/            one folder per manifest line, named by the line's id, written whole or not at all
    result.json    status (ok/failed), the stage and reason of a failure, labels, actions, seconds,
                   LLM use, and the files below with their sizes (a folder missing one is run again)
    image.png      the edited photo (only the plan's regions changed; every other pixel is the input's)
    mask.png       the region the edit may have changed (white)
    scene.json     the scene the plan was made on; preview.png draws it over the photo
    plan.json      the plan that ran
    report.txt     instruction, labels, refinement rounds, plan, each action, verdicts, seconds
    verdicts.json  every candidate's verdict, when verification ran (--verify, --candidates)
  results.csv      one row per line; summary.md and summary.json: counts, manifest problems, failures,
                   time per stage; run.json: the settings (a resumed run must share them)
A failed line keeps what it made before failing. A run started again over the same folder skips the
finished lines and runs the rest (--retry-failed: the failed ones too).
"""
