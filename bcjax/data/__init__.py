"""Interaction data on the host: datasets, their readers and version splits.

The time-sorted interaction log (:mod:`~bcjax.data.graph`), the paper's
train/validation split of each version (:mod:`~bcjax.data.split`), the
dataset registry (:mod:`~bcjax.data.datasets`) and its readers: synthetic,
MovieLens-100K, Amazon 2018 and RecBole atomic files. Nothing here touches a
device or a model; the device-side graph is :mod:`bcjax.models.device_graph`.
"""
