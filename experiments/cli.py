"""What every absl binary of bcjax shares: flags, help, logging, user errors.

``--config`` takes a shipped config by name (``default``, ``paper``,
``test``, resolved inside the installed package, so binaries run from any
directory) or a path to a config file; ``--config.<field>=value`` overrides
a field. Components' hyperparameters are fields too
(``--config.transform.lowrank.rank=8``): the extensions that
``--config.imports`` names are loaded before the config file is read, so
their sections are there to set (:func:`bcjax.jobs.config.add_component_sections`).
``--help`` lists the flags and the config's fields; a misspelled or ill-typed
field, like any other user error, is one ``error:`` line and exit status 2.
``--distributed`` (with ``--coordinator_address``, ``--num_processes`` and
``--process_id`` where JAX cannot detect the cluster) makes the binary one
process of a multi-host job.
"""

import difflib
import importlib.util
import logging as std_logging
import os
import sys
from collections.abc import Callable

import jax
import jaxlib
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from bcjax import environment, extensions, sharding
from bcjax.errors import InputError, exit_on_user_error

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
SHIPPED_CONFIGS = ("default", "converged", "paper", "test")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for results and checkpoints.")
config_flags.DEFINE_config_file(
  "config",
  os.path.join(CONFIG_DIR, "default.py"),
  "Experiment config: a shipped one by name (default, converged, paper, test) "
  "or a "
  "config file's path; override fields with --config.<field>=value.",
)
flags.DEFINE_bool(
  "distributed",
  False,
  "Run as one process of a multi-process (multi-host) job: start JAX's "
  "distributed runtime first. With no other flag JAX detects SLURM, Cloud TPU "
  "or Open MPI, or reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
  "JAX_PROCESS_ID.",
)
flags.DEFINE_string(
  "coordinator_address", None, "With --distributed: host:port of process 0."
)
flags.DEFINE_integer("num_processes", None, "With --distributed: the process count.")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index.")
flags.mark_flags_as_required(["workdir"])

# The flags --help lists, in order.
LISTED_FLAGS = (
  "workdir",
  "config",
  "distributed",
  "coordinator_address",
  "num_processes",
  "process_id",
)
DISTRIBUTED_FLAGS = ("coordinator_address", "num_processes", "process_id")


def config_path(value: str) -> str:
  """The file of ``--config``'s value: a shipped name or a path as given."""
  if value in SHIPPED_CONFIGS:
    return os.path.join(CONFIG_DIR, f"{value}.py")
  return value


def load_config(path: str) -> ml_collections.ConfigDict:
  """``get_config()`` of the config file at ``path``."""
  if not os.path.isfile(path):
    raise InputError(
      f"--config={path!r} is neither a shipped config {SHIPPED_CONFIGS} nor a file"
    )
  spec = importlib.util.spec_from_file_location("bcjax_cli_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every field of ``config``, nested ones dotted (``consumer.epochs``)."""
  names = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      names += field_names(value, f"{prefix}{key}.")
    else:
      names.append(f"{prefix}{key}")
  return names


def _with_config_paths(argv: list[str]) -> list[str]:
  """``argv`` with ``--config=NAME`` (or ``--config NAME``) made a path."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + config_path(arg.split("=", 1)[1])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = config_path(out[i + 1])
  return out


def _config_arg(argv: list[str]) -> str:
  path = os.path.join(CONFIG_DIR, "default.py")
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
  return path


def load_imports(argv: list[str]) -> None:
  """Loads the extensions of ``--config.imports=...`` (and the entry points).

  Before the config file is read: its component sections are generated from
  what is registered then, and an override of an extension's field needs
  the extension's section.

  Raises:
    InputError: for a target that cannot be loaded.
  """
  targets = [a.split("=", 1)[1] for a in argv if a.startswith("--config.imports=")]
  for i, arg in enumerate(argv):
    if arg == "--config.imports" and i + 1 < len(argv):
      targets.append(argv[i + 1])
  extensions.load(",".join(targets))


def usage(argv: list[str]) -> str:
  """``--help``: the binary's docstring, its flags and the config's fields."""
  doc = (sys.modules["__main__"].__doc__ or "").strip()
  lines = [doc, "", "Flags:"]
  for name in LISTED_FLAGS:
    lines.append(f"  --{name}: {FLAGS[name].help}")
  path = _config_arg(argv)
  try:
    load_imports(argv)
    config = load_config(path)
  except InputError as e:
    lines += ["", f"(config fields not listed: {e})"]
    return "\n".join(lines)
  lines += ["", f"Config fields of {path} (--config.<field>=value):"]
  for name in field_names(config):
    value = config
    for part in name.split("."):
      value = value[part]
    lines.append(f"  {name} = {value!r}")
  return "\n".join(lines)


def _override_error(argv: list[str], error: Exception) -> str:
  """One line naming the override that failed, and the nearest fields."""
  overrides = [
    a[len("--config.") :].split("=", 1) for a in argv if a.startswith("--config.")
  ]
  try:
    names = field_names(load_config(_config_arg(argv)))
  except InputError as e:
    return str(e)
  for override in overrides:
    field = override[0]
    if field not in names:
      near = difflib.get_close_matches(field, names, n=3, cutoff=0.5)
      hint = f"; did you mean {', '.join(near)}?" if near else ""
      return f"--config has no field {field!r}{hint} (--help lists them all)"
  reason = str(error).strip().splitlines()
  return f"bad --config override: {reason[-1] if reason else type(error).__name__}"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with shipped config names, help and one-line errors."""
  argv = _with_config_paths(argv)
  if any(a in ("--help", "-h", "--helpshort", "-?") for a in argv[1:]):
    print(usage(argv))
    sys.exit(0)
  path = _config_arg(argv)
  if not os.path.isfile(path):
    print(
      f"error: --config={path!r} is neither a shipped config {SHIPPED_CONFIGS} "
      "nor a file",
      file=sys.stderr,
    )
    sys.exit(2)
  try:
    load_imports(argv)
    return FLAGS(argv)
  except flags.Error as e:
    if any(a.startswith("--config.") for a in argv) and "config" in str(e):
      message = _override_error(argv, e)
    else:
      message = str(e).strip().splitlines()[0]
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
  except InputError as e:
    # Before the ValueErrors below, of which it is one: its message is whole.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # Raised by ml_collections for an override of a field that is not there
    # or of the wrong type.
    print(f"error: {_override_error(argv, e)}", file=sys.stderr)
    sys.exit(2)


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
    environment.set_up_process(FLAGS.config.get("seed_batch", 1))
    with exit_on_user_error():
      start_distributed()
      warning = environment.slow_scatter_warning(
        jaxlib.__version__, jax.default_backend()
      )
      if warning:
        logging.warning(warning)
      run(FLAGS.config, FLAGS.workdir)

  return main


def start_distributed() -> None:
  """Starts JAX's distributed runtime if ``--distributed`` asks for it.

  Before anything touches a device: afterwards the backend exists and the
  runtime can no longer join it.

  Raises:
    InputError: a cluster flag without ``--distributed``, or a runtime JAX
      cannot start from what it was given.
  """
  given = [f"--{name}" for name in DISTRIBUTED_FLAGS if FLAGS[name].present]
  if not FLAGS.distributed:
    if given:
      raise InputError(f"{', '.join(given)} needs --distributed")
    return
  sharding.initialize_distributed(
    FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
  )
  logging.info(
    "process %d of %d; %d devices in all, %d here",
    jax.process_index(),
    jax.process_count(),
    jax.device_count(),
    jax.local_device_count(),
  )


def run_binary(run: Callable) -> None:
  """Runs ``run(config, workdir)`` as an absl binary with this module's flags."""
  app.run(main_for(run), flags_parser=parse_flags)
