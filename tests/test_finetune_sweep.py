"""finetune sweep: a 2 x 2 grid over real catalogue images, worked by two worker processes on
one Optuna journal file, lands four scored models with their values in the database; the
same command again runs nothing; a trial left running by a dead worker is retried; a trial
with a bad value fails with its reason while the others complete; bad space files exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finetune.sweep import main

ROOT = Path(__file__).resolve().parents[1]
SHOES = {"Heels": "heels", "Flip Flops": "flip flops", "Sports Shoes": "sports shoes",
         "Formal Shoes": "formal shoes"}  # fmt: skip
OBJECTIVE = {"benchmark": "shoes4", "task": "article_type", "metric": "acc@1"}
FAST_SCORE = {"options": ["--workers", "0", "--bootstrap", "20"]}


@pytest.fixture(scope="module")
def inputs(catalogue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """48 real footwear items of four types (prepared like the footwear benchmark), a tiny
    CLIP, a base config of one short epoch, and a benchmark on the items' test split."""
    from test_finetune_train import footwear_subset, run_config

    from evalsuite.data.prepare import prepare_footwear
    from testkit.tiny import build_tiny_hf

    root = tmp_path_factory.mktemp("sweep-inputs")
    styles = footwear_subset(catalogue_dir, root / "styles.csv", per_type=12)
    data = root / "footwear"
    prepare_footwear(catalogue_dir / "images", styles, data, seed=0, test_size=0.3, val_size=0.3)
    model = build_tiny_hf(root / "model", seed=0, name="tiny-train", vision_cfg__patch_size=8)
    cfg = run_config(model, data, root / "unused", data={"templates": ["a photo of {}."]},
                     train={"epochs": 1, "batch_size": 16, "log_every": 5})  # fmt: skip
    (root / "base.yaml").write_text(yaml.safe_dump(cfg))
    bench = root / "benchmarks" / "shoes4"
    bench.mkdir(parents=True)
    task = {"type": "zeroshot", "name": "article_type", "field": "articleType",
            "classes": SHOES, "templates": ["a photo of {c}."]}  # fmt: skip
    spec = {"name": "shoes4", "version": 1, "image_policy": "skip", "tasks": [task],
            "dataset": {"reader": "catalogue", "path": str(data), "split": "test"}}  # fmt: skip
    (bench / "shoes4.yaml").write_text(yaml.safe_dump(spec))
    return {"base": root / "base.yaml", "benchmarks": root / "benchmarks", "model": model}


@pytest.fixture()
def light_base(tmp_path: Path) -> dict[str, Path]:
    """A base config that validates (the files it names are only read by a trial)."""
    cfg = {"model": {"spec": str(tmp_path / "model")}, "data": {"path": str(tmp_path / "d")}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(cfg))
    return {"base": tmp_path / "base.yaml"}


@pytest.fixture()
def benchmarks_env(inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The trials' processes (children of the sweep) find the test benchmark."""
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(inputs["benchmarks"]))


def write_space(path: Path, **fields: object) -> Path:
    path.write_text(yaml.safe_dump({"objective": OBJECTIVE, "score": FAST_SCORE, **fields}))
    return path


def sweep_command(inputs: dict[str, Path], space: Path, out: Path) -> list[str]:
    return ["--config", str(inputs["base"]), "--space", str(space), "--out", str(out)]


def load_study(out: Path, name: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_logs(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(out.glob("trial-*/*.log"))}


@pytest.mark.slow
def test_two_workers_share_a_grid_and_a_rerun_runs_nothing(
    inputs: dict[str, Path], benchmarks_env: None, tmp_path: Path, capsys
) -> None:
    from evalsuite import store

    grid = {"optim.lr": {"values": [1.0e-4, 3.0e-3]}, "train.epochs": {"values": [1, 2]}}
    constraint = {"no_regression_on": ["shoes4"], "n_resamples": 200}
    space = write_space(tmp_path / "grid.yaml", study="grid", params=grid, constraint=constraint)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "finetune", "sweep", *sweep_command(inputs, space, out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, **pipes) for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    trials = load_study(out, "grid").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, outputs
    points = {(t.params["optim.lr"], t.params["train.epochs"]) for t in trials}
    assert points == {(1e-4, 1), (1e-4, 2), (3e-3, 1), (3e-3, 2)}  # each point once
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    models = store.list_models(out / "results.duckdb").set_index("name")
    assert "grid-base" in models.index  # scored once for the constraint
    for t in trials:
        training = models.loc[f"grid-trial-{t.number}", "training"]
        training = json.loads(training) if isinstance(training, str) else training
        assert training["sweep"] == {
            "study": "grid",
            "trial": t.number,
            "params": t.params,
            "objective": OBJECTIVE,
            "constraint": {"no_regression_on": ["shoes4"]},
        }
        assert t.user_attrs["metric"] == t.value and 0 <= t.value <= 1
    assert "best: trial" in outputs[0] + outputs[1]

    logs = trial_logs(out)
    assert len(logs) == 4
    capsys.readouterr()
    assert main(sweep_command(inputs, space, out)) == 0  # again: nothing left to run
    assert len(load_study(out, "grid").get_trials()) == 4 and trial_logs(out) == logs
    printed = capsys.readouterr().out
    print(printed)  # the table of a real run, for the record
    assert "study grid: 4 trials" in printed and printed.count("COMPLETE") == 4


@pytest.mark.slow
def test_dead_worker_trial_is_retried_and_a_bad_value_fails_alone(
    inputs: dict[str, Path], benchmarks_env: None, tmp_path: Path, capsys
) -> None:
    import optuna
    import psutil

    grid = {"optim.lr": {"values": [3.0e-3]}, "train.epochs": {"values": [1, 0]}}  # 0: bad
    space = write_space(tmp_path / "s.yaml", study="s", params=grid)
    out = tmp_path / "sweep"
    # what a worker killed during its first trial leaves in the storage
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(gone.stdout)
    assert not psutil.pid_exists(pid)
    out.mkdir()
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    killed = optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                 sampler=optuna.samplers.GridSampler({
                                     k: v["values"] for k, v in grid.items()}))  # fmt: skip
    running = killed.ask()
    params = {key: running.suggest_categorical(key, v["values"]) for key, v in grid.items()}
    running.set_user_attr("worker", f"{__import__('socket').gethostname()}:{pid}:0")

    assert main(sweep_command(inputs, space, out)) == 0
    trials = load_study(out, "s").get_trials()
    by_state = {t.number: (t.state.name, t.user_attrs.get("reason", "")) for t in trials}
    assert by_state[0] == ("FAIL", "its worker stopped; retried"), by_state
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].params == params
    assert len(trials) == 3
    failed = [t for t in trials[1:] if t.state.name == "FAIL"]
    assert [t.params["train.epochs"] for t in failed] == [0]
    assert "train.epochs" in failed[0].user_attrs["reason"]
    assert "greater than or equal to 1" in failed[0].user_attrs["reason"]
    assert (out / f"trial-{failed[0].number}" / "trial.log").is_file()  # kept to inspect
    assert [t.state.name for t in trials[1:] if t not in failed] == ["COMPLETE"]
    table = capsys.readouterr().out
    assert "retry of trial 0" in table and "FAIL" in table

    logs = trial_logs(out)
    assert main(sweep_command(inputs, space, out)) == 0  # nothing redone, failed included
    assert len(load_study(out, "s").get_trials()) == 3 and trial_logs(out) == logs


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"optim.lrr": {"values": [1]}}, "params: unknown config key 'optim.lrr': no 'lrr' in "
         "optim (did you mean 'lr'?)"),
        ({"optim": {"values": [1]}}, "params: 'optim' is a section; name one of its keys"),
        ({"optim.lr": {"low": 1e-5, "high": 1e-3}}, "sampler 'grid' needs values: [...] for "
         "every param; 'optim.lr' has a range"),
        ({"optim.lr": {"values": [1e-4], "low": 1}}, "params.optim.lr: give either values: "
         "[...] or low: and high:"),
    ],
)  # fmt: skip
def test_bad_space_file_exits_2_naming_file_and_key(
    light_base: dict[str, Path], tmp_path: Path, capsys, params: dict, expected: str
) -> None:
    space = write_space(tmp_path / "bad.yaml", params=params)
    out = tmp_path / "sweep"
    assert main(sweep_command(light_base, space, out)) == 2
    error = capsys.readouterr().err
    assert "bad.yaml" in error and expected in error, error
    assert not out.exists()  # nothing written


def test_sampled_space_needs_a_trial_count(light_base: dict[str, Path], tmp_path: Path, capsys):
    space = write_space(tmp_path / "tpe.yaml", sampler={"name": "tpe"},
                        params={"optim.lr": {"low": 1e-5, "high": 1e-3, "log": True}})  # fmt: skip
    assert main(sweep_command(light_base, space, tmp_path / "out")) == 2
    assert "sampler 'tpe' needs n_trials" in capsys.readouterr().err
