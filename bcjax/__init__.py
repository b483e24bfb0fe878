"""bcjax: backward compatible embeddings in JAX/Flax."""

__version__ = "0.1.0"
