"""bcjax: backward compatible embeddings in JAX/Flax.

At the root: the serving entry point (:mod:`bcjax.registry`), the run's PRNG
streams (:mod:`bcjax.keys`), error types, extension loading and device set-up.
The rest lives in subpackages by purpose: ``data`` and ``models`` (the
embedding model and its inputs), ``components`` and ``methods`` (what a
strategy is made of), ``fitting`` (training loops), ``storage`` (what a run
keeps), ``evaluation`` and ``compatibility`` (what is measured), ``jobs`` (the
experiment jobs) and ``align`` (bridges between a team's own embeddings).
"""

__version__ = "0.1.0"
