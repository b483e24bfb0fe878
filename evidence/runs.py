r"""The committed runs: what each is, the parts it is made of, their commands.

A 10-seed run of every strategy outlasts a working session on 2 CPU cores,
and its workdir's checkpoints do not outlive the session; so each run of
:data:`RUNS` is made of parts (:class:`Part`: one ``experiments.compare``
run of some strategies, its ``results.json`` committed under
``experiments/results/parts/``) and merged by ``experiments.merge`` into
``experiments/results/<run>/``, which the report reads. Each part trains
what it needs (nobc again for the post-hoc ones: bit-identical, not taken).

  python -m evidence.runs           # the parts still to make, and how
  python -m evidence.runs --all     # every part's and run's command
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

from bcjax.methods.strategies import PAPER_STRATEGIES, parse_strategy

flags.DEFINE_bool("all", False, "Every part and run, made or not.")
FLAGS = flags.FLAGS

PARTS_DIR = "experiments/results/parts"
ML100K = ("--config.dataset=ml-100k", "--config.data_dir=../shared/data/ml-100k")
SYNTHETIC = ()
# The paper's eight, then bcjax's own: the order of the merged tables.
ORDER = (
  *PAPER_STRATEGIES,
  "closedform-linear-sloss",
  "closedform-orthogonal-sloss",
  "posthoc-orthogonal-sloss",
  "posthoc-mlp-sloss",
  "joint-orthogonal-mloss",
)


@dataclasses.dataclass(frozen=True)
class Part:
  """One ``experiments.compare`` run of some strategies of a setting.

  Attributes:
    folder: its folder under :data:`PARTS_DIR` (and its workdir's name).
    data: the data's ``--config`` flags.
    strategies: its ``--config.strategy``; fix-m0, the unintended
      reference and free to run, is in each, so that ``experiments.merge``
      can check the parts share M_0 and the consumers.
    overrides: its other ``--config`` flags (a sweep's weight; a tuning
      run's ``config.seed`` and ``config.tuning.weights``).
    seeds: its embedding seeds, trained in lockstep.
  """

  folder: str
  data: tuple[str, ...]
  strategies: tuple[str, ...]
  overrides: tuple[str, ...] = ()
  seeds: int = 10

  @property
  def tuning(self) -> bool:
    """Whether it chooses a weight (:mod:`bcjax.jobs.weight_tuning`): the
    merge takes its ``weight_selection``, not its strategies."""
    return any(o.startswith("--config.tuning.weights=") for o in self.overrides)

  @property
  def workdir(self) -> str:
    return f"/tmp/bcjax_parts/{self.folder}"

  @property
  def path(self) -> str:
    return f"{PARTS_DIR}/{self.folder}"

  def command(self, config: str = "converged") -> str:
    flags_ = [
      f"--workdir={self.workdir}",
      f"--config={config}",
      *self.data,
      f"--config.num_seeds={self.seeds}",
      f"--config.seed_batch={self.seeds}",
      f"--config.strategy={','.join(self.strategies)}",
      *self.overrides,
    ]
    # Copied only when the run succeeds: a failed one may leave an earlier
    # results.json in the workdir.
    return (
      "python -m experiments.compare " + " \\\n    ".join(flags_) + " \\\n"
      f"  && mkdir -p {self.path} && cp {self.workdir}/results.json {self.path}/"
    )


@dataclasses.dataclass(frozen=True)
class Run:
  """One committed run of the results page.

  Attributes:
    name: its folder under ``experiments/results``.
    title: its heading on the results page.
    about: what it is, in a sentence.
    parts: ``(part, strategies taken from it)``, the merge's order; an
      empty tuple takes every strategy of the part. No parts: a run made
      in one go, by ``command``.
    differ: config fields its parts may differ in (``experiments.merge``).
    anchored: whether it runs the paper's strategies, checked against the
      paper's anchor (else only BC-Aligner's ranking is stated).
    command: a run made in one go: how to rerun it.
  """

  name: str
  title: str
  about: str
  parts: tuple[tuple[Part, tuple[str, ...]], ...] = ()
  differ: tuple[str, ...] = ()
  anchored: bool = True
  command: str = ""

  def strategies(self, parts=None) -> tuple[str, ...]:
    """The strategies ``parts`` (default: every part but a tuning one) give,
    in table order: a strategy at a chosen weight after its plain name."""
    parts = self.parts if parts is None else parts
    taken = {
      s for part, names in parts if not part.tuning for s in names or part.strategies
    }
    rank = {name: i for i, name in enumerate(ORDER)}
    base = {s: parse_strategy(s).base_name for s in taken}
    known = [s for s in taken if base[s] in rank]
    return tuple(sorted(known, key=lambda s: (rank[base[s]], s)))

  def made(self, root: str = ".") -> tuple[tuple[Part, tuple[str, ...]], ...]:
    """The parts whose ``results.json`` is committed."""
    return tuple((p, n) for p, n in self.parts if _made(p, root))

  def merge_command(self, parts=None) -> str:
    """``experiments.merge`` of ``parts`` (default: every part)."""
    parts = self.parts if parts is None else parts
    specs = [
      part.path + (":" + ",".join(names) if names else "") for part, names in parts
    ]
    flags_ = [
      f"--out=experiments/results/{self.name}",
      f"--strategy={','.join(self.strategies(parts))}",
      *([f"--differ={','.join(self.differ)}"] if self.differ else []),
      *specs,
    ]
    return "python -m experiments.merge " + " \\\n    ".join(flags_)


def _made(part: Part, root: str) -> bool:
  return os.path.exists(os.path.join(root, part.path, "results.json"))


def _parts(data, prefix):
  """A dataset's parts: nobc's family, the joint models, two weights."""
  nobc = Part(
    f"{prefix}/nobc",
    data,
    ("nobc", "fix-m0", "posthoc-linear-sloss", "joint-linear-mloss"),
  )
  # The post-hoc strategies train nobc again (bit-identical, not taken):
  # a part must fit a session and its workdir does not outlive it.
  posthoc = Part(
    f"{prefix}/posthoc",
    data,
    (
      "nobc",
      "fix-m0",
      "posthoc-linear-mloss",
      "closedform-linear-sloss",
      "closedform-orthogonal-sloss",
    ),
  )
  posthoc_own = Part(
    f"{prefix}/posthoc-own",
    data,
    ("nobc", "fix-m0", "posthoc-orthogonal-sloss", "posthoc-mlp-sloss"),
  )
  joint = Part(
    f"{prefix}/joint", data, ("fix-m0", "finetune-m0", "joint-notrans-sloss")
  )
  joint_linear = Part(
    f"{prefix}/joint-linear",
    data,
    ("fix-m0", "joint-linear-sloss", "joint-orthogonal-mloss"),
  )
  weights = {
    w: Part(
      f"{prefix}/lambda{w}",
      data,
      ("fix-m0", "joint-linear-mloss"),
      overrides=(f"--config.method.joint.align_weight={w}",),
    )
    for w in (4, 1)
  }
  return nobc, posthoc, posthoc_own, joint, joint_linear, weights


def _dataset_runs(name, title, data):
  nobc, posthoc, posthoc_own, joint, joint_linear, weights = _parts(data, name)
  main = Run(
    f"{name}_converged",
    f"{title}, converged config, 10 seeds",
    "The paper's eight strategies and bcjax's own, every fit trained until it "
    "stops improving (`experiments/configs/converged.py`), over 10 embedding "
    "seeds.",
    parts=(
      (nobc, ()),
      # The post-hoc parts' nobc and fix-m0 are the nobc part's: not taken.
      (posthoc, posthoc.strategies[2:]),
      (posthoc_own, posthoc_own.strategies[2:]),
      (joint, ()),
      (joint_linear, ()),
    ),
  )
  sweep = {16: main.name}
  runs = [main]
  for w, part in weights.items():
    runs.append(
      Run(
        f"{name}_converged_lambda{w}",
        f"{title}, converged config, 10 seeds: BC-Aligner at lambda {w}",
        f"BC-Aligner with `align_weight` {w} (the config's is 16) against nobc, "
        "posthoc-linear-sloss and closedform-linear-sloss of the main run's "
        "seeds.",
        parts=(
          (part, ()),
          (nobc, ("nobc", "posthoc-linear-sloss")),
          # posthoc-linear-sloss's least-squares optimum: the post-hoc
          # baseline a weight has to beat.
          (posthoc, ("closedform-linear-sloss",)),
        ),
        differ=("method.joint.align_weight",),
        anchored=False,
      )
    )
    sweep[w] = runs[-1].name
  return runs, dict(sorted(sweep.items()))


_ML100K_RUNS, ML100K_SWEEP = _dataset_runs("ml-100k", "MovieLens-100K", ML100K)
_SYNTHETIC_RUNS, SYNTHETIC_SWEEP = _dataset_runs("synthetic", "Synthetic", SYNTHETIC)

# Earlier runs: the default config (whose joint fits stop before they
# converge), 3 seeds, made in one go by older code.
EARLIER_RUNS = (
  Run(
    "ml-100k_default",
    "MovieLens-100K, default config, 3 seeds",
    "The first committed run: the default config on MovieLens-100K.",
    command="python -m experiments.compare --workdir=/tmp/bcjax_ml100k \\\n"
    "    --config=experiments/configs/default.py --config.dataset=ml-100k \\\n"
    "    --config.data_dir=../shared/data/ml-100k --config.num_seeds=3 \\\n"
    "    --config.strategy=paper",
  ),
  Run(
    "synthetic_default",
    "Synthetic (the embedded default), default config, 3 seeds",
    "The README's main command with three seeds.",
    command="python -m experiments.compare --workdir=/tmp/bcjax_synthetic \\\n"
    "    --config=experiments/configs/default.py --config.num_seeds=3 \\\n"
    "    --config.strategy=paper",
  ),
  Run(
    "ml-100k_new_strategies",
    "MovieLens-100K, default config, 3 seeds: bcjax's own strategies",
    "bcjax's own strategies beside the references and BC-Aligner, with the "
    "seeds of the first run.",
    anchored=False,
    command="python -m experiments.compare --workdir=/tmp/bcjax_ml100k_new \\\n"
    "    --config=experiments/configs/default.py --config.dataset=ml-100k \\\n"
    "    --config.data_dir=../shared/data/ml-100k --config.num_seeds=3 \\\n"
    "    --config.strategy=nobc,fix-m0,joint-linear-mloss,closedform-linear-sloss,\\\n"
    "closedform-orthogonal-sloss,posthoc-orthogonal-sloss,joint-orthogonal-sloss,\\\n"
    "joint-orthogonal-mloss",
  ),
)

# The held-out protocol (issue 40), proven small before the evidence runs:
# BC-Aligner's weight chosen on three tuning seeds of config.seed 100, then
# three report seeds of config.seed 0 running it at lambda 16 and at the
# chosen weight.
_PROOF_TUNING = Part(
  "ml-100k_heldout/tuning",
  ML100K,
  ("joint-linear-mloss",),
  overrides=("--config.seed=100", "--config.tuning.weights='(1,4,16)'"),
  seeds=3,
)
# BC-Aligner at the weight the tuning part chose, where it is not 16.
CHOSEN: tuple[str, ...] = ("joint-linear-mloss@align_weight=4",)
_PROOF_REPORT = Part(
  "ml-100k_heldout/report",
  ML100K,
  ("fix-m0", "nobc", "posthoc-linear-sloss", "joint-linear-mloss", *CHOSEN),
  seeds=3,
)
PROOF_RUNS = (
  Run(
    "ml-100k_heldout",
    "MovieLens-100K, converged config, held-out protocol, 3 seeds",
    "Every kept epoch chosen on the selection half of the users, every number "
    "reported on the other half; BC-Aligner's `align_weight` chosen among 1, 4 "
    "and 16 on three tuning seeds (`config.seed=100`) that are not reported, "
    "then run on three report seeds at the paper's 16 and at the chosen weight.",
    parts=((_PROOF_TUNING, ()), (_PROOF_REPORT, ())),
    anchored=False,
  ),
)

# The main runs first, then the weight sweeps; the README's summary and the
# results page list them in this order.
RUNS = (
  _ML100K_RUNS[0],
  _SYNTHETIC_RUNS[0],
  *_ML100K_RUNS[1:],
  *_SYNTHETIC_RUNS[1:],
)
# BC-Aligner's align_weight -> the run that holds it, per dataset title.
WEIGHT_SWEEPS = {"MovieLens-100K": ML100K_SWEEP, "Synthetic": SYNTHETIC_SWEEP}


def every_part() -> list[Part]:
  """Each part of :data:`RUNS` and :data:`PROOF_RUNS` once, in the order to
  make them (a run's tuning part first: its report part runs its choice)."""
  runs = (*RUNS, *PROOF_RUNS)
  return list({p.folder: p for run in runs for p, _ in run.parts}.values())


def plan(root: str = ".", everything: bool = False) -> str:
  """The commands of the parts still to make (every part with
  ``everything``), then each run's merge of its parts made so far."""
  lines = []
  for part in every_part():
    if everything or not _made(part, root):
      lines += [f"# part {part.folder}", part.command(), ""]
  for run in (*RUNS, *PROOF_RUNS):
    made = run.parts if everything else run.made(root)
    # A run's first part is its own (a sweep's weight, the main run's
    # nobc): without it a merge has nothing to show; without nobc, the
    # reference of every cell, it has no numbers.
    if made and made[0] == run.parts[0] and "nobc" in run.strategies(made):
      lines += [
        f"# run {run.name}: {len(run.made(root))} of {len(run.parts)} parts made",
        run.merge_command(made),
        "",
      ]
  return "\n".join(lines) or "No part is made and none is to make."


def main(argv):
  del argv
  sys.stdout.write(plan(everything=FLAGS.all) + "\n")


if __name__ == "__main__":
  app.run(main)
