r"""Compatibility analytics of a finished run, retraining nothing.

Usage::

  python -m experiments.analyze --workdir=/tmp/bcjax_default \
      [--start_versions=0,2]

Reads the run's experiment from ``WORKDIR/results.json`` (no ``--config``;
:func:`bcjax.jobs.experiment.recorded`), its
versions from ``WORKDIR/checkpoints/``, and writes ``compatibility.json``,
``compatibility.md`` and ``compat_*.png`` into the workdir: consumers that
start at any version, retrieval against an old index, drift along the chain
(``bcjax/compatibility/``), and two rows toward the newest version k: blending
(users with a stored version-j vector query version j's index with
``slerp(z_j, B(z_k), alpha)``, ``alpha`` chosen by Recall@50 on half of them
and reported on the other half beside the stored and bridged queries) and
partial backfilling (Recall@50 of ``M_k``'s users as version j's index moves
from ``F(z_j)`` to ``z_k``, largest residual first against random, with the
area under each curve; ``compat_blend.png``, ``compat_backfill.png``). Consumers it fits are saved under
``WORKDIR/compatibility/consumers`` and reused by a rerun. Bad input is one
``error:`` line and exit status 2.
"""

from absl import app, flags, logging

from bcjax import compatibility, environment
from bcjax.errors import InputError, exit_on_user_error
from bcjax.jobs.analytics import analyze_workdir

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A workdir written by experiments.compare.")
flags.DEFINE_list(
  "start_versions", None, "Consumer start versions (default: every 0..K-2)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  environment.set_up_process()
  with exit_on_user_error():
    starts = None
    if FLAGS.start_versions is not None:
      try:
        starts = [int(v) for v in FLAGS.start_versions]
      except ValueError as e:
        raise InputError(
          f"--start_versions must be integers, got {','.join(FLAGS.start_versions)}"
        ) from e
    result = analyze_workdir(FLAGS.workdir, starts)
  print(compatibility.to_markdown(result))


if __name__ == "__main__":
  app.run(main)
