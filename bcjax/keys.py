"""Named PRNG key streams: every key of a run is derived here, from its seed.

The run's root key ``jax.random.key(seed)`` is split into streams by
``fold_in`` with the constants below, one per purpose, so that no two
purposes can ever draw the same key:

* ``VERSIONS``: per strategy (by a hash of its name) and version ``k``, the
  key of that version; inside it, :func:`stream` separates model
  initialisation, the training epochs, B_k's initialisation and a post-hoc
  fit's epochs;
* ``CONSUMERS``: per unintended task (by a hash of its name), the key of its
  consumer models;
* ``EMBEDDING_SEEDS``: per embedding seed ``i >= 1`` (``config.num_seeds``),
  the root that the ``VERSIONS`` stream of that seed is drawn from. Seed 0
  keeps the run's root key itself, so that a one-seed run and seed 0 of a
  many-seed run draw the same keys. Consumers draw from the run's root for
  every embedding seed: their seeds are ``config.consumer.seeds``.

Below the streams, every loop that draws per epoch, per consumer model or
per start version folds its index in here too (:func:`epoch_key`,
:func:`consumer_model_key`, :func:`start_version_key`): no module splits a
key of its own.

Changing a constant changes every number of a run that draws from it.
"""

from __future__ import annotations

import hashlib

import jax

# Streams of the run's root key.
VERSIONS = 1
CONSUMERS = 2
EMBEDDING_SEEDS = 3

# Streams of one (strategy, version) key.
STREAMS = {
  "model_init": 1,  # M_k's fresh variables
  "epochs": 2,  # epoch e draws fold_in(stream, e): sampling, batches
  "transform_init": 3,  # B_k's initial parameters
  "posthoc": 4,  # a post-hoc fit of B_k (its epochs fold in e)
}


def hash_name(name: str) -> int:
  """A stable 28-bit integer of a name, to fold into PRNG keys."""
  return int(hashlib.sha256(name.encode()).hexdigest()[:7], 16)


def embedding_root(seed: int, embedding_seed: int = 0) -> jax.Array:
  """The root key of embedding seed ``embedding_seed`` in a run of ``seed``.

  Seed 0 is the run's root key (a one-seed run's keys, unchanged); seed
  ``i >= 1`` is ``fold_in(fold_in(root, EMBEDDING_SEEDS), i)``, a stream no
  other purpose draws from.
  """
  root = jax.random.key(seed)
  if embedding_seed == 0:
    return root
  return jax.random.fold_in(jax.random.fold_in(root, EMBEDDING_SEEDS), embedding_seed)


def version_key(seed: int, strategy: str, k: int, embedding_seed: int = 0) -> jax.Array:
  """The key of version ``k`` of ``strategy`` in a run of ``seed``.

  Args:
    seed: ``config.seed``.
    strategy: the strategy's stable id (``ResolvedStrategy.id``, its
      canonical name: an alias draws its name's keys, and a name with
      ``@`` hyperparameter settings the keys of the name without them).
    k: the version.
    embedding_seed: which of the ``config.num_seeds`` embedding seeds.
  """
  per_strategy = jax.random.fold_in(
    jax.random.fold_in(embedding_root(seed, embedding_seed), VERSIONS),
    hash_name(strategy),
  )
  return jax.random.fold_in(per_strategy, k)


def consumer_key(seed: int, task: str) -> jax.Array:
  """The key of the consumer models of ``task`` in a run of ``seed``."""
  return jax.random.fold_in(
    jax.random.fold_in(jax.random.key(seed), CONSUMERS), hash_name(task)
  )


def stream(key: jax.Array, name: str) -> jax.Array:
  """The stream ``name`` (one of :data:`STREAMS`) of a version's key."""
  return jax.random.fold_in(key, STREAMS[name])


def epoch_key(key: jax.Array, epoch: int) -> jax.Array:
  """The key of epoch ``epoch`` of a fit drawing from ``key``.

  A resumed fit replays the same epochs from it (:mod:`bcjax.storage.progress`).
  """
  return jax.random.fold_in(key, epoch)


def consumer_model_key(key: jax.Array, hidden: int, seed: int) -> jax.Array:
  """The key of consumer seed ``seed`` of hidden width ``hidden`` in a task's
  grid, drawn from the task's key (:func:`consumer_key`)."""
  return jax.random.fold_in(jax.random.fold_in(key, hidden), seed)


def start_version_key(key: jax.Array, start: int) -> jax.Array:
  """The key of a task's consumers that start at version ``start``.

  Version 0's is ``key`` itself, so such a consumer is the main job's.
  """
  return key if start == 0 else jax.random.fold_in(key, start)
