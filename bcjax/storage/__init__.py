"""What a run keeps on disk, and how it is kept safe.

Orbax checkpoints of every version (:mod:`~bcjax.storage.checkpoints`) and of
the epochs inside one (:mod:`~bcjax.storage.progress`), the workdir's lock,
recorded config and fingerprint (:mod:`~bcjax.storage.workdir`), the typed
per-version result records (:mod:`~bcjax.storage.results`), and files written
whole or not at all (:mod:`~bcjax.storage.atomic_files`). Serving what is kept
is :mod:`bcjax.registry`.
"""
