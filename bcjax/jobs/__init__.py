"""Experiment jobs: a config in, a workdir of versions, tables and plots out.

The config and its validation (:mod:`~bcjax.jobs.config`), one strategy's
versions (:mod:`~bcjax.jobs.runner`), the main job over strategies, seeds and
unintended tasks (:mod:`~bcjax.jobs.comparison`), and the job's clock, metric
log and process setup. The absl binaries in ``experiments/`` are thin wrappers
around these.
"""
