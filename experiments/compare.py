r"""The main job: every strategy, the consumers, the comparison table.

Usage::

  python -m experiments.compare --workdir=/tmp/bcjax \
      --config=experiments/configs/default.py \
      [--config.dataset=ml-100k --config.data_dir=../shared/data/ml-100k]

Writes ``WORKDIR/results.json``, ``table.md``, ``table.csv``, PNG plots and
the checkpoints of every version and consumer; a rerun on the same workdir
reuses them. Progress lines and the final table go to the log (stderr).
"""

from bcjax.jobs import comparison
from experiments import cli

if __name__ == "__main__":
  cli.run_binary(comparison.run)
