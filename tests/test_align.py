"""bcjax.align: each family's fit, auto's choice, bridges on disk, chains.

Every closed-form family is checked against an independent NumPy solution
(``lstsq`` on the ridge-augmented rows, a planted rotation, a planted
low-rank map), softorthogonal at both ends of its strength, auto against
its own split and tie rule, and a chain collapsed against the same chain
applied step by step. Widths are few and shared so that jitted fits compile
a handful of times.
"""

import os

import numpy as np
import pytest

from bcjax import align
from bcjax.align import fitting, measures, selection
from bcjax.errors import InputError

WIDTHS = [(8, 8), (12, 8), (8, 12)]


def _rows(seed, n, d):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _semi_orthogonal(seed, d_new, d_old):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(max(d_new, d_old),) * 2))
  return q[:d_new, :d_old]


def _mse(bridge, new, old):
  return measures.mse(bridge.apply(new), old)


@pytest.mark.parametrize("d_new, d_old", WIDTHS)
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_linear_matches_lstsq_on_the_augmented_rows(d_new, d_old, ridge):
  new, old = _rows(0, 200, d_new), _rows(1, 200, d_old)
  bridge = align.fit(old=old, new=new, family="linear", hparams={"ridge": ridge})
  # mean_rows ||x W - y||^2 + rho ||W||^2 as one least-squares problem.
  x = new.astype(np.float64)
  rho = ridge * np.mean(np.sum(x**2, axis=0) / len(x))
  a = np.concatenate([x / np.sqrt(len(x)), np.sqrt(rho) * np.eye(d_new)])
  b = np.concatenate([old / np.sqrt(len(x)), np.zeros((d_new, d_old))])
  want, *_ = np.linalg.lstsq(a, b, rcond=None)
  np.testing.assert_allclose(bridge.params["kernel"], want, rtol=1e-4, atol=1e-5)
  assert bridge.num_params == d_new * d_old
  np.testing.assert_allclose(bridge.apply(new), new @ want, atol=1e-4)


@pytest.mark.parametrize("d_new, d_old", WIDTHS)
def test_orthogonal_recovers_a_planted_map_to_the_noise_level(d_new, d_old):
  n, noise = 4000, 0.05
  q = _semi_orthogonal(3, d_new, d_old)
  if d_new > d_old:
    # new = [x, 0] R^T for a rotation R: W = R[:, :d_old] maps it back to x.
    r = _semi_orthogonal(3, d_new, d_new)
    x = _rows(4, n, d_old)
    new = np.pad(x, ((0, 0), (0, d_new - d_old))) @ r.T
    old, q = x, r[:, :d_old]
  else:
    new = _rows(4, n, d_new)
    old = new @ q
  old = (old + noise * _rows(5, n, d_old)).astype(np.float32)
  bridge = align.fit(old=old, new=new.astype(np.float32), family="orthogonal")
  w = bridge.params["kernel"]
  small = w.T @ w if d_new >= d_old else w @ w.T
  np.testing.assert_allclose(small, np.eye(len(small)), atol=1e-5)
  # The estimate's error is about noise / sqrt(n) per entry.
  assert np.abs(w - q).max() < 5 * noise / np.sqrt(n) * np.sqrt(max(d_new, d_old))
  assert _mse(bridge, new, old) == pytest.approx(noise**2, rel=0.1)
  small = min(d_new, d_old)
  assert bridge.num_params == d_new * d_old - small * (small + 1) // 2


@pytest.mark.parametrize("d_new, d_old", WIDTHS)
def test_reducedrank_recovers_a_planted_low_rank_map(d_new, d_old):
  rank = 3
  rng = np.random.default_rng(6)
  planted = rng.normal(size=(d_new, rank)) @ rng.normal(size=(rank, d_old))
  new = _rows(7, 500, d_new)
  old = (new @ planted).astype(np.float32)
  bridge = align.fit(old=old, new=new, family="reducedrank", hparams={"rank": rank})
  assert bridge.params["left"].shape == (d_new, rank)
  assert bridge.params["right"].shape == (rank, d_old)
  np.testing.assert_allclose(
    bridge.params["left"] @ bridge.params["right"], planted, atol=1e-3
  )
  # With noise, rank r is at least as good as any rank-r truncation of the
  # least-squares map (here: its top-r SVD), on the fitted rows.
  noisy = (old + _rows(8, 500, d_old)).astype(np.float32)
  bridge = align.fit(old=noisy, new=new, family="reducedrank", hparams={"rank": rank})
  full, *_ = np.linalg.lstsq(new, noisy, rcond=None)
  u, s, vt = np.linalg.svd(full)
  truncated = (u[:, :rank] * s[:rank]) @ vt[:rank]
  assert _mse(bridge, new, noisy) <= measures.mse(new @ truncated, noisy) + 1e-6
  assert bridge.num_params == rank * (d_new + d_old - rank)


def test_reducedrank_refuses_a_rank_above_the_widths():
  with pytest.raises(InputError, match=r"rank 9 must be <= min\(d_new, d_old\) = 8"):
    align.fit(
      old=_rows(0, 50, 12),
      new=_rows(1, 50, 8),
      family="reducedrank",
      hparams={"rank": 9},
    )


@pytest.mark.parametrize("d_new, d_old", WIDTHS)
def test_softorthogonal_tends_to_linear_and_to_orthogonal(d_new, d_old):
  rng = np.random.default_rng(9)
  new = _rows(10, 500, d_new)
  old = (new @ rng.normal(size=(d_new, d_old)) + 0.1 * _rows(11, 500, d_old)).astype(
    np.float32
  )
  linear = align.fit(old=old, new=new, family="linear").params["kernel"]
  polar = align.fit(old=old, new=new, family="orthogonal")
  weak = align.fit(
    old=old, new=new, family="softorthogonal", hparams={"strength": 1e-6}
  )
  np.testing.assert_allclose(
    weak.params["kernel"], linear, atol=0.02 * np.abs(linear).max()
  )
  strong = align.fit(
    old=old, new=new, family="softorthogonal", hparams={"strength": 1e4}
  )
  w = strong.params["kernel"]
  small = w.T @ w if d_new >= d_old else w @ w.T
  np.testing.assert_allclose(small, np.eye(min(d_new, d_old)), atol=1e-3)
  if d_new <= d_old:
    # W W^T = I fixes ||X W||: the constrained optimum is the polar factor.
    np.testing.assert_allclose(w, polar.params["kernel"], atol=1e-3)
  else:
    # Taller: the constrained least squares, at least as good as the polar
    # factor (which is the padded Procrustes solution, also feasible).
    assert _mse(strong, new, old) <= _mse(polar, new, old) * (1 + 1e-4)
  # In between, the error lies between the two ends.
  middle = align.fit(
    old=old, new=new, family="softorthogonal", hparams={"strength": 1.0}
  )
  assert _mse(weak, new, old) < _mse(middle, new, old) < _mse(polar, new, old)
  # The gate: a tolerance as large as the linear fit's deviation frees it.
  g = linear.T @ linear if d_new >= d_old else linear @ linear.T
  free = align.fit(
    old=old,
    new=new,
    family="softorthogonal",
    hparams={
      "strength": 1e4,
      "tolerance": float(np.linalg.norm(g - np.eye(len(g)))) + 1,
    },
  )
  np.testing.assert_allclose(
    free.params["kernel"], linear, atol=0.02 * np.abs(linear).max()
  )


def test_mlp_fits_a_nonlinear_map_saves_and_refuses_export(tmp_path):
  new = _rows(12, 600, 8)
  old = np.abs(new[:, :6]).astype(np.float32)
  hp = align.MLPHP(hidden=32, max_epochs=60, patience=5, learning_rate=1e-2)
  bridge = align.fit(old=old, new=new, family="mlp", hparams=hp, seed=1)
  linear = align.fit(old=old, new=new, family="linear")
  assert _mse(bridge, new, old) < 0.5 * _mse(linear, new, old)
  assert bridge.num_params == 8 * 32 + 32 + 32 * 6 + 6
  with pytest.raises(InputError, match=r"^a mlp bridge is not affine: .*apply\)$"):
    bridge.export_npz(str(tmp_path / "mlp.npz"))
  assert not os.path.exists(tmp_path / "mlp.npz")
  bridge.save(str(tmp_path / "mlp_bridge.npz"))
  again = align.load(str(tmp_path / "mlp_bridge.npz"))
  assert again.family == "mlp" and again.hparams == hp
  np.testing.assert_array_equal(again.apply(new), bridge.apply(new))
  # Same seed, same bridge.
  twin = align.fit(old=old, new=new, family="mlp", hparams=hp, seed=1)
  np.testing.assert_array_equal(twin.apply(new), bridge.apply(new))


@pytest.mark.parametrize("family", ["linear", "orthogonal", "softorthogonal"])
def test_centring_makes_the_bridge_affine_and_export_applies_it(family, tmp_path):
  rng = np.random.default_rng(13)
  q = _semi_orthogonal(14, 8, 8)
  new = (_rows(15, 400, 8) + 5.0).astype(np.float32)
  old = (new @ q + rng.normal(size=8) * 3).astype(np.float32)
  plain = align.fit(old=old, new=new, family=family)
  centred = align.fit(old=old, new=new, family=family, center=True)
  assert centred.center and not plain.center
  assert _mse(centred, new, old) < 1e-8 < _mse(plain, new, old)
  np.testing.assert_allclose(centred.prep.mean_new, new.mean(axis=0), rtol=1e-5)
  path = str(tmp_path / "bridge.npz")
  centred.export_npz(path)
  with np.load(path) as f:
    assert not f["normalize"] and str(f["family"]) == family
    np.testing.assert_allclose(new @ f["matrix"] + f["bias"], old, atol=1e-3)
    np.testing.assert_allclose(
      (new - f["mean_new"]) @ f["matrix"] + f["mean_old"], old, atol=1e-3
    )


def test_normalize_is_recorded_exported_and_applied(tmp_path):
  new, old = _rows(16, 300, 8), _rows(17, 300, 12)
  bridge = align.fit(old=old, new=new, family="linear", center=True, normalize=True)
  unit = new / np.linalg.norm(new, axis=1, keepdims=True)
  target = old / np.linalg.norm(old, axis=1, keepdims=True)
  # Equivalent to a plain centred fit of the normalised rows.
  want = align.fit(old=target, new=unit, family="linear", center=True)
  np.testing.assert_allclose(bridge.apply(new), want.apply(unit), atol=1e-5)
  path = str(tmp_path / "bridge.npz")
  bridge.export_npz(path)
  with np.load(path) as f:
    assert f["normalize"]
    np.testing.assert_allclose(
      unit @ f["matrix"] + f["bias"], bridge.apply(new), atol=1e-5
    )


@pytest.mark.parametrize(
  "family, hparams",
  [
    ("linear", {"ridge": 0.01}),
    ("orthogonal", None),
    ("reducedrank", {"rank": 4}),
    ("softorthogonal", {"strength": 1.0}),
  ],
)
def test_save_and_load_give_the_same_bridge(family, hparams, tmp_path):
  new, old = _rows(18, 300, 12), _rows(19, 300, 8)
  bridge = align.fit(
    old=old, new=new, family=family, hparams=hparams, center=True, normalize=True
  )
  bridge.save(str(tmp_path / "b.npz"))
  again = align.load(str(tmp_path / "b.npz"))
  assert (again.family, again.hparams, again.center, again.normalize) == (
    family,
    bridge.hparams,
    True,
    True,
  )
  np.testing.assert_array_equal(again.apply(new), bridge.apply(new))


def test_apply_handles_many_rows_in_chunks_and_checks_its_input():
  new, old = _rows(20, 300, 8), _rows(21, 300, 8)
  bridge = align.fit(old=old, new=new, family="linear", center=True)
  big = _rows(22, 70_000, 8)  # more than one serving chunk of 65536 rows
  m, b = bridge.matrix_and_bias()
  np.testing.assert_allclose(bridge.apply(big), big @ m + b, atol=1e-4)
  with pytest.raises(InputError, match=r"new must have 8 dims, got shape \(3, 5\)"):
    bridge.apply(np.zeros((3, 5)))


# -- auto ------------------------------------------------------------------------


def test_auto_prefers_fewer_parameters_within_the_noise_and_fit_otherwise():
  # Recall@1 of 200 validation rows in 8 dims with noise: not every
  # candidate finds every row, so the scores differ.
  grid = {"linear": [{}], "orthogonal": [{}], "reducedrank": [{"rank": 2}]}
  mixing = np.random.default_rng(23).normal(size=(8, 8))
  q, _ = np.linalg.qr(mixing)
  new = _rows(24, 1000, 8)
  noise = 0.3 * _rows(25, 1000, 8)
  fixed = {"grid": grid, "k": 1, "center": False, "normalize": False}
  bridge = align.fit(old=(new @ q + noise).astype(np.float32), new=new, **fixed)
  sel = bridge.selection
  assert len(sel.validation_rows) == 200
  assert [c.family for c in sel.candidates] == ["linear", "orthogonal", "reducedrank"]
  assert sel.candidates[2].hparams == align.ReducedRankHP(rank=2)
  # A planted rotation: linear is no better than orthogonal beyond the
  # noise, and orthogonal has fewer parameters.
  linear, orthogonal, _ = sel.candidates
  assert linear.score - orthogonal.score <= orthogonal.standard_error
  assert bridge.family == "orthogonal" == sel.choice.family
  # A general linear map: orthogonal cannot follow it, linear wins clearly.
  bridge = align.fit(old=(new @ mixing + noise).astype(np.float32), new=new, **fixed)
  sel = bridge.selection
  linear, orthogonal, _ = sel.candidates
  assert bridge.family == "linear" and sel.best == sel.chosen == 0
  assert linear.score - orthogonal.score > orthogonal.standard_error > 0


def test_auto_reads_only_the_rows_it_is_given(monkeypatch):
  new, old = _rows(27, 400, 8), _rows(28, 400, 12)
  old[:40] += 2 * new[:40, :1]
  # The caller's test rows are the last 100; they are poisoned, so reading
  # one would be refused.
  new[300:] = np.nan
  given_new, given_old = new[:300], old[:300]
  grid = {"linear": [{}, {"ridge": 0.1}], "orthogonal": [{}]}
  bridge = align.fit(old=given_old, new=given_new, grid=grid, seed=5, center=True)
  sel = bridge.selection
  fit_rows, val_rows = sel.fit_rows, sel.validation_rows
  assert len(val_rows) == 60 and len(fit_rows) == 240
  assert not set(fit_rows) & set(val_rows)
  np.testing.assert_array_equal(np.union1d(fit_rows, val_rows), np.arange(300))
  # Five folds of 60: disjoint, every given row a query once, the first
  # fold the recorded split.
  assert [len(f) for f in sel.folds] == [60] * 5 and sel.queries == 300
  np.testing.assert_array_equal(np.sort(np.concatenate(sel.folds)), np.arange(300))
  np.testing.assert_array_equal(sel.folds[0], val_rows)
  # The index is the validation rows, then the other given rows (all of
  # them, fewer than AUTO_INDEX here).
  np.testing.assert_array_equal(sel.index_rows[:60], val_rows)
  np.testing.assert_array_equal(np.sort(sel.index_rows[60:]), fit_rows)
  # center=True fixed, normalize left to auto: both, for each grid value.
  assert [(c.center, c.normalize) for c in sel.candidates] == [(True, False)] * 3 + [
    (True, True)
  ] * 3
  # Restated: each candidate fitted on the rows outside a fold alone, scored
  # on the fold's queries among the fold's and then the other given rows.
  per_fold = []  # per fold, per candidate: each query's score
  hits, overlaps = np.zeros(len(sel.candidates)), np.zeros(len(sel.candidates))
  for fold in sel.folds:
    rest = np.setdiff1d(np.arange(300), fold)
    index = given_old[np.concatenate([fold, rest])]
    scores = []
    for i, c in enumerate(sel.candidates):
      alone = align.fit(
        old=given_old[rest],
        new=given_new[rest],
        family=c.family,
        hparams=c.hparams,
        center=True,
        normalize=c.normalize,
      )
      hit, overlap = measures.query_scores(
        index, alone.apply(given_new[fold]), np.arange(len(fold)), 10
      )
      hits[i] += hit.sum()
      overlaps[i] += overlap.sum()
      scores.append((hit + overlap) / 2)
    per_fold.append(scores)
  for c, hit, overlap in zip(sel.candidates, hits, overlaps, strict=True):
    assert c.self_recall == pytest.approx(hit / 300)
    assert c.overlap == pytest.approx(overlap / 300)
    assert c.score == pytest.approx((c.self_recall + c.overlap) / 2)
  # The rule on all folds' queries pooled; each fold's own choice recorded.
  params = [c.num_params for c in sel.candidates]
  pooled = [np.concatenate([f[i] for f in per_fold]) for i in range(len(params))]
  assert sel.chosen == align.choose(pooled, params)[0]
  assert sel.fold_chosen == tuple(align.choose(f, params)[0] for f in per_fold)
  assert sel.fold_agreement == np.mean([c == sel.chosen for c in sel.fold_chosen])
  # One fold is the first fold alone: its split, and its fold's choice.
  single = align.fit(
    old=given_old, new=given_new, grid=grid, seed=5, center=True, folds=1
  ).selection
  np.testing.assert_array_equal(single.validation_rows, val_rows)
  assert single.chosen == sel.fold_chosen[0] and len(single.folds) == 1
  # The choice, preprocessing and all, is refitted on all given rows.
  direct = align.fit(
    old=given_old,
    new=given_new,
    family=sel.choice.family,
    hparams=sel.choice.hparams,
    center=True,
    normalize=sel.choice.normalize,
  )
  assert bridge.normalize == sel.choice.normalize and bridge.center
  np.testing.assert_allclose(
    bridge.apply(given_new), direct.apply(given_new), atol=1e-6
  )
  # The folds and the choice are the seed's: the same seed, the same ones.
  again = align.fit(
    old=given_old, new=given_new, grid=grid, seed=5, center=True
  ).selection
  for f, g in zip(again.folds, sel.folds, strict=True):
    np.testing.assert_array_equal(f, g)
  assert (again.chosen, again.fold_chosen) == (sel.chosen, sel.fold_chosen)
  assert [c.score for c in again.candidates] == [c.score for c in sel.candidates]
  other = align.fit(
    old=given_old, new=given_new, grid=grid, seed=6, center=True, folds=1
  ).selection
  assert not np.array_equal(other.validation_rows, val_rows)
  # Distractors are capped, and drawn from the fit rows only.
  monkeypatch.setattr(fitting, "AUTO_INDEX", 100)
  capped = align.fit(
    old=given_old, new=given_new, grid=grid, seed=5, center=True, folds=1
  ).selection
  assert len(capped.index_rows) == 100
  assert set(capped.index_rows[60:]) <= set(fit_rows)


def test_validation_folds_are_blocks_of_the_seeds_permutation():
  order, parts = selection.validation_folds(1173, 7, 0.2, 5000, 5)
  np.testing.assert_array_equal(order, np.random.default_rng(7).permutation(1173))
  # round(0.2 * 1173) = 235: four blocks of 235 and the 233 rows left.
  assert [len(p) for p in parts] == [235, 235, 235, 235, 233]
  np.testing.assert_array_equal(np.concatenate(parts), order)
  # At most max_validation rows in all: a large input gets one split.
  assert [len(p) for p in selection.validation_folds(30_000, 0, 0.2, 5000, 5)[1]] == [
    5000
  ]
  assert [len(p) for p in selection.validation_folds(12_000, 0, 0.2, 5000, 5)[1]] == [
    2400
  ] * 2
  assert len(selection.validation_folds(1173, 7, 0.2, 5000, 3)[1]) == 3
  # A last block under 2 rows is no fold; 4 rows are the fewest.
  assert [len(p) for p in selection.validation_folds(5, 0, 0.2, 5000, 5)[1]] == [2, 2]
  with pytest.raises(InputError, match="at least 4 rows"):
    selection.validation_folds(3, 0, 0.2, 5000, 5)
  for bad in (0, 1.5, True):
    with pytest.raises(InputError, match="folds must be a positive integer"):
      selection.validation_folds(100, 0, 0.2, 5000, bad)


def test_auto_skips_families_that_cannot_map_the_widths_and_saves_its_choice(tmp_path):
  new, old = _rows(29, 200, 8), _rows(30, 200, 6)
  grid = {"reducedrank": [{"rank": 2}, {"rank": 7}], "linear": [{}]}
  bridge = align.fit(old=old, new=new, grid=grid, center=False, normalize=False)
  (skipped,) = bridge.selection.skipped
  assert skipped[0] == "reducedrank" and "rank 7 must be <=" in skipped[2]
  bridge.save(str(tmp_path / "auto.npz"))
  summary = align.load(str(tmp_path / "auto.npz")).selection
  assert summary["family"] == bridge.family
  assert [c["hparams"] for c in summary["candidates"]] == [
    {"rank": 2, "ridge": 0.0},
    {"ridge": 0.0},
  ]


# -- chains ------------------------------------------------------------------------


def _chain_bridges(families=("linear", "orthogonal", "reducedrank")):
  """Versions 0..3 of widths 8, 10, 6, 9: bridges[k - 1] maps k -> k - 1."""
  dims = (8, 10, 6, 9)
  rng = np.random.default_rng(31)
  z = [
    (_rows(32 + k, 300, d) + rng.normal(size=d)).astype(np.float32)
    for k, d in enumerate(dims)
  ]
  hparams = {"reducedrank": {"rank": 4}, "mlp": {"max_epochs": 3}}
  return z, [
    align.fit(
      old=z[k - 1],
      new=z[k],
      family=families[k - 1],
      hparams=hparams.get(families[k - 1]),
      center=True,
      normalize=k == 3,
    )
    for k in (1, 2, 3)
  ]


def test_a_centred_chain_collapsed_equals_step_by_step(tmp_path):
  z, bridges = _chain_bridges()
  chain = align.Chain(bridges)
  assert chain.dims == (8, 10, 6, 9) and chain.latest_version == 3
  newest = z[3]
  for j in range(3):
    stepped = newest
    for bridge in bridges[j:][::-1]:
      stepped = bridge.apply(stepped)
    collapsed = chain.apply(newest, to_version=j, collapse=True)
    np.testing.assert_allclose(collapsed, stepped, atol=1e-4)
    np.testing.assert_allclose(
      chain.apply(newest, j, collapse=False), stepped, atol=1e-5
    )
  np.testing.assert_array_equal(chain.apply(newest, 3), newest)
  chain.save(str(tmp_path / "chain"))
  again = align.load_chain(str(tmp_path / "chain"))
  np.testing.assert_allclose(again.apply(newest, 0), chain.apply(newest, 0), atol=1e-6)


def test_a_chain_through_an_mlp_is_applied_step_by_step_only():
  z, bridges = _chain_bridges(("linear", "mlp", "linear"))
  chain = align.Chain(bridges)
  with pytest.raises(
    InputError,
    match=r"^the chain to version 0 cannot collapse: bridge 2 \(mlp\) is not affine$",
  ):
    chain.apply(z[3], 0, collapse=True)
  want = bridges[0].apply(bridges[1].apply(bridges[2].apply(z[3])))
  np.testing.assert_allclose(chain.apply(z[3], 0), want, atol=1e-5)
  # Above the mlp the chain is affine again.
  np.testing.assert_allclose(
    chain.apply(z[3], 2, collapse=True), bridges[2].apply(z[3]), atol=1e-5
  )


def test_chain_refuses_widths_that_do_not_chain_and_unknown_versions():
  _, bridges = _chain_bridges()
  with pytest.raises(
    InputError,
    match="bridge 2 maps to 6 dims but bridge 1 reads 10: version 1 must have",
  ):
    align.Chain([bridges[0], bridges[2], bridges[2]])
  chain = align.Chain(bridges)
  with pytest.raises(
    InputError, match=r"to_version 4 does not exist; versions are 0..3"
  ):
    chain.apply(np.zeros((2, 9)), 4)


# -- bad input -----------------------------------------------------------------------


def _bad_rows():
  new = _rows(40, 50, 4)
  new[[3, 7, 11, 20, 21, 30]] = np.nan
  new[11, 0] = np.inf
  return new


@pytest.mark.parametrize(
  "old, new, kwargs, message",
  [
    (
      _rows(0, 10, 4),
      _rows(1, 11, 4),
      {},
      "old has 10 rows but new has 11; rows must match one to one",
    ),
    (
      _rows(0, 50, 4),
      _bad_rows(),
      {},
      r"new has NaN or infinite values in 6 of 50 rows (first: [3, 7, 11, 20, 21])",
    ),
    (
      _rows(0, 4, 1)[:, 0],
      _rows(1, 4, 4),
      {},
      "old must be a 2-d (rows, dims) array, got shape (4,)",
    ),
    (
      np.zeros((0, 4)),
      np.zeros((0, 4)),
      {},
      "old is empty (shape (0, 4)); a bridge needs rows",
    ),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"family": "lowrank"},
      "unknown bridge family 'lowrank'; valid bridge family names: auto, linear, mlp, "
      "orthogonal, reducedrank, softorthogonal",
    ),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"family": "linear", "hparams": {"ridge": -1}},
      "LinearHP.ridge must be a finite number >= 0.0, got -1",
    ),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"family": "linear", "hparams": {"rank": 2}},
      "LinearHP has no field 'rank'; its fields: ridge",
    ),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"family": "linear", "hparams": align.OrthogonalHP()},
      "hparams of family 'linear' must be a LinearHP or a dict of its fields, got OrthogonalHP",
    ),
    (
      _rows(0, 3, 4),
      _rows(1, 3, 4),
      {},
      "family='auto' needs at least 4 rows to split, got 3",
    ),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"max_validation": 1},
      "max_validation must be an integer >= 2, got 1",
    ),
    (_rows(0, 10, 4), _rows(1, 10, 4), {"k": 0}, "k must be a positive integer, got 0"),
    (
      _rows(0, 10, 4),
      _rows(1, 10, 4),
      {"center": "yes"},
      "center must be True, False or None, got 'yes'",
    ),
  ],
)
def test_bad_input_is_refused_in_one_line(old, new, kwargs, message):
  with pytest.raises(InputError) as e:
    align.fit(old=old, new=new, **kwargs)
  assert str(e.value) == message
