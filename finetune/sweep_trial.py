"""One trial of ``finetune sweep``: a normal fine-tune run and an ``evalsuite score``, each in
its own process, so that a crash, a NaN loss or a bad value of one trial fails that trial
only. Everything here is a plain function of a :class:`SweepPlan`; Optuna stays in
:mod:`finetune.sweep`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evalsuite.errors import EvalSuiteError
from evalsuite.models.factory import TRAINING_FILE
from finetune.sweep_space import Scalar, SweepSpace

log = logging.getLogger("finetune.sweep")

LOG_TAIL_LINES = 3  # of a failed process's log, kept as the trial's reason
JOB_FILE = "trial.json"  # what the trial's one process runs
CHECKPOINT = "{checkpoint}"  # in the job's score arguments: the checkpoint finetune wrote


class TrialFailed(Exception):
    """The trial's fine-tune or scoring failed; the message is the reason recorded."""


@dataclass(frozen=True)
class SweepPlan:
    """Everything a worker needs, resolved once from the command line and the two files."""

    config: Path  # the base fine-tuning config (absolute)
    space: SweepSpace
    out: Path  # <out>/trial-<n>/ per trial
    storage: str  # an RDB URL, or the journal file's path
    db: Path  # the results database every trial is scored into
    base_spec: str  # the base model (model.spec), scored as <study>-base for the constraint
    base_pretrained: str | None = None

    @property
    def study(self) -> str:
        return self.space.study

    @property
    def base_name(self) -> str:
        return f"{self.study}-base"

    def trial_name(self, number: int) -> str:
        return f"{self.study}-trial-{number}"

    def trial_dir(self, number: int) -> Path:
        return self.out / f"trial-{number}"


def yaml_value(value: Scalar) -> str:
    """A value as ``--set`` parses it back (YAML): 1e-05 must be written 1.0e-05."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def finetune_args(plan: SweepPlan, params: Mapping[str, Scalar], number: int) -> list[str]:
    """Arguments of ``finetune``: the trial's values as ``--set`` overrides, in the trial's
    own folder and under its name."""
    sets = [f"{key}={yaml_value(value)}" for key, value in params.items()]
    sets.append(f"output.run_name={plan.trial_name(number)}")
    args = ["--config", str(plan.config), "--output-dir", str(plan.trial_dir(number))]
    return args + [part for assignment in sets for part in ("--set", assignment)]


def score_args(plan: SweepPlan, model: str, name: str, *extra: str) -> list[str]:
    """Arguments of ``evalsuite``: score ``model`` as ``name`` on the sweep's benchmarks."""
    score = plan.space.score
    args = ["--db", str(plan.db), "score", model, "--name", name,
            "--benchmarks", ",".join(plan.space.benchmarks)]  # fmt: skip
    for benchmark, path in score.data.items():
        args += ["--data", f"{benchmark}={path}"]
    return [*args, *extra, *score.options]


def run_trial_processes(plan: SweepPlan, params: Mapping[str, Scalar], number: int) -> None:
    """Fine-tune, record the values in the checkpoints, score. One process for all three
    (each interpreter start costs seconds of imports), or, for several training processes,
    ``accelerate launch -m finetune`` then ``python -m evalsuite score``."""
    folder, name = plan.trial_dir(number), plan.trial_name(number)
    processes = plan.space.launch.num_processes
    if processes == 1:
        folder.mkdir(parents=True, exist_ok=True)
        job = {"finetune": finetune_args(plan, params, number),
               "score": score_args(plan, CHECKPOINT, name),
               "sweep": sweep_record(plan, number, params)}  # fmt: skip
        (folder / JOB_FILE).write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "finetune.sweep_trial", str(folder / JOB_FILE)]
        run_logged(command, folder / "trial.log", "the trial's process")
        return
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes",
              str(processes), "-m", "finetune"]  # fmt: skip
    run_logged(launch + finetune_args(plan, params, number), folder / "finetune.log", "finetune")
    checkpoint = best_checkpoint(folder)
    record_sweep(folder, sweep_record(plan, number, params))
    command = [sys.executable, "-m", "evalsuite", *score_args(plan, str(checkpoint), name)]
    run_logged(command, folder / "score.log", "evalsuite score")


def run_job(job_file: Path) -> int:
    """The one process of a trial (``python -m finetune.sweep_trial JOB``): the exit code
    of the step that failed, 0 when the checkpoint is trained, recorded and scored."""
    from evalsuite.cli import main as evalsuite_main
    from finetune.train_command import main as finetune_main

    job = json.loads(job_file.read_text(encoding="utf-8"))
    code = finetune_main(job["finetune"])
    if code != 0:
        return code
    sweep = job["sweep"]
    try:
        checkpoint = best_checkpoint(job_file.parent)
    except TrialFailed as err:
        print(f"finetune sweep: error: {err}", file=sys.stderr)
        return 2
    record_sweep(job_file.parent, sweep)
    return evalsuite_main([str(checkpoint) if a == CHECKPOINT else a for a in job["score"]])


def run_logged(command: Sequence[str], log_file: Path, what: str) -> None:
    """Run ``command`` with its output in ``log_file``; a non-zero exit is a TrialFailed
    whose reason is the end of that log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_file.open("w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise TrialFailed(f"{what} exited {code}: {log_tail(log_file)} (log: {log_file})")


def log_tail(log_file: Path) -> str:
    """The error lines at the end of a log (else its last lines), progress bars left out."""
    text = log_file.read_text(encoding="utf-8", errors="replace")
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.splitlines()[-40:]]
    lines = [line for line in lines if line and "it/s]" not in line]
    errors = [line for line in lines if "error" in line.lower()]
    return " | ".join((errors or lines)[-LOG_TAIL_LINES:])[:600]


def best_checkpoint(folder: Path) -> Path:
    """``best/`` (lowest validation loss), else ``last/`` (a run without validation)."""
    for kind in ("best", "last"):
        if (folder / kind / TRAINING_FILE).is_file():
            return folder / kind
    raise TrialFailed(f"finetune wrote no checkpoint in {folder} (output.save_best/save_last?)")


def sweep_record(plan: SweepPlan, number: int, params: Mapping[str, Scalar]) -> dict[str, Any]:
    """What a trial's checkpoints record: its study, number and values, the objective the
    study optimised and its constraint (what the report ranks the trials by)."""
    objective, constraint = plan.space.objective, plan.space.constraint
    record = {"study": plan.study, "trial": number, "params": dict(params),
              "objective": {"benchmark": objective.benchmark, "task": objective.task,
                            "metric": objective.metric}}  # fmt: skip
    if constraint is not None:
        record["constraint"] = {"no_regression_on": list(constraint.no_regression_on)}
    return record


def record_sweep(folder: Path, record: Mapping[str, Any]) -> None:
    """Add ``"sweep": {study, trial, params, objective}`` to training.json of the trial's
    checkpoints, so that the database (``models.training``) holds its hyper-parameters."""
    record = dict(record)
    for kind in ("best", "last"):
        path = folder / kind / TRAINING_FILE
        if not path.is_file():
            continue
        training = json.loads(path.read_text(encoding="utf-8"))
        training["sweep"] = record
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # a killed sweep never leaves half a training.json


def read_objective(plan: SweepPlan, name: str) -> tuple[float, bool]:
    """The objective metric of model ``name`` as stored, and whether higher is better."""
    from evalsuite import store

    objective = plan.space.objective
    frame = store.latest_metrics(plan.db, benchmark=objective.benchmark)
    rows = frame[frame["model_name"] == name]
    hit = rows[(rows["task"] == objective.task) & (rows["metric"] == objective.metric)]
    if hit.empty:
        known = sorted({f"{t}/{m}" for t, m in zip(rows["task"], rows["metric"], strict=True)})
        raise TrialFailed(
            f"objective {objective.benchmark}/{objective.task}/{objective.metric}: not "
            f"among the scores of {name} in {plan.db}; it has {', '.join(known[:12]) or 'none'}"
        )
    row = hit.iloc[0]
    return float(row["value"]), bool(row["higher_is_better"])


def constraint_violation(plan: SweepPlan, name: str) -> str | None:
    """What regressed significantly on the constraint's benchmarks against the base model
    (``evalsuite.verdicts``), or None when nothing did."""
    from evalsuite.verdicts import compare_models

    constraint = plan.space.constraint
    if constraint is None:
        return None
    try:
        comparison = compare_models(
            plan.db, plan.base_name, name, n_resamples=constraint.n_resamples
        )
    except EvalSuiteError as err:
        raise TrialFailed(f"constraint: cannot compare with {plan.base_name}: {err}") from None
    regressions = [v for v in comparison.regressions if v.benchmark in constraint.no_regression_on]
    return "; ".join(v.sentence() for v in regressions) or None


def score_base(plan: SweepPlan) -> None:
    """Score the base model once as ``<study>-base`` (every worker asks; ``--skip-existing``
    makes the later ones cheap). A failure here is the sweep's, not a trial's."""
    extra = ["--skip-existing"]
    if plan.base_pretrained:
        extra += ["--pretrained", plan.base_pretrained]
    command = [sys.executable, "-m", "evalsuite",
               *score_args(plan, plan.base_spec, plan.base_name, *extra)]  # fmt: skip
    try:
        run_logged(command, plan.out / "base-score.log", "evalsuite score of the base model")
    except TrialFailed as err:
        raise EvalSuiteError(f"constraint needs the base model scored: {err}") from None


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
