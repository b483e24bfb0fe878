r"""Trains every embedding version of each strategy on the intended task.

Usage::

  python -m experiments.run_intended --workdir=/tmp/bcjax \
      --config=experiments/configs/default.py \
      [--config.strategy=nobc,bc-aligner] \
      [--config.dataset=ml-100k --config.data_dir=../shared/data/ml-100k]

Writes ``WORKDIR/results.json`` and ``WORKDIR/checkpoints/<strategy>/``;
progress lines go to the log (stderr).
"""

from bcjax.jobs import runner
from experiments import cli

if __name__ == "__main__":
  cli.run_binary(runner.run)
