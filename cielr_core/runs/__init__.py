"""Running many samples: hand them out to workers that load their models once, in this process or as
Ray actors on a cluster, and write each result whole or not at all.

- ``files``: atomic writes of a file or a folder, and file names for sample ids.
- ``progress``: one progress bar over all samples, with done, failed and retried counts.
- ``pool``: the work loop (``run_tasks``): tasks in, one delivery per task out, in this process.
- ``cluster``: the same loop on Ray (``--ray``); Ray is imported only there, so a missing Ray
  costs only that option.

The benchmark runner and the batch edits are clients of this package: each brings a worker
factory (it loads the models), the tasks and a delivery function that writes a result. Only the
process that called ``run_tasks`` writes, so a result is written once however often its sample
ran.
"""
