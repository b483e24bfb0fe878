r"""Default config: the whole comparison in minutes on a CPU.

Smaller dims and fewer epochs than the paper, on the embedded synthetic data
(or any dataset via ``--config.dataset``).

Command::

  python -m experiments.compare --workdir=/tmp/bcjax_default \
      --config=experiments/configs/default.py

A component's hyperparameters are set as ``--config.method.joint.align_weight=8``
or ``--config.transform.linear.init=identity``; ``--help`` lists them all,
an extension's too once ``--config.imports`` names it.

Expected result: minutes on 2 CPU cores; ``table.md`` with the paper's
eight strategies over five versions, fix-m0 well below nobc on the intended
task and nobc well below fix-m0 on the unintended tasks (the committed runs'
numbers, read from their files, are in docs/results.md). ``experiments.run_intended`` with
this config writes the intended-task part alone.
"""

import ml_collections

from bcjax.jobs import config as config_lib


def get_config() -> ml_collections.ConfigDict:
  """The default hyper-parameters."""
  config = ml_collections.ConfigDict()
  # Data.
  config.dataset = "synthetic"
  config.data_dir = ""
  # RecBole atomic datasets: the item fields to embed, comma-separated; empty
  # for those whose values repeat (see bcjax/data/recbole.py).
  config.item_fields = ""
  config.synthetic = ml_collections.ConfigDict(
    dict(num_users=2000, num_items=1000, num_interactions=50_000, seed=0)
  )
  config.taus = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  config.num_versions = 5
  # Models: one entry per version; the paper grows both with the version.
  config.dims = (32, 40, 48, 56, 64)
  config.layers = (2, 2, 3, 3, 3)
  # Strategies (comma-separated names, or "paper" for the paper's eight).
  config.strategy = "paper"
  # Modules (or module:function) that register methods, transforms, losses;
  # their hyperparameters get sections below like the built-in ones.
  config.imports = ""
  # Optimisation (paper: Adam 1e-3, batch 2048, BPR + 1e-2 embedding L2, 500
  # epochs). With 40 epochs, 1e-3 stops short of the plateau that 1e-2
  # reaches (ml-100k version 0: Recall@50 0.227 vs 0.248 at dim 32).
  config.epochs = 40
  config.eval_every = 5
  # Early stopping of the embedding fits: stop at the first evaluation that
  # finds the kept epoch this many epochs old (0: train every epoch).
  config.patience = 0
  config.batch_size = 2048
  config.learning_rate = 1e-2
  config.weight_decay = 1e-2
  # Evaluation.
  config.eval_chunk_size = 512
  # Unintended tasks: comma-separated names, empty for all the data has.
  config.tasks = ""
  # Consumer models (paper: hidden {128, 256, 512, 1024} x dropout
  # {0, 0.25, 0.5}, 10 seeds, 300 epochs).
  config.consumer = ml_collections.ConfigDict(
    dict(
      hidden_sizes=(128,),
      dropouts=(0.0, 0.25),
      seeds=2,
      epochs=20,
      batch_size=2048,
      learning_rate=1e-3,
    )
  )
  # Compatibility analytics beyond the paper (bcjax/compatibility/):
  # consumers that start at any version, retrieval against an old index,
  # drift along the chain, blending and partial backfilling toward the newest
  # version. start_versions: () = every 0..K-2.
  config.compatibility = ml_collections.ConfigDict(
    dict(
      enabled=False,
      start_versions=(),
      consumers=True,
      retrieval=True,
      drift=True,
      blending=True,
      backfilling=True,
    )
  )
  config.seed = 0
  # Embedding seeds: the whole pipeline once per seed, each with its own M_0;
  # table cells are means over seeds with 95% Student-t intervals.
  config.num_seeds = 1
  # Embedding seeds trained per program (1: seed after seed). With S > 1,
  # groups of S seeds run in lockstep and their like fits train as one
  # vmapped program (bcjax.jobs.seed_lockstep): more seeds per hour, each
  # seed its own run alone up to float rounding; one device only.
  config.seed_batch = 1
  # Devices to train data-parallel on (1: one device, 0: all visible ones).
  config.num_devices = 1
  # Sums of rows in a step: "pallas" (a Triton kernel, GPU), "mosaic" (its
  # Mosaic GPU port, Hopper) and "sorted" (degree buckets, any backend) are
  # bit-reproducible, "scatter" (atomic scatter-add) only on CPU and TPU; ""
  # picks the fastest reproducible one for the backend (pallas on Hopper
  # GPUs, sorted on older ones, scatter elsewhere).
  config.layout = ""
  # Which validation users pick each version's kept epoch and which report
  # its Recall@K: "held_out" (two halves by a hash of the user id seeded by
  # the embedding seed: one picks, the other reports; the unintended tasks'
  # examples split by the same users, item tasks by item) or "validation"
  # (the reference's: the same users, so the reported number is the one that
  # won the selection: optimistic).
  config.report_split = "held_out"
  # Whether a rerun may reuse versions made under other process settings
  # (NPROC, OPENBLAS_NUM_THREADS, XLA_FLAGS: they change bits). False refuses
  # with one line naming the setting; True reuses them and results.json's
  # environment lists each difference (process_differences).
  config.allow_process_differences = False
  # Choosing a method hyperparameter on tuning seeds (bcjax.jobs.weight_tuning):
  # with two or more `weights`, every strategy of config.strategy whose method
  # has `field` runs at each of them (beside nobc and fix-m0) and results.json
  # records, per strategy, the value of best mean total on the selection
  # halves (weight_selection). Run it under another config.seed than the
  # report runs, so that no tuning seed is reported. Empty: no tuning.
  config.tuning = ml_collections.ConfigDict({"field": "align_weight", "weights": ()})
  # Every registered component's hyperparameters, from its dataclass:
  # config.transform.<family>.<field>, config.loss.<loss>.<field>,
  # config.method.<method>.<field> (finetune-m0 as finetune_m0), at the
  # dataclasses' defaults (the paper's), then this config's own values.
  config_lib.add_component_sections(config)
  # Backward compatibility (paper: lambda 16; joint strategies keep epochs
  # after 50 of 500; post-hoc B_k 200 epochs keeping the best after 50;
  # finetune-m0 250 epochs per update).
  config.method.joint.align_weight = 16.0
  config.method.joint.keep_after = 5
  # Post-hoc B_k: Adam at the reference's fixed 1e-3 (not the models' rate),
  # on BPR triples; the alignment error is checked every eval_every epochs.
  config.method.posthoc.epochs = 100
  config.method.posthoc.keep_after = 20
  config.method.posthoc.learning_rate = 1e-3
  config.method.finetune_m0.epochs = 20
  config.transform.mlp.hidden = 0  # 0 = max(d_in, d_out)
  # Linear B_k's start: "uniform" (the reference's torch.nn.Linear default,
  # U(+-1/sqrt(d_k))) or "identity" (the truncated identity).
  config.transform.linear.init = "uniform"
  # closedform-linear-*: ridge relative to the mean diagonal of Z^T Z.
  config.method.closedform.ridge = 1e-6
  return config
