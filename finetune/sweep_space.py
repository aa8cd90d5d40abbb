"""The search space of ``finetune sweep``: a frozen pydantic model read from YAML.

A space file names the study, the config keys to vary (any dotted key of the fine-tuning
config, e.g. ``optim.lr``), how to pick their values (a grid, or Optuna's TPE / random
sampler), the metric to optimise and the benchmarks to score each trial on. Like the
fine-tuning config, every section forbids unknown keys: a misspelt key is a
:class:`ConfigError` naming the file and the key path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from evalsuite.errors import ConfigError
from evalsuite.schema import display_path, read_yaml_mapping, validation_message
from finetune.config import Section, config_key_model

Scalar = bool | int | float | str


class ParamSpace(Section):
    """One config key: a list of ``values`` (grid, or categorical when sampled), or a range
    ``low``..``high`` for a sampler (integers when both bounds are integers)."""

    values: list[Scalar] | None = Field(None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        ranged = self.low is not None or self.high is not None
        if (self.values is None) == (not ranged):
            raise ValueError("give either values: [...] or low: and high:, not both or neither")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"needs low < high (got low {self.low}, high {self.high})")
            if self.log and self.low <= 0:
                raise ValueError("log: true needs low > 0")
            if self.log and self.step is not None:
                raise ValueError("step and log: true cannot be combined")
        elif self.log or self.step is not None:
            raise ValueError("log and step apply to a range (low/high), not to values")
        elif len({repr(v) for v in self.values or []}) != len(self.values or []):
            raise ValueError(f"repeated value in {self.values}")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


class SamplerSpec(Section):
    name: Literal["grid", "tpe", "random"] = "grid"
    seed: int | None = 0  # None: a different draw on every worker


class ObjectiveSpec(Section):
    """The metric optimised, as stored by ``evalsuite score``; its direction is the one the
    database stores with it (``higher_is_better``)."""

    benchmark: str
    task: str
    metric: str


class ScoreSpec(Section):
    benchmarks: list[str] = Field(default_factory=list)  # besides the objective's
    db: str | None = None  # default: <out>/results.duckdb
    data: dict[str, str] = Field(default_factory=dict)  # benchmark -> data folder (--data)
    options: list[str] = Field(default_factory=list)  # more `evalsuite score` flags


class ConstraintSpec(Section):
    """No significant regression of a gated metric on these benchmarks against the base
    model (scored once as ``<study>-base``), judged by :mod:`evalsuite.verdicts`."""

    no_regression_on: list[str] = Field(min_length=1)
    n_resamples: int = Field(2000, ge=100)


class LaunchSpec(Section):
    num_processes: int = Field(1, ge=1)  # > 1: each trial through `accelerate launch`


class SweepSpace(Section):
    study: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage: str | None = None  # an Optuna RDB URL or a journal file; default <out>/optuna.journal
    sampler: SamplerSpec = SamplerSpec()
    n_trials: int | None = Field(None, ge=1)  # grid: default and maximum, the grid's size
    params: dict[str, ParamSpace] = Field(min_length=1)
    objective: ObjectiveSpec
    score: ScoreSpec = ScoreSpec()
    constraint: ConstraintSpec | None = None
    launch: LaunchSpec = LaunchSpec()

    @model_validator(mode="after")
    def _sampler_fits(self) -> SweepSpace:
        if self.sampler.name == "grid":
            ranged = [key for key, p in self.params.items() if p.values is None]
            if ranged:
                raise ValueError(
                    f"sampler 'grid' needs values: [...] for every param; {ranged[0]!r} has a "
                    "range (use sampler: {name: tpe} or {name: random} to sample it)"
                )
        elif self.n_trials is None:
            raise ValueError(f"sampler {self.sampler.name!r} needs n_trials (or --n-trials)")
        return self

    @property
    def grid(self) -> dict[str, list[Scalar]]:
        return {key: list(p.values or []) for key, p in self.params.items()}

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values or []) for p in self.params.values())

    @property
    def total_trials(self) -> int:
        """Trials of the whole study, all workers together."""
        if self.sampler.name == "grid":
            return min(self.n_trials or self.grid_size, self.grid_size)
        assert self.n_trials is not None  # checked by _sampler_fits
        return self.n_trials

    @property
    def benchmarks(self) -> list[str]:
        """Every benchmark a trial is scored on: the objective's first, no name twice."""
        names = [self.objective.benchmark, *self.score.benchmarks]
        names += self.constraint.no_regression_on if self.constraint else []
        return list(dict.fromkeys(names))


def load_space(path: str | Path, n_trials: int | None = None) -> SweepSpace:
    """Read and check a space file; ``n_trials`` (``--n-trials``) overrides the file's."""
    path = Path(path)
    source = display_path(path)
    data: dict[str, Any] = read_yaml_mapping(path, ConfigError, "sections at the top")
    data.setdefault("study", path.stem)
    if n_trials is not None:
        data["n_trials"] = n_trials
    try:
        space = SweepSpace.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_message(err, SweepSpace, source)) from None
    for key in space.params:
        check_config_key(key, f"{source}: params")
    return space


def check_config_key(key: str, where: str) -> None:
    """``key`` (dotted) is a value of the fine-tuning config, not a section, else a
    ConfigError naming it and the closest known key."""
    if config_key_model(key, where) is not None:
        raise ConfigError(f"{where}: {key!r} is a section; name one of its keys")
