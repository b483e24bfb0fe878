"""Consumers across a bridge: classifiers trained on old vectors, fed bridged ones.

A team that built a classifier on the old version's vectors keeps it when the
embedding model is upgraded; a bridge is only as good as what such a
consumer still gets right. Two consumers stand for them
(:data:`CONSUMERS`): a logistic regression and a small MLP (one ReLU hidden
layer), each trained on the training rows' old vectors and their labels, its
best validation step kept (early stopping by validation accuracy on a part
of the training rows it splits off itself).

They are then scored on the test rows three ways (:func:`consumer_results`):

* on the test rows' **old** vectors (what the consumer had);
* on their **bridged** new vectors (what it is served after the upgrade),
  with the **negative-flip rate**: the share of test rows the consumer got
  right on the old vector and wrong on the bridged one (Yan et al.,
  "Positive-Congruent Training", CVPR 2021);
* and, for reference, a consumer of the same kind **retrained** on the new
  vectors and scored on them: what re-indexing and retraining would give.

Consumers see L2-normalised rows: every measure of :mod:`bcjax.align` is a
cosine, and a bridge fitted on normalised rows serves vectors of unit length
whatever the stored vectors' lengths were, so only directions are compared.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax.align.moments import normalize_rows
from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class ConsumerHP:
  """A consumer's hyper-parameters.

  Attributes:
    hidden: width of the ReLU hidden layer; 0 is a logistic regression.
    learning_rate: AdamW's step size.
    weight_decay: AdamW's decoupled weight decay.
    batch_size: rows per step, sampled with replacement (all rows when fewer).
    steps: training steps at most.
    eval_every: steps between validation checks; the best check is kept.
    validation_fraction: share of the training rows held out for them.
  """

  hidden: int = 0
  learning_rate: float = 1e-2
  weight_decay: float = 1e-4
  batch_size: int = 1024
  steps: int = 1000
  eval_every: int = 50
  validation_fraction: float = 0.2


CONSUMERS = {
  "logistic regression": ConsumerHP(),
  "mlp": ConsumerHP(hidden=128, learning_rate=3e-3),
}


def _init(key, dim: int, hidden: int, classes: int) -> dict:
  if hidden == 0:
    return {"w": jnp.zeros((dim, classes)), "b": jnp.zeros((classes,))}
  k1, k2 = jax.random.split(key)
  glorot = jax.nn.initializers.glorot_uniform()
  return {
    "w1": glorot(k1, (dim, hidden)),
    "b1": jnp.zeros((hidden,)),
    "w": glorot(k2, (hidden, classes)),
    "b": jnp.zeros((classes,)),
  }


def _logits(params: dict, x: jax.Array) -> jax.Array:
  if "w1" in params:
    x = jax.nn.relu(x @ params["w1"] + params["b1"])
  return x @ params["w"] + params["b"]


def _optimizer(learning_rate: float, weight_decay: float):
  return optax.adamw(learning_rate, weight_decay=weight_decay)


@functools.partial(
  jax.jit, static_argnames=("steps", "batch", "learning_rate", "weight_decay")
)
def _train_steps(
  params, state, x, y, key, first, *, steps, batch, learning_rate, weight_decay
):
  """``steps`` AdamW steps on batches drawn from ``fold_in(key, step)``."""
  optimizer = _optimizer(learning_rate, weight_decay)

  def loss(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(_logits(p, xb), yb).mean()

  def step(carry, i):
    p, s = carry
    rows = jax.random.randint(jax.random.fold_in(key, first + i), (batch,), 0, len(x))
    grads = jax.grad(loss)(p, x[rows], y[rows])
    updates, s = optimizer.update(grads, s, p)
    return (optax.apply_updates(p, updates), s), None

  (params, state), _ = jax.lax.scan(step, (params, state), jnp.arange(steps))
  return params, state


@jax.jit
def _predict(params, x):
  return jnp.argmax(_logits(params, x), axis=-1)


@dataclasses.dataclass(frozen=True)
class Consumer:
  """A trained classifier of L2-normalised rows.

  Attributes:
    params: its weights (``w``, ``b``; ``w1``, ``b1`` with a hidden layer).
    best_step: the training step whose weights were kept.
    validation_accuracy: their accuracy on the held-out training rows.
  """

  params: dict
  best_step: int
  validation_accuracy: float

  def predict(self, x) -> np.ndarray:
    """``(n,)`` class indices of ``(n, d)`` rows."""
    return np.asarray(_predict(self.params, jnp.asarray(normalize_rows(_f32(x)))))


def train(x, y, num_classes: int, hp: ConsumerHP = ConsumerHP(), seed: int = 0):
  """A consumer of ``hp``'s kind trained on rows ``x`` with labels ``y``.

  Args:
    x: ``(n, d)`` training rows (normalised here).
    y: ``(n,)`` integer classes in ``[0, num_classes)``.
    num_classes: the number of classes.
    hp: its hyper-parameters.
    seed: seeds the validation split, the initialisation and the batches.

  Returns:
    The :class:`Consumer` at its best validation check.
  """
  x, y = normalize_rows(_f32(x)), np.asarray(y)
  if y.shape != (len(x),) or len(x) < 2:
    raise InputError(
      f"a consumer needs two or more rows, one label each: got {len(x)} rows and "
      f"labels of shape {y.shape}"
    )
  order = np.random.default_rng([seed, 7]).permutation(len(x))
  held = min(max(1, round(hp.validation_fraction * len(x))), len(x) - 1)
  val, fit = order[:held], order[held:]
  key = jax.random.key(seed)
  params = _init(jax.random.fold_in(key, 0), x.shape[1], hp.hidden, num_classes)
  state = _optimizer(hp.learning_rate, hp.weight_decay).init(params)
  xf, yf = jnp.asarray(x[fit]), jnp.asarray(y[fit], jnp.int32)
  xv, yv = jnp.asarray(x[val]), np.asarray(y[val])
  batch = min(hp.batch_size, len(fit))
  best = Consumer(params, 0, float(np.mean(np.asarray(_predict(params, xv)) == yv)))
  for first in range(0, hp.steps, hp.eval_every):
    params, state = _train_steps(
      params,
      state,
      xf,
      yf,
      jax.random.fold_in(key, 1),
      first,
      steps=min(hp.eval_every, hp.steps - first),
      batch=batch,
      learning_rate=hp.learning_rate,
      weight_decay=hp.weight_decay,
    )
    accuracy = float(np.mean(np.asarray(_predict(params, xv)) == yv))
    if accuracy > best.validation_accuracy:
      best = Consumer(params, min(first + hp.eval_every, hp.steps), accuracy)
  return best


def negative_flip_rate(truth, before, after) -> float:
  """Share of rows right ``before`` and wrong ``after`` (all ``(n,)``)."""
  truth, before, after = np.asarray(truth), np.asarray(before), np.asarray(after)
  return float(np.mean((before == truth) & (after != truth)))


def consumer_results(
  old,
  new,
  bridged,
  labels,
  train_rows,
  test_rows,
  *,
  blended=None,
  seed: int = 0,
  consumers: dict[str, ConsumerHP] | None = None,
) -> dict:
  """Each consumer's accuracy on old, bridged (and blended) test vectors.

  Args:
    old: ``(N, d_old)`` every row's old vector.
    new: ``(N, d_new)`` every row's new vector.
    bridged: ``(len(test_rows), d_old)`` the bridge applied to ``new[test_rows]``.
    labels: ``(N,)`` a label per row (any values; compared for equality).
    train_rows: ``(n_train,)`` rows the consumers are trained on.
    test_rows: ``(n_test,)`` rows they are scored on.
    blended: ``(len(test_rows), d_old)`` blended vectors to score too, or None.
    seed: seeds every consumer's training.
    consumers: name -> hyper-parameters (None: :data:`CONSUMERS`).

  Returns:
    name -> ``accuracy_old``, ``accuracy_bridged``, ``negative_flip_rate``
    (old right, bridged wrong), ``accuracy_retrained`` (a consumer trained
    on new vectors, scored on them), ``best_step`` and, with ``blended``,
    ``accuracy_blended`` and ``negative_flip_rate_blended``.
  """
  classes, y = np.unique(np.asarray(labels), return_inverse=True)
  train_rows, test_rows = np.asarray(train_rows), np.asarray(test_rows)
  truth = y[test_rows]
  out = {}
  for name, hp in (consumers or CONSUMERS).items():
    consumer = train(old[train_rows], y[train_rows], len(classes), hp, seed)
    before = consumer.predict(old[test_rows])
    after = consumer.predict(bridged)
    retrained = train(new[train_rows], y[train_rows], len(classes), hp, seed)
    row = {
      "accuracy_old": float(np.mean(before == truth)),
      "accuracy_bridged": float(np.mean(after == truth)),
      "negative_flip_rate": negative_flip_rate(truth, before, after),
      "accuracy_retrained": float(np.mean(retrained.predict(new[test_rows]) == truth)),
      "best_step": consumer.best_step,
    }
    if blended is not None:
      mixed = consumer.predict(blended)
      row["accuracy_blended"] = float(np.mean(mixed == truth))
      row["negative_flip_rate_blended"] = negative_flip_rate(truth, before, mixed)
    out[name] = row
  return out


def backfill_curves(
  new,
  forwarded,
  labels,
  train_rows,
  test_rows,
  orders: dict[str, np.ndarray],
  fractions,
  *,
  seed: int = 0,
  consumers: dict[str, ConsumerHP] | None = None,
) -> dict:
  """Consumers of the new model reading a backfilling index's test rows.

  Each consumer is trained on the training rows' new vectors (where
  backfilling is headed); at a backfilled fraction ``f`` a test row holds its
  new vector if the order has reached it, else its forward-mapped old one
  (as :func:`bcjax.align.backfill.gallery_at` mixes them), and the curve is
  the consumer's accuracy on those rows.

  Args:
    new: ``(N, d_new)`` every row's new vector.
    forwarded: ``(N, d_new)`` every row's ``F(z_old)``.
    labels: ``(N,)`` a label per row.
    train_rows: ``(n_train,)`` rows the consumers are trained on.
    test_rows: ``(n_test,)`` rows they are scored on.
    orders: order name -> ``(N,)`` backfilling order (a permutation).
    fractions: the backfilled fractions, increasing in ``[0, 1]``.
    seed: seeds every consumer's training.
    consumers: name -> hyper-parameters (None: :data:`CONSUMERS`).

  Returns:
    consumer name -> order name -> ``(len(fractions),)`` accuracies.
  """
  classes, y = np.unique(np.asarray(labels), return_inverse=True)
  train_rows, test_rows = np.asarray(train_rows), np.asarray(test_rows)
  new, forwarded = np.asarray(new), np.asarray(forwarded)
  truth = y[test_rows]
  out = {}
  for name, hp in (consumers or CONSUMERS).items():
    model = train(new[train_rows], y[train_rows], len(classes), hp, seed)
    right_new = model.predict(new[test_rows]) == truth
    right_old = model.predict(forwarded[test_rows]) == truth
    out[name] = {}
    for order_name, order in orders.items():
      # A test row is backfilled at f once round(f N) rows of the order are.
      position = np.empty(len(new), np.int64)
      position[np.asarray(order)] = np.arange(len(new))
      out[name][order_name] = [
        float(
          np.mean(
            np.where(position[test_rows] < round(f * len(new)), right_new, right_old)
          )
        )
        for f in fractions
      ]
  return out


def _f32(x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if x.ndim != 2:
    raise InputError(f"consumer rows must be (rows, dims), got shape {x.shape}")
  return x
