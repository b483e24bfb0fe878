"""Compatibility analytics beyond the paper (DESIGN §5).

The paper measures compatibility one way: consumers trained on version 0 and
read through the chain at later versions. This module asks five more
questions of the saved versions of every strategy, read through the public
registry (:func:`bcjax.registry.open`) and the strategies' checkpoint folders:

1. **Consumers that start at any version** ``j`` (0..K-2): each core task's
   consumer trained on the strategy's saved ``z_j`` with version ``j``'s
   labels (selection shifted by ``j`` as for version-0 consumers), evaluated
   at every ``k > j`` on ``B_{j+1..k}(z_k)``, beside the same consumer on the
   frozen ``M_j`` run on ``G_k`` (the fix-m0 analogue of a consumer that
   started at ``j``). The ``j = 0`` row is the paper's unintended column.
2. **Retrieval against an old index** (BCT, Shen et al., CVPR 2020): for
   ``j < k``, Recall@50 of version ``k``'s validation users against the items
   of version ``j``: new query (``M_k`` read through the chain) against the old
   index (saved item ``z_j``), old query (``M_j`` on ``G_k``) against it, and
   new query against the new index (``M_k``'s embeddings of the same items).
   The update is compatible when new/old beats old/old.
3. **Drift along the chain**: for ``j < k``, the mean L2 distance (users and
   items pooled) between ``B_{j+1..k}(z_k)`` and the saved ``z_j``, over the
   mean norm of ``z_j``'s rows.
4. **Blending** (SLERP BC): for ``j`` below the newest version ``k``, users
   with a stored ``z_j`` query the old index with
   ``slerp(z_j, B_{j+1..k}(z_k), alpha)``, ``alpha`` chosen on half of them
   by Recall@50 and reported on the other half beside the stored
   (``alpha = 0``) and bridged (``alpha = 1``) queries.
5. **Partial backfilling** (FastFill): version ``j``'s item index moves to
   the newest model row by row, the rest served by a forward map
   ``F(z_j)``; Recall@50 of ``M_k``'s users as the backfilled fraction goes
   from 0 to 1, largest residual first against random, and the area under
   each curve (:mod:`bcjax.compatibility.serving`); with consumers, each
   task's consumers of the newest version reading the backfilling index
   along the same orders (:mod:`bcjax.compatibility.backfill_consumers`).

Everything runs on a workdir's saved versions and consumers; consumers that
start after version 0 are saved under ``workdir/compatibility/consumers`` and
reused by a rerun (:mod:`bcjax.jobs.analytics` runs them as a job).
:func:`analyze` writes ``compatibility.json``, ``compatibility.md`` and the
plots (:mod:`bcjax.evaluation.compatibility_plots`).
"""

from bcjax.compatibility.analysis import (  # noqa: F401
  AnalyticsConfig,
  analyze,
  enabled,
  settings_from_config,
)
from bcjax.compatibility.backfill_consumers import (  # noqa: F401
  USER_ONLY,
  consumer_backfill_curves,
  consumer_backfilling,
  newest_consumers,
  newest_tasks,
)
from bcjax.compatibility.measures import (  # noqa: F401
  chain_drift,
  consumer_key,
  consumer_row,
  index_split,
  relative_drift,
  retrieval,
  retrieval_recalls,
  start_consumer,
  summarize_consumers,
)
from bcjax.compatibility.report import (  # noqa: F401
  mean_drift_by_length,
  to_markdown,
  write_outputs,
)
from bcjax.compatibility.serving import (  # noqa: F401
  BACKFILL_ORDERS,
  backfill_curves,
  backfill_index,
  backfilling,
  blended_queries,
  blending,
  blending_recalls,
  forward_map,
)
from bcjax.compatibility.stores import (  # noqa: F401
  KINDS,
  RETRIEVAL_K,
  FrozenModels,
  check_start_versions,
  check_strategy_folder,
  digest,
  saved_tables,
)
