"""``finetune sweep --config BASE.yaml --space SWEEP.yaml``: many fine-tunes, each scored.

Optuna runs the study; this module only says what a trial is (:mod:`finetune.sweep_trial`:
a fine-tune process, then an ``evalsuite score`` process, then the objective read back from
the results database). The study lives in an Optuna storage, by default the journal file
``<out>/optuna.journal``, or an RDB URL: several workers (processes, or machines sharing
the file system or the database) run the same command and work one study together, and
running the command again after a kill continues it without redoing finished trials.

A trial's state is Optuna's: COMPLETE (scored), FAILED (its fine-tune or scoring failed, the
reason in the user attribute ``reason``; the sweep goes on). A trial left RUNNING by a
worker that died is failed and retried as a new trial (user attribute ``retry_of``) by the
next worker that starts: on the same host when that worker's process is gone, with an RDB
storage by Optuna's heartbeat from any host, and always with ``--fail-running``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite.errors import ConfigError, EvalSuiteError
from finetune.sweep_space import ParamSpace, Scalar, load_space
from finetune.sweep_trial import (
    SweepPlan,
    TrialFailed,
    constraint_violation,
    read_objective,
    run_trial_processes,
    score_base,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("finetune.sweep")

JOURNAL_FILE = "optuna.journal"
HEARTBEAT_S, GRACE_S = 60, 300  # RDB storages: a trial silent for 5 minutes is stale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune sweep",
        description="Run a study of fine-tunes over a search space; each trial is scored "
        "into the results database. Run the same command on several machines (shared "
        "--storage) to share the work, or again to continue after a stop.",
    )
    parser.add_argument("--config", required=True, type=Path, help="the base fine-tune config")
    parser.add_argument("--space", required=True, type=Path, help="the search space YAML")
    parser.add_argument("--out", type=Path, help="folder of the trials (default runs/<study>)")
    parser.add_argument(
        "--storage", help="Optuna storage: an RDB URL (sqlite:///s.db) or a journal file path "
        "(default: the space file's, else <out>/optuna.journal)"
    )  # fmt: skip
    parser.add_argument("--n-trials", type=int, help="trials of the whole study (all workers)")
    parser.add_argument(
        "--fail-running",
        action="store_true",
        help="fail (and retry) every trial left RUNNING: only when no other worker is running",
    )
    return parser


def make_plan(args: argparse.Namespace) -> SweepPlan:
    """Check both files and resolve the folders, storage and database; ConfigError if bad."""
    from finetune.config import load_config

    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, got {args.n_trials}")
    cfg = load_config(args.config)  # a bad base config fails here, not in every trial
    space = load_space(args.space, args.n_trials)
    out = (args.out or Path("runs") / space.study).resolve()
    storage = args.storage or space.storage or str(out / JOURNAL_FILE)
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    db = Path(space.score.db).resolve() if space.score.db else out / "results.duckdb"
    return SweepPlan(
        config=args.config.resolve(), space=space, out=out, storage=storage, db=db,
        base_spec=cfg.model.spec, base_pretrained=cfg.model.pretrained,
    )  # fmt: skip


# --- the study -------------------------------------------------------------------------------


def open_study(plan: SweepPlan) -> optuna.Study:
    """Create the study, or load it when another worker (or an earlier run) made it."""
    import optuna

    plan.out.mkdir(parents=True, exist_ok=True)
    try:  # Every value is oriented so that higher is better (see objective): maximise.
        study = optuna.create_study(
            study_name=plan.study, storage=_storage(plan), direction="maximize",
            load_if_exists=True,
        )  # fmt: skip
    except Exception as exc:  # sqlalchemy and its drivers raise their own types
        if isinstance(exc, EvalSuiteError):
            raise
        raise ConfigError(
            f"Optuna storage {plan.storage!r} cannot be opened ({type(exc).__name__}: {exc})"
        ) from exc
    check_same_space(study, plan)
    study.sampler = sampler_for(plan, len(study.trials))
    return study


def _storage(plan: SweepPlan) -> Any:
    import optuna

    if "://" in plan.storage:
        return optuna.storages.RDBStorage(
            plan.storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            heartbeat_stale_trial_callback=lambda study, trial: retry(study, trial),
        )  # fmt: skip
    from optuna.storages.journal import JournalFileBackend

    Path(plan.storage).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(plan.storage))


def sampler_for(plan: SweepPlan, n_before: int) -> optuna.samplers.BaseSampler:
    """The space's sampler. A seeded tpe/random sampler starts from the same draws in every
    process, so a second worker or a restarted sweep would repeat the trials already run:
    its seed is mixed with this worker and the study's trial count (grid points are handed
    out by the storage, so the grid keeps the space's seed)."""
    import optuna

    sampler = plan.space.sampler
    seed = sampler.seed
    if sampler.name == "grid":
        return optuna.samplers.GridSampler(plan.space.grid, seed=seed)
    if seed is not None:
        mixed = f"{seed}:{n_before}:{worker_id()}".encode()
        seed = int.from_bytes(hashlib.sha256(mixed).digest()[:4], "big")
    if sampler.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def check_same_space(study: optuna.Study, plan: SweepPlan) -> None:
    """A study keeps the space it was made with: resuming it with another space would mix
    incomparable trials (and Optuna refuses a changed value list mid-study)."""
    # where results go and how many trials may differ between machines and runs
    what = plan.space.model_dump_json(exclude={"score", "storage", "n_trials", "launch"})
    digest = hashlib.sha256(what.encode()).hexdigest()
    found = study.user_attrs.get("space_sha256")
    if found is None:
        study.set_user_attr("space_sha256", digest)
    elif found != digest:
        raise ConfigError(
            f"study {plan.study!r} in {plan.storage} was made with another search space than "
            "this space file's: give the changed sweep a new `study:` name (or another "
            "--storage); the same space continues the study"
        )


def suggest(trial: optuna.Trial, key: str, space: ParamSpace) -> Scalar:
    if space.values is not None:
        return trial.suggest_categorical(key, space.values)
    assert space.low is not None and space.high is not None  # checked by ParamSpace
    if space.is_int:
        step = int(space.step or 1)
        return trial.suggest_int(key, int(space.low), int(space.high), step=step, log=space.log)
    return trial.suggest_float(key, space.low, space.high, step=space.step, log=space.log)


def worker_id() -> str:
    """host:pid:start-time: a pid reused by a later process is not the same worker."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.2f}"


def worker_gone(worker: str | None) -> bool:
    """Whether ``worker`` (a :func:`worker_id`) ran on this host and has stopped."""
    import psutil

    if not worker or worker.count(":") < 2:
        return False
    host, pid, started = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return False  # another machine's worker: only its heartbeat (RDB) can tell
    try:  # create_time moves by a second when the clock is adjusted: not another process
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 2.0
    except psutil.NoSuchProcess:
        return True


def objective(trial: optuna.Trial, plan: SweepPlan) -> float:
    """One fine-tune, scored; the metric oriented so that higher is better (-inf when the
    constraint is violated). A TrialFailed fails this trial only."""
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("model", plan.trial_name(trial.number))
    try:
        params = {key: suggest(trial, key, p) for key, p in plan.space.params.items()}
        return run_trial(trial, plan, params)
    except TrialFailed as err:
        log.warning("trial %d failed: %s", trial.number, err)
        trial.set_user_attr("reason", str(err))
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("reason", "interrupted")
        trial.set_user_attr("interrupted", True)  # retried when the sweep starts again
        raise


def run_trial(trial: optuna.Trial, plan: SweepPlan, params: dict[str, Scalar]) -> float:
    number, name = trial.number, plan.trial_name(trial.number)
    shown = ", ".join(f"{key}={value}" for key, value in params.items())
    log.info("trial %d (%s): fine-tuning and scoring in %s", number, shown, plan.trial_dir(number))
    run_trial_processes(plan, params, number)
    value, higher_is_better = read_objective(plan, name)
    trial.set_user_attr("metric", value)
    violation = constraint_violation(plan, name)
    if violation:
        trial.set_user_attr("constraint", f"violated: {violation}")
        log.info("trial %d: %s, but the constraint is violated: %s", number, value, violation)
        return -math.inf
    log.info("trial %d: %s", number, value)
    return value if higher_is_better else -value


def retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a trial that did not finish (its worker died) again, with its values."""
    import optuna

    log.warning("trial %d did not finish (its worker stopped): retrying it", trial.number)
    # As Optuna's RetryFailedTrialCallback does: the system attributes carry the trial's
    # grid point, which GridSampler needs (enqueue_trial would leave it without one).
    retried = optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params,
        distributions=trial.distributions, user_attrs={"retry_of": trial.number},
        system_attrs=dict(trial.system_attrs),
    )  # fmt: skip
    study.add_trial(retried)


def recover(study: optuna.Study, fail_running: bool) -> None:
    """Fail the trials whose worker is gone (or all RUNNING ones with ``fail_running``) and
    retry them, with the interrupted ones, unless a retry is already queued or done."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage  # Optuna has no public call to fail another worker's trial
    # With a heartbeat (RDB), Optuna fails stale trials only inside optimize(), which is
    # skipped when every trial is finished or running: a dead host's trial would stay
    # RUNNING for ever. A no-op without a heartbeat; retried by the heartbeat callback.
    with warnings.catch_warnings():  # experimental since Optuna 2.9, and public
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        stale = t.state == TrialState.RUNNING and (
            fail_running or worker_gone(t.user_attrs.get("worker"))
        )
        if stale:
            storage.set_trial_user_attr(t._trial_id, "reason", "its worker stopped; retried")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if (stale or t.user_attrs.get("interrupted")) and t.number not in retried:
            retry(study, t)


def taken_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of every worker, those replaced by a retry left out."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    kept = [t for t in trials if t.number not in retried]
    finished = sum(t.state.is_finished() for t in kept)
    return finished, sum(t.state == TrialState.RUNNING for t in kept)


def run_study(study: optuna.Study, plan: SweepPlan) -> None:
    """Trials until the study has its ``total_trials``, finished or running on a worker.
    Counting the running ones is what stops two workers from running one grid point twice
    (Optuna's GridSampler hands a running point out again once every point has started)."""
    total = plan.space.total_trials

    def stop_when_taken(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if sum(taken_trials(study)) >= total:
            study.stop()

    finished, running = taken_trials(study)
    if finished + running >= total:
        log.info("study %s: %d trials finished, %d running", plan.study, finished, running)
        return
    study.optimize(
        lambda trial: objective(trial, plan), callbacks=[stop_when_taken], catch=(TrialFailed,)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        plan = make_plan(args)
        import optuna

        # this module logs each trial and its failure's reason; Optuna would add a traceback.
        # Its messages go through the root logger, not a handler of its own.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        study = open_study(plan)
        recover(study, args.fail_running)
        if plan.space.constraint:
            score_base(plan)
        run_study(study, plan)
    except EvalSuiteError as err:
        print(f"finetune sweep: error: {err}", file=sys.stderr)
        return 2
    from finetune.sweep_table import summary

    print(summary(study, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
