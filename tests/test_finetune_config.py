"""finetune config: YAML schema, --set overrides, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalsuite.errors import ConfigError
from finetune.config import TrainConfig, load_config, validate_config
from finetune.train_command import build_parser

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"model": {"spec": "some/model"}, "data": {"path": "data/prepared"}}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_follow_the_seed_recipe(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.optim.lr == 3e-5 and cfg.optim.weight_decay == 1e-4
    assert (cfg.schedule.name, cfg.schedule.patience, cfg.schedule.factor) == ("plateau", 1, 0.1)
    assert cfg.train.eval_every_epoch and cfg.loss.objective is None  # the model's own
    assert not cfg.lora.enabled and not cfg.ema.enabled and cfg.optim.layer_decay is None


def test_shipped_footwear_config_is_valid() -> None:
    cfg = load_config(ROOT / "configs" / "footwear.yaml")
    assert cfg.data.target_field and cfg.model.spec


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(Exception, match="frozen"):
        cfg.optim.lr = 1.0  # type: ignore[misc]


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "optim": {"lrr": 1e-4}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "run.yaml" in message and "optim.lrr" in message and "did you mean 'lr'" in message


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optimiser.*did you mean 'optim'"):
        load_config(write(tmp_path, {**MINIMAL, "optimiser": {"lr": 1}}))


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "train": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match=r"run\.yaml: train\.batch_size: .*'many'"):
        load_config(path)


def test_set_overrides_parse_yaml_scalars(tmp_path: Path) -> None:
    overrides = ["optim.lr=1e-4", "train.epochs=3", "loss.hard_negatives.enabled=true",
                 "data.classes=[a, b]", "optim.layer_decay=null"]  # fmt: skip
    cfg = load_config(write(tmp_path, MINIMAL), overrides, output_dir=str(tmp_path / "out"))
    assert cfg.optim.lr == 1e-4 and cfg.train.epochs == 3
    assert cfg.loss.hard_negatives.enabled and cfg.data.classes == ["a", "b"]
    assert cfg.output.dir == str(tmp_path / "out") and cfg.run_name == "out"


@pytest.mark.parametrize(
    ("assignment", "pattern"),
    [
        ("optim.lrr=1", r"unknown config key 'optim\.lrr'.*did you mean 'lr'"),
        ("optm.lr=1", r"no 'optm' in the top level.*did you mean 'optim'"),
        ("optim.lr.x=1", r"optim\.lr has no keys"),
        ("optim.lr", r"expected KEY=VALUE"),
    ],
)
def test_bad_set_path_names_the_key(tmp_path: Path, assignment: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, MINIMAL), [assignment])


def test_set_value_of_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.mixed_precision"):
        load_config(write(tmp_path, MINIMAL), ["train.mixed_precision=fp8"])


def test_inconsistent_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="validation split"):
        TrainConfig.model_validate({**MINIMAL, "data": {"path": "p", "val_split": None}})
    with pytest.raises(ValueError, match="placeholder"):
        TrainConfig.model_validate({**MINIMAL, "data": {"path": "p", "templates": ["no slot"]}})


def test_command_line_flags() -> None:
    args = build_parser().parse_args(
        ["--config", "c.yaml", "--set", "a.b=1", "--set", "c.d=2", "--resume", "--output-dir", "o"]
    )
    assert args.overrides == ["a.b=1", "c.d=2"] and args.resume == "auto" and args.output_dir == "o"


def test_main_reports_config_errors_with_exit_status_2(tmp_path: Path, capsys) -> None:
    from finetune.__main__ import main

    path = write(tmp_path, {**MINIMAL, "train": {"epochs": 0}})
    assert main(["--config", str(path)]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_every_data_block_in_the_configs_readme_is_a_valid_config() -> None:
    """configs/README.md shows each data format as a block to paste over footwear.yaml's."""
    import re

    readme = (ROOT / "configs" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 7
    base = yaml.safe_load((ROOT / "configs" / "footwear.yaml").read_text(encoding="utf-8"))
    readers = set()
    for block in blocks:
        data = {**base}
        for section, values in yaml.safe_load(block).items():
            data[section] = {**base.get(section, {}), **values} if section == "data" else values
        cfg = validate_config(data, "configs/README.md")
        readers.add(cfg.data.reader)
    assert {"catalogue", "pairs_csv", "hf_imagefolder", "hf_dataset", "webdataset"} <= readers
