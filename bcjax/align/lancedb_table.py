"""A LanceDB table of old-model vectors migrated to the new model, batch by batch.

The table (embedded LanceDB: a folder, no server) starts as a team keeps it:
an ``id`` column, a ``vector`` column of old-model vectors and any others.
:func:`migrate` moves it to the new model in the backfilling scheme of
:mod:`bcjax.align.backfill`:

1. **Convert** (one commit, after every check has passed): the table's
   version is tagged (``TAG``), then the table is rewritten with
   ``old_vector`` (the old vectors, ``(d_old,)``), ``vector`` (``(d_new,)``:
   the forward map ``F(old)`` of :func:`bcjax.align.backfill.fit_forward`),
   ``migrated`` (False), ``rank`` (the row's place in the backfilling order;
   -1 for a row the new file does not hold) and every other column as it
   was. From this commit on, queries are new-model vectors.
2. **Backfill**: batches of ``batch_size`` rows, lowest ``rank`` first, get
   their new vector and ``migrated = True``, one ``merge_insert`` commit per
   batch. The table is the state: a rerun after a crash (SIGKILL included)
   takes the rows still unmigrated and goes on; a batch is in the table
   whole or not at all, and the merge updates only rows the table still
   holds unmigrated, so no row is written twice.

Searched by cosine, the table's self-retrieval at a fraction ``f`` migrated
(:func:`self_recall`) is the backfilling curve
:func:`bcjax.align.backfill.curve` at ``f`` for the same order.
:func:`rollback` restores the tagged version, which ``optimize()`` keeps.
LanceDB comes with the ``stores`` extra (``lancedb``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import numpy as np

from bcjax.align.backfill import fit_forward, random_order, residual_order, residuals
from bcjax.align.bridge import Bridge, check_rows
from bcjax.align.fitting import fit
from bcjax.align.inputs import load_version
from bcjax.align.measures import sample_queries
from bcjax.align.protocol import FIT_ROWS, match
from bcjax.align.store import check_ids
from bcjax.errors import InputError

TAG = "bcjax-before-migration"
ORDERS = ("bridge_residual", "forward_residual", "random")  # backfill.ORDERS' names
METADATA = b"bcjax.migration"  # the plan, in the converted table's schema metadata


def _lancedb():
  try:
    import lancedb
  except ImportError as e:
    raise InputError(
      "the LanceDB path needs lancedb (pip install lancedb, or bcjax[stores])"
    ) from e
  return lancedb


def open_table(db: str, name: str):
  """The LanceDB table ``name`` in the folder ``db``, or one error line."""
  if "://" not in db and not os.path.isdir(db):  # connect would make the folder
    raise InputError(f"{db}: no such folder; expected a LanceDB folder")
  connection = _lancedb().connect(db)
  try:
    return connection.open_table(name)
  except (ValueError, FileNotFoundError) as e:
    raise InputError(f"{db}: no LanceDB table {name!r} ({e})") from e


def plan_of(table) -> dict | None:
  """The converted table's plan (order, tag, widths, ...), None before conversion.

  A table whose bookkeeping columns were dropped after its migration (the
  plan stays in the schema's metadata) has none: it can be migrated again.
  """
  metadata, names = table.schema.metadata or {}, set(table.schema.names)
  converted = METADATA in metadata and {"old_vector", "migrated", "rank"} <= names
  return json.loads(metadata[METADATA]) if converted else None


def _columns(table, names) -> dict:
  """``{name: column}`` of the table's latest version, every row."""
  data = table.search().select(list(names)).limit(table.count_rows()).to_arrow()
  return {n: data[n].combine_chunks() for n in names}


def _ids(column) -> np.ndarray:
  values = column.to_numpy(zero_copy_only=False)
  return values.astype(str) if values.dtype == object else values


def _matrix(where: str, column) -> np.ndarray:
  """``(n, d)`` float rows of a fixed-size or equal-length list column."""
  import pyarrow as pa

  if not (pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type)):
    raise InputError(f"{where} must hold vectors (a list column), got {column.type}")
  if column.null_count or column.flatten().null_count:
    raise InputError(f"{where} has null vectors or values; expected full vectors")
  lengths = set(column.value_lengths().to_numpy().tolist()) if len(column) else {0}
  if len(lengths) != 1:
    raise InputError(f"{where} holds vectors of widths {sorted(lengths)}; expected one")
  flat = column.flatten().to_numpy(zero_copy_only=False)
  return check_rows(where, flat.reshape(len(column), lengths.pop()))


def _vectors(rows: np.ndarray):
  import pyarrow as pa

  rows = np.ascontiguousarray(rows, np.float32)
  return pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), rows.shape[1])


def _digest(ids: np.ndarray, rows: np.ndarray) -> str:
  """A fingerprint of the new vectors the plan was made with."""
  h = hashlib.sha256(json.dumps(ids.tolist()).encode())
  h.update(np.ascontiguousarray(rows, np.float32).tobytes())
  return h.hexdigest()[:16]


def _match_new(where: str, table_ids, new_ids) -> np.ndarray:
  """Table rows of the new file's ids, in the file's order; all must be there."""
  table_rows, file_rows = match(table_ids, new_ids)
  if len(file_rows) < len(new_ids):
    missing = np.setdiff1d(np.arange(len(new_ids)), file_rows)
    kinds = {a.dtype.kind in "iu" for a in (table_ids, new_ids)}
    hint = " (the table's and the file's ids differ in type)" if len(kinds) > 1 else ""
    raise InputError(
      f"{where}: {len(missing)} of its {len(new_ids)} ids are not in the table"
      f"{hint}, e.g. {new_ids[missing[:3]].tolist()}; expected ids the table holds"
    )
  return table_rows[np.argsort(file_rows)]


def convert(
  table,
  new_ids: np.ndarray,
  new: np.ndarray,
  *,
  where: str = "new",
  order: str = "bridge_residual",
  bridge: Bridge | None = None,
  tag: str = TAG,
  seed: int = 0,
  **fit_kwargs,
) -> dict:
  """Tags the table and rewrites it as the migration's start (step 1 above).

  Args:
    table: a LanceDB table with ``id`` and ``vector`` (old model) columns.
    new_ids: ``(n,)`` ids of the new vectors, each in the table.
    new: ``(n, d_new)`` their new-model vectors.
    where: what ``new`` is called in messages (its flag or file).
    order: one of ``ORDERS``.
    bridge: the served bridge ``B: new -> old`` for the bridge-residual
      order; None: fitted on the matched rows with ``fit_kwargs``.
    tag: the tag of the version before the migration.
    seed: seeds the fits and the random order.
    **fit_kwargs: ``family``, ``center``, ``normalize``, ``hparams`` of the
      forward map (and of the bridge when fitted), as :func:`bcjax.align.fit`.

  Returns:
    The plan written into the table's schema metadata.
  """
  import pyarrow as pa

  if order not in ORDERS:
    raise InputError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")
  new = check_rows(where, new)
  new_ids = check_ids(where, new_ids, len(new))
  data = table.to_arrow()
  names = data.schema.names
  if "id" not in names or "vector" not in names:
    raise InputError(
      f"table {table.name!r} has columns {names}; expected an 'id' column and a "
      "'vector' column of old-model vectors"
    )
  for taken in ("old_vector", "migrated", "rank"):
    if taken in names:
      raise InputError(
        f"table {table.name!r} already has a {taken!r} column but no migration "
        "plan; expected a table of old vectors (roll back, or rename the column)"
      )
  table_ids = _ids(data["id"].combine_chunks())
  if len(np.unique(table_ids)) != len(table_ids):
    raise InputError(f"table {table.name!r} has repeated ids; expected distinct ids")
  old = _matrix(
    f"table {table.name!r} column 'vector'", data["vector"].combine_chunks()
  )
  rows = _match_new(where, table_ids, new_ids)
  needed = max(FIT_ROWS.get(fit_kwargs.get("family", "auto"), 1), 2)
  if len(rows) < needed:
    raise InputError(
      f"{where} and the table match {len(rows)} ids; the forward map needs at "
      f"least {needed}"
    )
  widths = (new.shape[1], old.shape[1])
  if bridge is not None and (bridge.d_new, bridge.d_old) != widths:
    raise InputError(
      f"the bridge maps {bridge.d_new} -> {bridge.d_old} dims, but {where} has "
      f"{new.shape[1]}-dim new vectors and the table {old.shape[1]}-dim old ones"
    )
  forward = fit_forward(old[rows], new, seed=seed, **fit_kwargs)
  forwarded = forward.apply(old)
  if order == "bridge_residual":
    bridge = bridge or fit(old=old[rows], new=new, seed=seed, **fit_kwargs)
    ranked = residual_order(residuals(bridge.apply(new), old[rows]))
  elif order == "forward_residual":
    ranked = residual_order(residuals(forwarded[rows], new))
  else:
    ranked = random_order(len(rows), seed)
  rank = np.full(len(old), -1, np.int64)
  rank[rows[ranked]] = np.arange(len(rows))
  plan = {
    "order": order,
    "tag": tag,
    "rows": int(len(rows)),
    "d_old": int(old.shape[1]),
    "d_new": int(new.shape[1]),
    "forward": forward.family,
    "bridge": bridge.family if order == "bridge_residual" else None,
    "seed": seed,
    "new": _digest(new_ids[ranked], new[ranked]),
  }
  old_type = pa.list_(data.schema.field("vector").type.value_type, old.shape[1])
  converted = data.rename_columns(["old_vector" if n == "vector" else n for n in names])
  i = converted.schema.get_field_index("old_vector")
  converted = converted.set_column(i, "old_vector", converted[i].cast(old_type))
  converted = converted.append_column("vector", _vectors(forwarded))
  converted = converted.append_column("migrated", pa.array(np.zeros(len(old), bool)))
  converted = converted.append_column("rank", pa.array(rank))
  converted = converted.replace_schema_metadata(
    {**(data.schema.metadata or {}), METADATA: json.dumps(plan)}
  )
  # Tag first: a crash between the two leaves the table as it was, and the
  # rerun moves the tag to the same version.
  (table.tags.update if tag in table.tags.list() else table.tags.create)(
    tag, table.version
  )
  table.add(converted, mode="overwrite")
  return plan


def migrate(
  db: str,
  name: str,
  new,
  *,
  order: str = "bridge_residual",
  batch_size: int = 1000,
  max_batches: int | None = None,
  bridge: Bridge | None = None,
  tag: str = TAG,
  seed: int = 0,
  id_column: str = "id",
  columns=(),
  k: int = 10,
  measure_queries: int = 0,
  log: Callable[[str], None] = print,
  **fit_kwargs,
) -> dict:
  """Converts the table if need be, then backfills it batch by batch.

  Args:
    db: the LanceDB folder.
    name: the table.
    new: the new model's vectors: a file :func:`bcjax.align.inputs.load_version`
      reads (``.npy``, ``.npz``, ``.csv``, ``.parquet``) or ``(ids (n,),
      rows (n, d_new))``.
    order: ``bridge_residual``, ``forward_residual`` or ``random``; a
      converted table keeps the order it was planned with.
    batch_size: rows per ``merge_insert`` commit.
    max_batches: stop after this many commits (None: until done); a rerun
      goes on.
    bridge, tag, seed, **fit_kwargs: see :func:`convert`.
    id_column, columns: a table file's id and vector columns.
    k: K of the self-retrieval measured along the way.
    measure_queries: with more than 0, at most this many planned ids (a
      seeded sample) are searched by their new vectors (:func:`self_recall`)
      before the first batch and at each tenth of the planned rows migrated.
    log: called with one line per step.

  Returns:
    The plan, ``migrated`` and ``planned`` row counts, ``batches`` committed
    by this call, the table's ``version`` and the ``curve`` measured:
    ``(fraction migrated, self-retrieval@k)`` pairs.
  """
  if batch_size < 1:
    raise InputError(f"batch_size must be at least 1, got {batch_size}")
  where = new if isinstance(new, str) else "new"
  if isinstance(new, str):
    new_ids, rows = load_version(None, new, id_column=id_column, columns=columns)
  else:
    rows = check_rows("new", new[1])
    new_ids = check_ids("new", new[0], len(rows))
  table = open_table(db, name)
  plan = plan_of(table)
  if plan is None:
    plan = convert(
      table,
      new_ids,
      rows,
      where=where,
      order=order,
      bridge=bridge,
      tag=tag,
      seed=seed,
      **fit_kwargs,
    )
    log(
      f"converted {name!r}: {plan['rows']} of {table.count_rows()} rows planned in "
      f"{plan['order']} order, forward map {plan['forward']} {plan['d_old']} -> "
      f"{plan['d_new']} dims, version {table.tags.get_version(tag)} tagged {tag!r}"
    )
  elif plan["order"] != order:
    raise InputError(
      f"table {name!r} is being migrated in {plan['order']} order, not {order}; "
      f"rerun with that order, or roll back to {plan['tag']!r} first"
    )
  if rows.shape[1] != plan["d_new"]:
    raise InputError(
      f"{where} has {rows.shape[1]}-dim vectors; the table is being migrated "
      f"to {plan['d_new']} dims"
    )
  state = _columns(table, ("id", "rank", "migrated"))
  ids, rank = _ids(state["id"]), state["rank"].to_numpy()
  file_rows = np.empty(len(ids), np.int64)
  file_rows[_match_new(where, ids, new_ids)] = np.arange(len(new_ids))
  planned = np.flatnonzero(rank >= 0)
  if len(new_ids) != len(planned):
    raise InputError(
      f"{where} holds {len(new_ids)} ids; the migration was planned with "
      f"{len(planned)}: expected the same file"
    )
  by_rank = planned[np.argsort(rank[planned])]
  if _digest(ids[by_rank], rows[file_rows[by_rank]]) != plan["new"]:
    raise InputError(
      f"{where} is not the new vectors table {name!r} is being migrated to; "
      f"rerun with that file, or roll back to {plan['tag']!r} first"
    )
  todo = by_rank[~state["migrated"].to_numpy(zero_copy_only=False)[by_rank]]
  done, batches, curve = len(planned) - len(todo), 0, []
  # A seeded sample of the planned ids (by id: rows move in the table).
  query_ids = np.sort(ids[planned])[sample_queries(len(planned), measure_queries, seed)]
  queries = rows[file_rows[_match_new("the table", ids, query_ids)]]

  def measure():
    if measure_queries and (not curve or curve[-1][0] < done / len(planned)):
      curve.append((done / len(planned), self_recall(table, query_ids, queries, k)))
      log(
        f"self-recall@{k} of {len(query_ids)} queries at {curve[-1][0]:.3f}: "
        f"{curve[-1][1]:.3f}"
      )

  measure()
  while len(todo) and (max_batches is None or batches < max_batches):
    batch, todo = todo[:batch_size], todo[batch_size:]
    result = _commit(table, ids[batch], rows[file_rows[batch]])
    if result.num_updated_rows != len(batch):
      raise InputError(
        f"a batch of {len(batch)} rows updated {result.num_updated_rows}: another "
        f"writer changed table {name!r} during the migration"
      )
    before, batches, done = done, batches + 1, done + len(batch)
    log(f"batch {batches}: {done}/{len(planned)} migrated, version {result.version}")
    if (10 * done) // len(planned) > (10 * before) // len(planned):
      measure()  # at each tenth of the planned rows crossed
  return {
    "plan": plan,
    "migrated": done,
    "planned": len(planned),
    "batches": batches,
    "version": table.version,
    "curve": curve,
  }


def _commit(table, ids: np.ndarray, rows: np.ndarray):
  """One batch: its new vectors and ``migrated``, in one ``merge_insert`` commit."""
  import pyarrow as pa

  batch = pa.table(
    {
      "id": pa.array(ids.tolist()).cast(table.schema.field("id").type),
      "vector": _vectors(rows),
      "migrated": pa.array(np.ones(len(ids), bool)),
    }
  )
  # Only rows still unmigrated are updated: a batch cannot write a row twice.
  return (
    table.merge_insert("id")
    .when_matched_update_all(where="target.migrated = false")
    .execute(batch)
  )


def self_recall(table, query_ids, queries, k: int = 10) -> float:
  """Self-retrieval Recall@k of ``queries`` in the table, by cosine.

  Args:
    table: a converted table (its latest version, or one checked out).
    query_ids: ``(q,)`` the queries' own ids.
    queries: ``(q, d_new)`` their new-model vectors.
    k: the neighbours searched.

  Returns:
    The share of queries whose own id is among their ``k`` nearest rows of
    ``vector`` (an exact search where the table has no vector index).
  """
  queries = check_rows("queries", queries, table.schema.field("vector").type.list_size)
  found = (
    table.search(queries, vector_column_name="vector")
    .distance_type("cosine")
    .limit(k)
    .select(["id", "_distance"])
    .to_arrow()
  )
  # One query comes back without a query_index column.
  names = found.column_names
  asked = (
    found["query_index"].to_pylist() if "query_index" in names else [0] * len(found)
  )
  hits = set(zip(asked, found["id"].to_pylist()))
  own = np.asarray(query_ids).tolist()
  return float(np.mean([(q, i) in hits for q, i in enumerate(own)]))


def rollback(db: str, name: str, tag: str = TAG) -> int:
  """Restores the version tagged ``tag`` as the table's newest; returns that version.

  The migration's versions stay in the history (``restore`` adds a version);
  the tag stays too, so a second rollback is the same.
  """
  table = open_table(db, name)
  tags = table.tags.list()
  if tag not in tags:
    raise InputError(
      f"table {name!r} has no tag {tag!r} (tags: {sorted(tags) or 'none'}); "
      "expected the tag a migration made"
    )
  table.restore(tag)
  return table.version
