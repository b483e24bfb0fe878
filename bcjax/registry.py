"""The public serving API under its first name: ``bcjax.registry.open``.

Serving lives in :mod:`bcjax.serving`; this module keeps
``registry.open(path)`` and its types where users and scripts import them.
"""

from bcjax.serving import KINDS, BackwardChain, EmbeddingRegistry, open  # noqa: A004

__all__ = ["KINDS", "BackwardChain", "EmbeddingRegistry", "open"]
