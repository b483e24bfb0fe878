"""The embedding model and what it runs on: PinSAGE over a device graph.

PinSAGE with its item encoder (:mod:`~bcjax.models.pinsage`), the device
pytree of a version's training graph (:mod:`~bcjax.models.device_graph`), and
the sums over relations it aggregates with, in four layouts with their GPU
kernels (:mod:`~bcjax.models.aggregation`, :mod:`~bcjax.models.row_gather`,
:mod:`~bcjax.models.segment_kernel`, :mod:`~bcjax.models.mosaic_kernel`).
"""
