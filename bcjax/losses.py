"""Training losses of the embedding models, as pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bpr_loss(
  user_emb: jax.Array,
  pos_emb: jax.Array,
  neg_emb: jax.Array,
  weight_decay: float = 1e-2,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Bayesian personalised ranking loss with the paper's embedding L2.

  ``mean(softplus(<u, n> - <u, p>)) + weight_decay * reg`` where
  ``reg = (|U|^2 + |P|^2 + |N|^2) / (2 * batch)`` over the batch embeddings.

  Args:
    user_emb: ``(batch, dim)`` embeddings of the users.
    pos_emb: ``(batch, dim)`` embeddings of their positive items.
    neg_emb: ``(batch, dim)`` embeddings of their negative items.
    weight_decay: weight of the embedding L2 term.

  Returns:
    The scalar loss and ``{"bpr", "reg"}``, its two parts.
  """
  pos_scores = jnp.sum(user_emb * pos_emb, axis=-1)
  neg_scores = jnp.sum(user_emb * neg_emb, axis=-1)
  bpr = jnp.mean(jax.nn.softplus(neg_scores - pos_scores))
  reg = (
    0.5
    * (jnp.sum(user_emb**2) + jnp.sum(pos_emb**2) + jnp.sum(neg_emb**2))
    / user_emb.shape[0]
  )
  return bpr + weight_decay * reg, {"bpr": bpr, "reg": reg}
