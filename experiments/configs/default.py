r"""Default config: every version of the intended task in minutes on a CPU.

Smaller dims and fewer epochs than the paper, on the embedded synthetic data
(or any dataset via ``--config.dataset``).

Command::

  python -m experiments.run_intended --workdir=/tmp/bcjax_default \
      --config=experiments/configs/default.py

Expected result: ``/tmp/bcjax_default/results.json`` with five versions of
``nobc``; each version's best validation Recall@50 above the most-popular
baseline of the same split (both are in the file).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The default hyper-parameters."""
  config = ml_collections.ConfigDict()
  # Data.
  config.dataset = "synthetic"
  config.data_dir = ""
  config.synthetic = ml_collections.ConfigDict(
    dict(num_users=2000, num_items=1000, num_interactions=50_000, seed=0)
  )
  config.taus = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  config.num_versions = 5
  # Models: one entry per version; the paper grows both with the version.
  config.dims = (64, 80, 96, 112, 128)
  config.layers = (2, 2, 3, 3, 3)
  # Strategies (comma-separated).
  config.strategy = "nobc"
  # Optimisation (paper: Adam 1e-3, batch 2048, BPR + 1e-2 embedding L2).
  config.epochs = 60
  config.eval_every = 5
  config.batch_size = 2048
  config.learning_rate = 1e-3
  config.weight_decay = 1e-2
  # Evaluation.
  config.eval_chunk_size = 512
  config.seed = 0
  return config
