"""A seeded generator of evolving user-item graphs with planted structure.

The generator plants what makes backward compatibility a real trade-off:

* **Item clusters.** Every item belongs to one of ``num_clusters`` latent
  clusters; its brand is mostly one of its cluster's brands and its categories
  mostly its cluster's (a top category and sub-categories), so attributes
  carry the cluster. Brands launch over time and an item only carries a
  brand launched by its arrival, so later items bring brands that an early
  model has never seen.
* **User tastes.** Each user has a Dirichlet taste over clusters and picks the
  cluster of each interaction from it, then an item of that cluster with
  probability proportional to the item's heavy-tailed popularity.
* **Time.** Users and items arrive over time (only arrived nodes interact),
  user activity is heavy-tailed (log-normal), and tastes drift slowly from an
  initial taste towards a second one, so a model fitted on an early slice
  grows stale.
* **Ratings** depend on the user's affinity to the item's cluster, the item's
  latent quality and a user bias, cut into 1..5 stars at fixed quantiles.

Each (user, item) pair occurs at most once. All work is vectorised over
interactions in chunks, so tens of millions of interactions take seconds to
minutes and bounded memory.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.errors import InputError

# Share of ratings at 1..5 stars, close to MovieLens and Amazon reviews.
_RATING_SHARES = (0.06, 0.11, 0.27, 0.34, 0.22)
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """Sizes and strengths of the planted structure.

  Attributes:
    num_users: users over the whole log.
    num_items: items over the whole log.
    num_interactions: interactions over the whole log (distinct pairs).
    num_clusters: latent item clusters.
    num_brands: brands, each tied to one cluster.
    taste_concentration: Dirichlet concentration of user tastes (smaller is
      more focused).
    drift: how far tastes move from the initial to the final taste by the end
      of the log, in [0, 1].
    popularity_sigma: log-normal spread of item popularity (larger is more
      skewed towards a few blockbusters).
    early_users: share of users present from the start.
    early_items: share of items present from the start.
    noise: share of interactions whose item ignores the user's taste.
    seed: the generator seed.
  """

  num_users: int = 2000
  num_items: int = 1000
  num_interactions: int = 50_000
  num_clusters: int = 16
  num_brands: int = 64
  taste_concentration: float = 0.15
  drift: float = 0.6
  popularity_sigma: float = 1.0
  early_users: float = 0.4
  early_items: float = 0.5
  noise: float = 0.05
  seed: int = 0

  def validate(self):
    for field in ("num_users", "num_items", "num_interactions", "num_clusters"):
      if getattr(self, field) < 1:
        raise InputError(f"synthetic.{field} must be >= 1, got {getattr(self, field)}")
    if self.num_brands < self.num_clusters:
      raise InputError(
        f"synthetic.num_brands={self.num_brands} must be >= "
        f"synthetic.num_clusters={self.num_clusters}"
      )
    if self.num_items < self.num_clusters:
      raise InputError(
        f"synthetic.num_items={self.num_items} must be >= "
        f"synthetic.num_clusters={self.num_clusters}"
      )
    if self.num_interactions > self.num_users * self.num_items // 2:
      raise InputError(
        f"synthetic.num_interactions={self.num_interactions} is more than half "
        f"of the {self.num_users} x {self.num_items} possible pairs"
      )
    for field in ("drift", "early_users", "early_items", "noise"):
      if not 0.0 <= getattr(self, field) <= 1.0:
        raise InputError(f"synthetic.{field} must lie in [0, 1]")


def _arrival_times(rng, n, early_share):
  """Sorted arrival times: a share at 0, the rest uniform over the log."""
  times = np.where(rng.random(n) < early_share, 0.0, rng.random(n) * 0.95)
  times[0] = 0.0
  return np.sort(times)


def _pick_by_prefix(rng, cum_weights, eligible):
  """Draws from the first ``eligible[n]`` entries by the cumulative weights."""
  top = cum_weights[eligible - 1]
  return np.searchsorted(cum_weights, rng.random(len(eligible)) * top, side="right")


def generate(spec: SyntheticSpec) -> DynamicGraph:
  """Generates the interaction log described by ``spec``."""
  spec.validate()
  rng = np.random.default_rng(spec.seed)
  nu, ni, nc = spec.num_users, spec.num_items, spec.num_clusters

  user_arrival = _arrival_times(rng, nu, spec.early_users)
  activity = rng.lognormal(0.0, 1.0, nu)
  user_cum = np.cumsum(activity)
  taste0 = rng.dirichlet(np.full(nc, spec.taste_concentration), nu)
  taste1 = rng.dirichlet(np.full(nc, spec.taste_concentration), nu)
  user_bias = rng.normal(0.0, 0.5, nu)

  cluster = rng.integers(0, nc, ni)
  cluster[:nc] = np.arange(nc)
  item_arrival = _arrival_times(rng, ni, spec.early_items)
  # Every cluster holds an item from time 0 so any cluster can be drawn.
  item_arrival[:nc] = 0.0
  popularity = rng.lognormal(0.0, spec.popularity_sigma, ni)
  quality = rng.normal(0.0, 1.0, ni)
  members = [np.flatnonzero(cluster == c) for c in range(nc)]
  member_cum = [np.cumsum(popularity[m]) for m in members]
  member_arrival = [item_arrival[m] for m in members]
  all_cum = np.cumsum(popularity)

  # Oversample, then keep the first occurrence of each pair in time order;
  # focused tastes repeat pairs often, so grow the sample until it suffices.
  oversample = 1.5
  while True:
    users, items, time = _draw_interactions(
      rng,
      spec,
      int(spec.num_interactions * oversample) + 16,
      (user_arrival, user_cum, taste0, taste1),
      (item_arrival, all_cum, members, member_cum, member_arrival),
    )
    _, first = np.unique(users * ni + items, return_index=True)
    if len(first) >= spec.num_interactions or oversample > 50:
      break
    oversample *= 2
  keep = np.sort(first)[: spec.num_interactions]
  users, items, time = users[keep], items[keep], time[keep]

  progress = time[:, None]
  taste_now = (1 - spec.drift * progress) * taste0[
    users
  ] + spec.drift * progress * taste1[users]
  affinity = np.log(taste_now[np.arange(len(users)), cluster[items]] * nc + 1e-3)
  score = 0.8 * quality[items] + 0.5 * affinity + user_bias[users]
  score += rng.normal(0.0, 0.7, len(users))
  cuts = np.quantile(score, np.cumsum(_RATING_SHARES)[:-1])
  rating = 1.0 + np.searchsorted(cuts, score).astype(np.float32)

  timestamp = (time * 1e8).astype(np.int64)
  user, item, timestamp, rating, user_order, item_order = from_raw_log(
    users, items, timestamp, rating, name="synthetic"
  )
  item_order = np.asarray(item_order)
  user_order = np.asarray(user_order)
  return DynamicGraph(
    user=user,
    item=item,
    timestamp=timestamp,
    rating=rating,
    item_attrs=_item_attributes(
      rng, spec, cluster[item_order], item_arrival[item_order]
    ),
    user_attrs=_user_attributes(spec, taste0[user_order]),
    name="synthetic",
  )


def _draw_interactions(rng, spec, draws, user_side, item_side):
  """Draws ``draws`` (user, item, time) triples, pairs possibly repeated."""
  user_arrival, user_cum, taste0, taste1 = user_side
  item_arrival, all_cum, members, member_cum, member_arrival = item_side
  nc = spec.num_clusters
  time = np.sort(rng.random(draws))
  users = np.empty(draws, np.int64)
  items = np.empty(draws, np.int64)
  for lo in range(0, draws, _CHUNK):
    t = time[lo : lo + _CHUNK]
    n = len(t)
    u = _pick_by_prefix(rng, user_cum, np.searchsorted(user_arrival, t, "right"))
    mix = rng.random(n) < spec.drift * t
    taste = np.where(mix[:, None], taste1[u], taste0[u])
    c = (np.cumsum(taste, axis=1) < rng.random(n)[:, None]).sum(axis=1)
    c = np.minimum(c, nc - 1)
    it = np.empty(n, np.int64)
    for k in range(nc):
      sel = np.flatnonzero(c == k)
      if len(sel) == 0:
        continue
      eligible = np.searchsorted(member_arrival[k], t[sel], "right")
      it[sel] = members[k][_pick_by_prefix(rng, member_cum[k], eligible)]
    noisy = rng.random(n) < spec.noise
    eligible = np.searchsorted(item_arrival, t[noisy], "right")
    it[noisy] = _pick_by_prefix(rng, all_cum, eligible)
    users[lo : lo + n], items[lo : lo + n] = u, it
  return users, items, time


def _item_attributes(rng, spec, cluster, arrival):
  """Brands and categories that mostly follow the item's cluster."""
  n, nc = len(cluster), spec.num_clusters
  brand_cluster = np.arange(spec.num_brands) % nc
  launch = np.where(
    np.arange(spec.num_brands) < nc, 0.0, rng.random(spec.num_brands) * 0.9
  )
  launch = np.where(rng.random(spec.num_brands) < 0.4, 0.0, launch)
  own = rng.random(n) < 0.85
  brand = np.empty(n, np.int64)
  for c in range(nc):
    of_c = np.flatnonzero(brand_cluster == c)
    of_c = of_c[np.argsort(launch[of_c], kind="stable")]
    sel = np.flatnonzero(cluster == c)
    # Uniform among the cluster's brands launched by the item's arrival.
    eligible = np.searchsorted(launch[of_c], arrival[sel], "right")
    brand[sel] = of_c[(rng.random(len(sel)) * eligible).astype(np.int64)]
  live = np.sort(launch)
  eligible = np.searchsorted(live, arrival, "right")
  random_brand = np.argsort(launch, kind="stable")[
    (rng.random(n) * eligible).astype(np.int64)
  ]
  brand = np.where(own, brand, random_brand)
  has_brand = rng.random(n) < 0.9
  brand_labels = [[f"brand{b}"] if h else [] for b, h in zip(brand, has_brand)]
  # A top category per group of clusters, a sub-category per cluster, and a
  # random second sub-category now and then.
  top = cluster // 4
  sub = np.where(rng.random(n) < 0.8, cluster, rng.integers(0, nc, n))
  extra = rng.integers(0, nc, n)
  has_extra = rng.random(n) < 0.3
  category_labels = [
    [f"top{t}", f"sub{s}"] + ([f"sub{e}"] if x else [])
    for t, s, e, x in zip(top, sub, extra, has_extra)
  ]
  return {
    "brand": RaggedAttribute.from_labels(brand_labels),
    "category": RaggedAttribute.from_labels(category_labels),
  }


def _user_attributes(spec, taste):
  """A user segment: the group of clusters the initial taste favours."""
  groups = max(spec.num_clusters // 4, 1)
  mass = np.zeros((len(taste), groups))
  for c in range(spec.num_clusters):
    mass[:, min(c // 4, groups - 1)] += taste[:, c]
  segment = mass.argmax(axis=1)
  return {"segment": RaggedAttribute.from_labels([[f"seg{s}"] for s in segment])}
