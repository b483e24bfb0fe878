"""Bring your own embeddings: bridges between embedding models bcjax did not train.

What belongs here: fitting, applying, measuring, chaining and storing
**bridges** ``B: new-version embeddings -> old-version space`` from plain
arrays of matched rows, with no graph, training run or checkpoint of bcjax
behind them. (Backward transforms trained *with* an embedding model live in
:mod:`bcjax.components.transforms`; serving a bcjax run's versions in
:mod:`bcjax.registry`.)

* :func:`fit` (:mod:`bcjax.align.fitting`): one family, or ``family="auto"``
  choosing a family, its hyper-parameters and whether to centre and
  L2-normalise by k-fold validation self-retrieval and neighbour overlap,
  with a paired one-standard-error rule (:mod:`bcjax.align.selection`).
* Families (:mod:`bcjax.align.families`, :mod:`bcjax.align.mlp`; the
  preprocessing and moments they share in :mod:`bcjax.align.moments`), each with
  its hyper-parameters as a frozen dataclass: ``linear`` (:class:`LinearHP`),
  ``orthogonal`` (:class:`OrthogonalHP`), ``reducedrank``
  (:class:`ReducedRankHP`), ``softorthogonal`` (:class:`SoftOrthogonalHP`),
  ``mlp`` (:class:`MLPHP`); :func:`register_family` adds one.
* :class:`Bridge` (:mod:`bcjax.align.bridge`): ``apply``, ``save``/:func:`load`,
  ``export_npz`` (matrix and bias for a vector store).
* :class:`Chain` (:mod:`bcjax.align.chain`): bridges of versions ``0..K``,
  collapsed into one affine map per version or applied step by step.
* :mod:`bcjax.align.store`: a chain, the newest rows with their ids and
  maybe older versions' rows on disk (:func:`bcjax.align.store.write`),
  served by ``bcjax.registry.open`` as an :class:`AlignRegistry`
  (``embeddings(version=j, ids=[...], blend=None | alpha | True)``).
* :mod:`bcjax.align.measures`: MSE, cosine, self-retrieval Recall@K,
  neighbour overlap@K, class retrieval and retention.
* :mod:`bcjax.align.blend`: ``slerp(stored, bridged, alpha)``, the SLERP
  blend of a row's stored old vector and its bridged new one, with ``alpha``
  chosen by validation class retrieval.
* :mod:`bcjax.align.backfill`: a forward map ``F: old -> new``, backfilling
  orders (largest residual first; random) and the backfilling curve and its
  area as a mixed index moves to the new model.
* :mod:`bcjax.align.lancedb_table` (imported by name; LanceDB comes with the
  ``stores`` extra): a LanceDB table of old vectors migrated to the new model
  batch by batch in a backfilling order (``migrate``), resumable after a
  crash and rolled back by a tag (``rollback``).
* :mod:`bcjax.align.consumers`: a logistic regression and a small MLP
  trained on old vectors, scored on bridged ones, with the negative-flip rate.
* :mod:`bcjax.align.decision`: bridge, re-index or no upgrade needed, from
  thresholds on retention and upgrade gain judged by intervals over splits.
* :mod:`bcjax.align.report`: the Markdown tables of ``experiments.align``.

Example::

  from bcjax import align

  bridge = align.fit(old=old_vectors, new=new_vectors)  # family="auto"
  print(bridge.family, bridge.center, bridge.normalize, bridge.selection.scores)
  served = bridge.apply(new_query_vectors)       # in the old space
  bridge.export_npz("bridge.npz")                # matrix, bias, means
"""

from bcjax.align import backfill, blend, consumers, decision, measures, store
from bcjax.align.bridge import Bridge, check_rows, load
from bcjax.align.chain import Chain, load_chain
from bcjax.align.families import (
  FAMILIES,
  Family,
  LinearHP,
  OrthogonalHP,
  ReducedRankHP,
  SoftOrthogonalHP,
  get_family,
  register_family,
)
from bcjax.align.fitting import AUTO, fit
from bcjax.align.mlp import MLPHP
from bcjax.align.selection import Candidate, Selection, choose
from bcjax.align.store import AlignRegistry

__all__ = [
  "AUTO",
  "AlignRegistry",
  "FAMILIES",
  "MLPHP",
  "Bridge",
  "Candidate",
  "Chain",
  "Family",
  "LinearHP",
  "OrthogonalHP",
  "ReducedRankHP",
  "Selection",
  "SoftOrthogonalHP",
  "backfill",
  "blend",
  "check_rows",
  "consumers",
  "decision",
  "choose",
  "fit",
  "get_family",
  "load",
  "load_chain",
  "measures",
  "register_family",
  "store",
]
