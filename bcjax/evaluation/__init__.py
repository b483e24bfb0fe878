"""What is measured and how it is reported: metrics, tables and plots.

Recall@K of the intended task (:mod:`~bcjax.evaluation.recall`), alignment
errors between versions (:mod:`~bcjax.evaluation.alignment`), the consumers'
metrics (:mod:`~bcjax.evaluation.metrics`), and the comparison table of one
seed and over seeds with intervals: as records, Markdown and CSV, and plots.
"""
