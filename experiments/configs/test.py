r"""A seconds-sized config for tests and smoke runs.

Command::

  python -m experiments.compare --workdir=/tmp/bcjax_test \
      --config=experiments/configs/test.py

Expected result: about a minute on 2 CPU cores (mostly compilation); every
output of the main job (results.json, table.md, table.csv, plots) for the
paper's eight strategies over two versions of a tiny synthetic graph; the
numbers mean nothing.

The components' hyperparameters are fields like any other (``--help`` lists
them, an extension's too once ``--config.imports`` loads it), e.g. an MLP
transform of width 32 and a longer post-hoc fit::

  python -m experiments.compare --workdir=/tmp/bcjax_test_mlp \
      --config=experiments/configs/test.py --config.strategy=paper,posthoc-mlp-sloss \
      --config.transform.mlp.hidden=32 --config.method.posthoc.epochs=8
"""

from experiments.configs import default


def get_config():
  """Tiny sizes: two versions, a few epochs."""
  config = default.get_config()
  config.synthetic.num_users = 120
  config.synthetic.num_items = 80
  config.synthetic.num_interactions = 1500
  config.num_versions = 2
  config.dims = (16, 24)
  config.layers = (1, 2)
  config.epochs = 4
  config.eval_every = 2
  config.batch_size = 256
  config.eval_chunk_size = 64
  config.method.joint.keep_after = 1
  config.method.posthoc.epochs = 4
  config.method.posthoc.keep_after = 1
  config.method.finetune_m0.epochs = 2
  config.consumer.hidden_sizes = (16,)
  config.consumer.dropouts = (0.0,)
  config.consumer.seeds = 1
  config.consumer.epochs = 2
  config.consumer.batch_size = 256
  config.num_seeds = 1
  return config
