"""The parts a strategy is made of, each a registry by name.

Backward transforms (:mod:`~bcjax.components.transforms`, and the
``softorthogonal`` family of :mod:`~bcjax.components.softorthogonal`,
registered on importing this package) and the exact solvers behind their
closed-form fits (:mod:`~bcjax.components.solvers`), alignment losses
(:mod:`~bcjax.components.losses`), the hyperparameter records every
registered component declares (:mod:`~bcjax.components.hparams`), and chains of transforms
(:mod:`~bcjax.components.chains`). The methods that combine them, and the
strategy grammar that resolves a name into a method, a transform and a loss,
live in :mod:`bcjax.methods`. Nothing here trains, reads files or writes them.
"""

from bcjax.components import softorthogonal  # noqa: F401  (registers it)
