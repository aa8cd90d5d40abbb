"""No code runs that was not meant to: pickles are refused with a clear error, remote code
needs an explicit flag, YAML is data, every SQL value is a parameter.

Covered elsewhere: an open_clip folder with a pickle payload never runs it
(tests/test_models.py::test_pickled_weights_never_run_code), quotes in model and benchmark
names (tests/test_store.py::test_names_with_quotes_are_parameters_not_sql), dashboard image
paths confined to the recorded data roots (tests/test_leaderboard_views.py::test_image_guard_*,
tests/test_leaderboard_app.py::test_benchmark_page_serves_thumbnails_only_from_data_roots).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evalsuite import store
from evalsuite.cli import build_parser
from evalsuite.cli import main as evalsuite_main
from evalsuite.embedding_cache import EmbeddingCache
from evalsuite.errors import ConfigError, ModelLoadError, SpecError
from evalsuite.models import hf_loading, load_model
from evalsuite.runner import ScoreOptions
from evalsuite.spec import load_benchmark_file
from finetune import checkpoint
from finetune.config import ModelConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


class Exploit:
    """Unpickling this touches ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


# --- pickles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "keep", "payload"),
    [("tiny_hf_dir", ("config.json", "preprocessor_config.json", "tokenizer.json",
                      "tokenizer_config.json"), "pytorch_model.bin"),
     ("tiny_open_clip_dir", ("open_clip_config.json",), "open_clip_pytorch_model.bin")],
    ids=["hf", "open_clip"],
)  # fmt: skip
def test_model_folder_with_a_pickle_payload_is_refused_clearly(
    fixture: str, keep: tuple[str, ...], payload: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    source, folder = request.getfixturevalue(fixture), tmp_path / "model"
    folder.mkdir()
    for name in keep:
        shutil.copy(source / name, folder)
    marker = tmp_path / "pwned"
    torch.save({"weight": Exploit(marker)}, folder / payload)
    with pytest.raises(ModelLoadError, match=r"refused to load .* pickle holding Python objects"):
        load_model(folder)
    assert not marker.exists()


def test_resume_state_with_a_pickle_payload_is_refused_clearly(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(module.parameters())
    rng = {k: v[None] for k, v in checkpoint.rng_state().items()}  # one process
    state = tmp_path / "state"
    checkpoint.save_state(state, module, {"optimizer": optimizer}, rng, {"global_step": 1})
    assert checkpoint.load_state(state, module, {"optimizer": optimizer}, 0)["global_step"] == 1
    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": [Exploit(marker)]}, state / "optimizer.pt")
    with pytest.raises(ConfigError, match=r"--resume: refused .*optimizer\.pt: it holds pickled"):
        checkpoint.load_state(state, module, {"optimizer": optimizer}, 0)
    assert not marker.exists()


def test_poisoned_embedding_cache_shard_is_ignored(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    keys = np.array([Exploit(marker)], dtype=object)  # np.load(allow_pickle=False) refuses
    np.savez(tmp_path / "shard-evil.npz", keys=keys, vectors=np.zeros((1, 4), np.float32))
    cache = EmbeddingCache(tmp_path)
    assert cache.lookup(["anything"]) == [None]
    assert not marker.exists()


# --- remote code ------------------------------------------------------------------------------


def test_trust_remote_code_is_off_unless_asked(
    tiny_hf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real = hf_loading.CLIPModel.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["trust_remote_code"])
        return real(*args, **kwargs)

    monkeypatch.setattr(hf_loading.CLIPModel, "from_pretrained", spy)
    load_model(tiny_hf_dir)
    load_model(tiny_hf_dir, trust_remote_code=True)
    assert seen == [False, True]
    parser = build_parser()
    assert not parser.parse_args(["score", "m"]).trust_remote_code
    assert parser.parse_args(["score", "m", "--trust-remote-code"]).trust_remote_code
    assert not ScoreOptions().trust_remote_code and not ModelConfig(spec="m").trust_remote_code


def test_cli_passes_the_flag_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import evalsuite.runner

    given: list[ScoreOptions] = []
    monkeypatch.setattr(evalsuite.runner, "score_model", lambda m, o: given.append(o) or [])
    for flag in ([], ["--trust-remote-code"]):
        assert evalsuite_main(["--db", str(tmp_path / "r.duckdb"), "score", "m", *flag]) == 0
    assert [o.trust_remote_code for o in given] == [False, True]


def test_remote_code_in_a_model_folder_does_not_run(tiny_hf_dir: Path, tmp_path: Path) -> None:
    folder, marker = tmp_path / "model", tmp_path / "pwned"
    shutil.copytree(tiny_hf_dir, folder)
    (folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from transformers import CLIPModel, PreTrainedTokenizerFast\n"
        "class EvilModel(CLIPModel): ...\nclass EvilTokenizer(PreTrainedTokenizerFast): ...\n"
    )
    for name, auto_map in (
        ("config.json", {"AutoModel": "evil.EvilModel"}),
        ("tokenizer_config.json", {"AutoTokenizer": [None, "evil.EvilTokenizer"]}),
    ):
        data = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**data, "auto_map": auto_map}))
    load_model(folder)
    assert not marker.exists()


# --- YAML is data -----------------------------------------------------------------------------


def test_yaml_tags_that_would_run_code_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = f"!!python/object/apply:pathlib.Path [{str(marker)!r}]"
    evil = f"!!python/object/apply:pathlib.Path.touch [{path}]"
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "evil.yaml").write_text(f"name: evil\nversion: {evil}\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_benchmark_file(tmp_path / "evil" / "evil.yaml")
    (tmp_path / "train.yaml").write_text(f"model:\n  spec: {evil}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "train.yaml")
    assert not marker.exists()


# --- SQL --------------------------------------------------------------------------------------

HOSTILE = "'; DROP TABLE runs; --"


def test_every_read_takes_hostile_values_as_data(tmp_path: Path) -> None:
    from test_store import make_run  # a run with a row in every table

    db = tmp_path / "results.duckdb"
    run = make_run()
    store.write_run(db, run)
    reads = [
        lambda: store.list_runs(db, model=HOSTILE, benchmark=HOSTILE),
        lambda: store.metrics_table(
            db, model=HOSTILE, benchmark=HOSTILE, run_ids=[HOSTILE], task=HOSTILE
        ),
        lambda: store.latest_metrics(db, benchmark=HOSTILE),
        lambda: store.class_metrics(db, [HOSTILE], task=HOSTILE),
        lambda: store.confusion(db, HOSTILE, HOSTILE),
        lambda: store.predictions(
            db, HOSTILE, HOSTILE, true_label=HOSTILE, predicted_label=HOSTILE
        ),
        lambda: store.retrievals(db, HOSTILE, HOSTILE, query_id=HOSTILE),
        lambda: store.queries(db, HOSTILE, HOSTILE),
        lambda: store.skipped_images(db, HOSTILE),
        lambda: store.history(db, HOSTILE),
    ]
    for read in reads:
        assert read().empty
    assert not store.run_exists(db, HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE)
    assert store.list_runs(db)["run_id"].tolist() == [run.run_id]  # nothing was dropped


def test_sql_is_only_built_in_the_store() -> None:
    """Only the store runs SQL (the modules of evalsuite/store/; checks.py for its two
    constant schema queries; identity.py for which weights a name stands for); the
    dashboards read through it (no SQL of their own), so the store's
    parameterised queries are the whole attack surface."""
    callers = []
    for path in sorted([*ROOT.glob("evalsuite/**/*.py"), *ROOT.glob("dashboards/*.py"),
                        *ROOT.glob("finetune/*.py")]):  # fmt: skip
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"execute", "sql", "query"}:
                callers.append(str(path.relative_to(ROOT)))
    store = {f"evalsuite/store/{name}.py" for name in ("checks", "connection", "exported",
             "identity", "merge", "read", "schema", "write")}  # fmt: skip
    assert set(callers) == store, sorted(set(callers))
