"""What every absl binary of bcjax shares: flags, logging and user errors."""

import logging as std_logging
import sys
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from bcjax.errors import InputError, TrainingDivergedError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for results and checkpoints.")
config_flags.DEFINE_config_file(
  "config", "experiments/configs/default.py", "Experiment config file."
)
flags.mark_flags_as_required(["workdir"])


def _not_library_chatter(record) -> bool:
  """Drops the INFO lines of Orbax and JAX, keeping bcjax's progress."""
  noisy = ("/orbax/", "/jax/", "/jaxlib/")
  return record.levelno > std_logging.INFO or not any(
    n in record.pathname for n in noisy
  )


def main_for(run: Callable) -> Callable:
  """An absl ``main`` that calls ``run(config, workdir)``."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # ABSLHandler forwards records to its python_handler without filtering.
    logging.get_absl_handler().python_handler.addFilter(_not_library_chatter)
    try:
      run(FLAGS.config, FLAGS.workdir)
    except InputError as e:
      # A user error: its message says what to fix; a traceback would bury it.
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except TrainingDivergedError as e:
      # Names strategy, version and epoch; what was saved before is intact.
      print(f"error: {e}", file=sys.stderr)
      sys.exit(3)

  return main
