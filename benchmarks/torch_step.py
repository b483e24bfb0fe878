"""The same intended-task step in PyTorch + PyG, to compare bcjax against.

What a researcher would otherwise write: an attribute item encoder
(``EmbeddingBag``, mean, summed over attribute kinds), one shared user vector,
``num_layers`` PyG ``SAGEConv`` (mean) each followed by ``BatchNorm1d`` with
ReLU between, a full-graph forward in every step, BPR with the paper's
batch-embedding L2, and Adam: the model of :mod:`bcjax.models.pinsage`.

Two message-passing layouts are timed: PyG's default ``edge_index`` (gather
then scatter) and a sparse CSR adjacency (``torch.sparse`` product), which
PyG's ``SAGEConv`` accepts in place of ``edge_index``. The comparison uses
the faster.

Triples are sampled on the device like bcjax's, but negatives are drawn
uniformly from all items without excluding positives, which costs less than
bcjax's exact sampling; the difference is negligible beside the graph pass.

PyTorch is an optional extra (``pip install -e .[bench]``): importing this
module does not need it, :func:`available` tells whether it is installed.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
import warnings

import numpy as np

from bcjax.data.split import VersionSplit
from bcjax.models.device_graph import BipartiteGraph


def available() -> bool:
  """Whether torch and torch_geometric are importable."""
  return all(importlib.util.find_spec(m) for m in ("torch", "torch_geometric"))


def matmul_precision() -> str:
  """How PyTorch computes float32 matmuls here (``highest`` means no TF32)."""
  import torch

  return torch.get_float32_matmul_precision()


def time_step(
  graph: BipartiteGraph,
  split: VersionSplit,
  dim: int,
  num_layers: int,
  *,
  batch_size: int = 2048,
  steps: int = 20,
  warmup: int = 3,
  layout: str = "edge_index",
  device: str = "cpu",
  weight_decay: float = 1e-2,
  tf32: bool = False,
) -> dict:
  """Median wall time of one training step.

  Args:
    graph: bcjax's training graph of the version (read on the host).
    split: the version's split (its training interactions are the edges).
    dim: embedding dimension.
    num_layers: SAGE layers.
    batch_size: BPR triples per step.
    steps: timed steps after ``warmup`` untimed ones.
    warmup: untimed steps.
    layout: ``"edge_index"`` or ``"csr"``.
    device: a torch device string.
    weight_decay: weight of the batch-embedding L2.
    tf32: let float32 matmuls use TF32 tensor cores (JAX's GPU default);
      else full float32, PyTorch's default.

  Returns:
    ``{"step_s", "layout", "threads", "matmul_precision", "losses"}``.
  """
  if layout not in ("edge_index", "csr"):
    raise ValueError(f"layout must be 'edge_index' or 'csr', got {layout!r}")
  with warnings.catch_warnings():
    # Beta-state notices of torch.sparse and read-only NumPy views.
    warnings.simplefilter("ignore", UserWarning)
    import torch
    from torch import nn
    from torch_geometric.nn import SAGEConv

    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device(device)
    n = graph.num_nodes
    user = split.train_user.astype(np.int64)
    item = split.num_users + split.train_item.astype(np.int64)
    # Every interaction is an edge both ways, as in bcjax's graph.
    edge_index = torch.as_tensor(
      np.stack([np.concatenate([user, item]), np.concatenate([item, user])]),
      dtype=torch.long,
      device=dev,
    )
    if layout == "csr":
      # SAGEConv's sparse path expects the transposed adjacency (row =
      # receiver). Coalescing merges a repeated interaction into one entry of
      # weight 2 and PyG's mean divides by distinct neighbours: a small
      # numerical difference from bcjax's parallel edges, the same work.
      adj = torch.sparse_coo_tensor(
        edge_index.flip(0), torch.ones(edge_index.shape[1], device=dev), (n, n)
      ).coalesce()
      messages = adj.to_sparse_csr()
    else:
      messages = edge_index

    bags = []
    for kind in sorted(split.item_attrs):
      attr = split.item_attrs[kind]
      bags.append(
        (
          torch.as_tensor(attr.values, dtype=torch.long, device=dev),
          torch.as_tensor(attr.offsets[:-1], dtype=torch.long, device=dev),
          graph.item_attrs[kind].vocab_size,
        )
      )

    class Model(nn.Module):
      def __init__(self):
        super().__init__()
        self.user = nn.Parameter(torch.randn(1, dim) * 0.1)
        self.tables = nn.ModuleList(
          nn.EmbeddingBag(vocab, dim, mode="mean") for _, _, vocab in bags
        )
        self.convs = nn.ModuleList(
          SAGEConv(dim, dim, aggr="mean", bias=False) for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(num_layers))

      def forward(self):
        items = sum(
          table(values, offsets)
          for table, (values, offsets, _) in zip(self.tables, bags, strict=True)
        )
        x = torch.cat([self.user.expand(graph.num_users, dim), items])
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
          x = norm(conv(x, messages))
          if layer < num_layers - 1:
            x = torch.relu(x)
        return x[: graph.num_users], x[graph.num_users :]

    torch.manual_seed(0)
    model = Model().to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    active = torch.as_tensor(
      np.asarray(graph.active_users), dtype=torch.long, device=dev
    )
    indptr = torch.as_tensor(np.asarray(graph.pos_indptr), dtype=torch.long, device=dev)
    pos_items = torch.as_tensor(
      np.asarray(graph.pos_items), dtype=torch.long, device=dev
    )

    def step():
      user = active[torch.randint(len(active), (batch_size,), device=dev)]
      start, end = indptr[user], indptr[user + 1]
      offset = (torch.rand(batch_size, device=dev) * (end - start)).long()
      pos = pos_items[start + offset]
      neg = torch.randint(graph.num_items, (batch_size,), device=dev)
      users, items = model()
      u, p, q = users[user], items[pos], items[neg]
      bpr = nn.functional.softplus((u * q).sum(-1) - (u * p).sum(-1)).mean()
      reg = 0.5 * (u.square().sum() + p.square().sum() + q.square().sum()) / batch_size
      loss = bpr + weight_decay * reg
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      return loss.detach()

    def synchronize():
      if dev.type == "cuda":
        torch.cuda.synchronize()

    model.train()
    losses = []
    for _ in range(warmup):
      losses.append(float(step()))
    times = []
    for _ in range(steps):
      synchronize()
      tick = time.perf_counter()
      loss = step()
      synchronize()
      times.append(time.perf_counter() - tick)
      losses.append(float(loss))
    return {
      "step_s": statistics.median(times),
      "layout": layout,
      "threads": torch.get_num_threads(),
      "matmul_precision": matmul_precision(),
      "losses": losses,
    }
