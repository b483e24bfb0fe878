"""Training loops: what turns data and components into fitted parameters.

The embedding fit (its jitted epoch :mod:`~bcjax.fitting.train`, its driver
for S embedding seeds :mod:`~bcjax.fitting.version_fit` on the seed axis of
:mod:`~bcjax.fitting.seed_axis`), the post-hoc fit of a backward transform
(:mod:`~bcjax.fitting.posthoc`), the consumer models of
unintended tasks and their task definitions (:mod:`~bcjax.fitting.consumers`,
:mod:`~bcjax.fitting.tasks`), and the host loop and kept-epoch rule they all
share (:mod:`~bcjax.fitting.fit_loop`, :mod:`~bcjax.fitting.selection`).
Fits take and return arrays and records; where files go is the jobs' concern.
"""
