"""WiSE-FT: exact ends, the midpoint, marking, the sweep CLI, incompatible models, and the
one command that writes and scores a whole curve (--alphas START:STOP:STEP --score)."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import pytest
import torch
from faults.faultkit import write_benchmarks, write_images_csv

from evalsuite.errors import ConfigError
from evalsuite.models import ClipModel, load_model
from finetune.wise import _alphas, alpha_label, main, save_checkpoint, wise_interpolate
from testkit.tiny import build_tiny_hf, build_tiny_open_clip


@pytest.fixture(scope="module")
def finetuned_dir(tmp_path_factory) -> Path:
    """Another tiny HF CLIP (seed 1) standing in for a fine-tuned checkpoint."""
    path = build_tiny_hf(tmp_path_factory.mktemp("ft") / "shoes-ft", seed=1)
    training = {"run_name": "shoes-ft", "epoch": 3, "base_model": {"spec": "tiny"}}
    (path / "training.json").write_text(json.dumps(training))
    return path


@pytest.fixture(scope="module")
def pair(tiny_hf_dir, finetuned_dir) -> tuple[ClipModel, ClipModel]:
    return load_model(tiny_hf_dir), load_model(finetuned_dir)


def state(model: ClipModel) -> dict[str, torch.Tensor]:
    return model.module.state_dict()


def test_ends_are_exact_and_the_middle_is_the_midpoint(pair):
    base, tuned = pair
    base_state, tuned_state = state(base), state(tuned)
    assert any(not torch.equal(base_state[k], tuned_state[k]) for k in base_state)
    _ = tuned.fingerprint  # hashed once, carried by the copies
    at_0 = state(wise_interpolate(base, copy.deepcopy(tuned), 0.0))
    at_1 = state(wise_interpolate(base, copy.deepcopy(tuned), 1.0))
    half = state(wise_interpolate(base, copy.deepcopy(tuned), 0.5))
    for name, tensor in base_state.items():
        assert torch.equal(at_0[name], tensor), name
        assert torch.equal(at_1[name], tuned_state[name]), name
        if tensor.is_floating_point():
            torch.testing.assert_close(half[name], (tensor + tuned_state[name]) / 2)


def test_result_is_marked_as_wise(pair):
    base, tuned = pair
    fingerprint = tuned.fingerprint
    model = wise_interpolate(base, copy.deepcopy(tuned), 0.25)
    assert model.name == "shoes-ft-wise-0.25"
    wise = model.source.training["wise"]
    assert wise == {
        "alpha": 0.25,
        "base_spec": base.spec,
        "base_fingerprint": base.fingerprint,
        "finetuned_spec": tuned.spec,
        "finetuned_fingerprint": fingerprint,
    }
    assert model.source.training["epoch"] == 3  # the rest of training.json is kept
    assert model.fingerprint not in {fingerprint, base.fingerprint}
    assert tuned.source.training.get("wise") is None  # the original is untouched


def test_incompatible_models_are_a_clear_error(pair, tiny_open_clip_dir, tmp_path):
    base, tuned = pair
    with pytest.raises(ConfigError, match=r"one backend.*hf and open_clip"):
        wise_interpolate(base, load_model(tiny_open_clip_dir), 0.5)
    deeper = load_model(build_tiny_hf(tmp_path / "deeper", seed=0, vision_cfg__layers=3))
    with pytest.raises(ConfigError, match=r"same architecture.*num_hidden_layers"):
        wise_interpolate(base, deeper, 0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        wise_interpolate(base, copy.deepcopy(tuned), 1.5)


def test_cli_sweep_writes_checkpoints_that_load_model_reads(
    tiny_hf_dir, finetuned_dir, pair, tmp_path
):
    base, tuned = pair
    out = tmp_path / "wise"
    argv = ["--base", str(tiny_hf_dir), "--finetuned", str(finetuned_dir), "--out", str(out)]
    assert main([*argv, "--alphas", "0,0.5,1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha-0", "alpha-0.5", "alpha-1"]
    for alpha, reference in (("0", base), ("1", tuned)):
        loaded = load_model(out / f"alpha-{alpha}")
        assert loaded.name == f"shoes-ft-wise-{alpha}"
        for name, tensor in state(reference).items():
            assert torch.equal(state(loaded)[name], tensor), name
    training = json.loads((out / "alpha-0.5" / "training.json").read_text())
    assert training["run_name"] == "shoes-ft-wise-0.5"
    assert training["wise"]["alpha"] == 0.5
    assert training["wise"]["finetuned_fingerprint"] == tuned.fingerprint
    assert training["wise"]["base_spec"] == str(tiny_hf_dir)

    single = tmp_path / "single"
    argv[-1] = str(single)
    assert main([*argv, "--alpha", "0.5"]) == 0
    assert run_name(single) == "shoes-ft-wise-0.5"
    assert main([*argv, "--alpha", "0.75"]) == 2  # exists: refused before loading anything
    save_checkpoint(wise_interpolate(base, copy.deepcopy(tuned), 0.75), single, overwrite=True)
    assert run_name(single) == "shoes-ft-wise-0.75"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temps


def run_name(folder: Path) -> str:
    return json.loads((folder / "training.json").read_text())["run_name"]


def test_open_clip_models_interpolate_too(tiny_open_clip_dir, tmp_path):
    base = load_model(tiny_open_clip_dir)
    tuned = load_model(build_tiny_open_clip(tmp_path / "tuned", seed=1))
    half = wise_interpolate(base, copy.deepcopy(tuned), 0.5)
    name = "visual.proj"
    expected = (state(base)[name] + state(tuned)[name]) / 2
    torch.testing.assert_close(state(half)[name], expected)
    assert half.name == "tuned-wise-0.5"


# --- one command for the curve: --alphas START:STOP:STEP and --score ------------------------


def test_alpha_ranges_include_the_stop_and_read_as_typed():
    assert _alphas("0:1:0.5") == [0.0, 0.5, 1.0]
    labels = [alpha_label(a) for a in _alphas("0:1:0.1")]
    assert labels == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
    assert _alphas("0.2:0.9:0.3") == [0.2, 0.5, 0.8]  # the stop is not reached
    assert _alphas("0.5:0.5:0.1") == [0.5]
    for bad in (
        "1:0:0.1",
        "0:1:0",
        "0:1:-0.1",
        "0:2:0.5",
        "0:1",
        "a:1:0.1",
        "0:1:1e-12",
        "0:1:nan",
    ):
        with pytest.raises(argparse.ArgumentTypeError):
            _alphas(bad)


BENCH = "colours"


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    csv = write_images_csv(tmp_path / "images", per_colour=2)
    root = write_benchmarks(tmp_path / "benchmarks", csv, (BENCH,))
    monkeypatch.setenv("EVALSUITE_BENCHMARKS_DIR", str(root))
    return root


def test_one_command_writes_and_scores_the_curve(
    tiny_hf_dir, finetuned_dir, bench_dir, tmp_path, capsys
):
    """`--alphas 0:1:0.5 --score` writes three checkpoints and scores them into the
    database; the leaderboard and the report each draw them as one WiSE-FT curve."""
    from dashboards import model_table, wise_curves
    from evalsuite import report, store

    out, db = tmp_path / "wise", tmp_path / "results.duckdb"
    argv = ["--base", str(tiny_hf_dir), "--finetuned", str(finetuned_dir), "--out", str(out)]
    argv += ["--alphas", "0:1:0.5", "--db", str(db), "--workers", "0", "--bootstrap", "20"]
    assert main([*argv, "--score", BENCH]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha-0", "alpha-0.5", "alpha-1"]
    names = ["shoes-ft-wise-0", "shoes-ft-wise-0.5", "shoes-ft-wise-1"]
    assert f"scored {names[1]} on {BENCH} into {db}" in capsys.readouterr().out
    models = store.list_models(db).set_index("name")
    assert sorted(models.index) == names
    assert [models.loc[n, "training"]["wise"]["alpha"] for n in names] == [0.0, 0.5, 1.0]
    metrics = store.latest_metrics(db)
    assert sorted(set(metrics["model_name"])) == names

    board = wise_curves.wise_curves(model_table.model_table(store.list_models(db), metrics))
    assert board["curve"].nunique() == 1
    assert list(zip(board["alpha"], board["name"], strict=True)) == [
        (0.0, names[0]), (0.5, names[1]), (1.0, names[2])]  # fmt: skip
    lines = report.wise_lines(report.load_report_data(db, baseline=names[0]))
    assert [[(m.name, a) for m, a in line] for line in lines] == [
        [(names[0], 0.0), (names[1], 0.5), (names[2], 1.0)]]  # fmt: skip


def test_scoring_mistakes_fail_before_anything_is_written(
    tiny_hf_dir, finetuned_dir, bench_dir, tmp_path, capsys
):
    out = tmp_path / "wise"
    argv = ["--base", str(tiny_hf_dir), "--finetuned", str(finetuned_dir), "--out", str(out),
            "--alphas", "0:1:0.5"]  # fmt: skip
    assert main([*argv, "--score", "colors"]) == 2  # a typo: the benchmark names are offered
    assert "colours" in capsys.readouterr().err
    assert main([*argv, "--score", BENCH, "--data", f"{BENCH}={tmp_path / 'nowhere'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, "--db", str(tmp_path / "r.duckdb")]) == 2
    assert "--db only go with --score" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_info:  # a bad range is a usage error
        main([*argv[:-1], "0:1:0"])
    assert exit_info.value.code == 2


def test_an_interpolation_is_neither_the_trial_nor_the_soup(pair):
    """A WiSE-FT point of a sweep trial or a soup drops those records: the board would show
    it as the trial (its swept values) or as a soup."""
    base, tuned = pair
    tuned = copy.deepcopy(tuned)
    tuned.source.training = {
        **tuned.source.training,
        "sweep": {"study": "lace", "trial": 1, "params": {"optim.lr": 1e-4}},
        "soup": {"kind": "greedy", "ingredients": ["lace-trial-1"]},
    }
    training = wise_interpolate(base, tuned, 0.5).source.training
    assert "sweep" not in training and "soup" not in training and training["wise"]["alpha"] == 0.5
