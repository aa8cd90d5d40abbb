"""The fine-tuning config: a frozen pydantic model read from YAML, plus ``--set`` overrides.

Every section forbids unknown keys, so a misspelt key is a :class:`ConfigError` naming the
file, the key path and the closest known key. Defaults follow the seed recipe: AdamW at
3e-5 (weight decay 1e-4), ReduceLROnPlateau on the validation loss (patience 1, factor
0.1), early stopping on the validation loss. ``configs/footwear.yaml`` shows every key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evalsuite.errors import ConfigError, EvalSuiteError
from evalsuite.hub import HubModelNotCached, check_hub_spec
from evalsuite.registry import suggest
from evalsuite.schema import display_path, read_yaml_mapping, validation_message
from evalsuite.spec_tasks import DEFAULT_TEMPLATES

if TYPE_CHECKING:
    from evalsuite.models.base import ClipModel

log = logging.getLogger("finetune")

# how a downloaded model folder is passed to finetune (the advice of HubModelNotCached)
SPEC_ADVICE = "`--set model.spec=DIR` (or `model.spec: DIR` in the config)"


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    spec: str  # anything evalsuite.models.load_model takes
    pretrained: str | None = None  # open_clip pretrained tag or weights file
    trust_remote_code: bool = False


def check_reader(name: str) -> str:
    """A reader of evalsuite's registry (the one benchmark YAMLs name)."""
    from evalsuite.data import get_reader  # the readers import heavy libraries: only when used

    try:
        get_reader(name)
    except EvalSuiteError as err:
        raise ValueError(str(err)) from None
    return name


def check_caption_fields(fields: str | list[str]) -> str | list[str]:
    if isinstance(fields, list) and (not fields or len(set(fields)) != len(fields)):
        raise ValueError("needs at least one field, each named once")
    return fields


class ReplayConfig(Section):
    """A second dataset mixed into every training batch against forgetting (e.g. general,
    non-footwear catalogue items): ``fraction`` of each batch, seeded and resumable."""

    reader: str = "catalogue"  # any reader of evalsuite.data.READERS, as in a benchmark YAML
    path: str
    options: dict[str, Any] = Field(default_factory=dict)  # the reader's options
    split: str | None = "train"
    caption_field: str | list[str] | None = None  # default: data.caption_field
    fraction: float = Field(ge=0, lt=1)  # of each batch's items, rounded: at least 1 item

    _reader = field_validator("reader")(check_reader)
    _captions = field_validator("caption_field")(check_caption_fields)


class DataConfig(Section):
    reader: str = "catalogue"  # any reader of evalsuite.data.READERS, as in a benchmark YAML
    path: str  # catalogue: a folder written by `evalsuite prepare` (train/val/test.jsonl)
    options: dict[str, Any] = Field(default_factory=dict)  # the reader's options
    train_split: str | None = "train"
    val_split: str | None = "val"  # None: no validation, no early stopping, no best/
    # "caption" = the item's caption (the enriched description of a prepared catalogue); else
    # an item field; a list: every caption of those fields, one drawn per item and epoch
    caption_field: str | list[str] = "caption"
    target_field: str = "articleType"  # zero-shot accuracy, same-label masking, zeroshot_ce
    # Target values, or value -> name used in prompts; default: the values in train + val.
    classes: list[str] | dict[str, str] | None = None
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1)
    # decode workers per process; None: on CUDA one per spare core (at most 8), on CPU 0
    num_workers: int | None = Field(None, ge=0)
    on_bad_image: Literal["skip", "error"] = "skip"  # skip: drop the item, warn with a count
    max_items: int | None = Field(None, ge=1)  # seeded subsample of train (and val) items
    replay: ReplayConfig | None = None

    _reader = field_validator("reader")(check_reader)
    _captions = field_validator("caption_field")(check_caption_fields)

    @field_validator("templates")
    @classmethod
    def _one_placeholder(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if template.count("{}") + template.count("{c}") != 1:
                raise ValueError(f"template {template!r} needs exactly one '{{}}' placeholder")
        return templates

    @model_validator(mode="after")
    def _separate_splits(self) -> DataConfig:
        # null reads the whole source: with a validation split it would train on it too
        if self.val_split is not None and self.train_split in (None, self.val_split):
            raise ValueError(
                f"train_split {self.train_split!r} with val_split {self.val_split!r} trains on "
                "the validation items (null reads every split); name two different splits, "
                "or set val_split: null"
            )
        return self


class OptimConfig(Section):
    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-6, gt=0)
    grad_clip_norm: float | None = Field(1.0, gt=0)
    layer_decay: float | None = Field(None, gt=0, le=1)  # LR x decay^(depth from the top)


class ScheduleConfig(Section):
    name: Literal["plateau", "cosine", "constant"] = "plateau"
    patience: int = Field(1, ge=0)  # plateau: epochs without val-loss improvement
    factor: float = Field(0.1, gt=0, lt=1)  # plateau: LR multiplier
    warmup_steps: int = Field(0, ge=0)  # cosine/constant: linear warmup (optimizer steps)
    min_lr: float = Field(0.0, ge=0)  # cosine: final LR


class TrainSection(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)  # per process, per micro-batch
    accum_steps: int = Field(1, ge=1)  # micro-batches per step; enlarges the negatives pool
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    grad_checkpointing: bool = False
    seed: int = 0
    early_stopping_patience: int | None = Field(3, ge=1)  # epochs without val-loss improvement
    # Improvement (early stopping, best/, plateau scheduler): val loss < best - min_delta.
    min_delta: float = Field(0.0, ge=0)
    # Items per chunk of the contrastive val loss, whatever the process count; None:
    # batch_size x accum_steps (at least 2).
    val_batch_size: int | None = Field(None, ge=2)
    eval_every_epoch: bool = True
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps
    log_every: int = Field(10, ge=1)  # steps between steps.jsonl lines; + each epoch's last
    checkpoint_every_steps: int | None = Field(None, ge=1)  # resumable state mid-epoch


class HardNegativesConfig(Section):
    """Captions with the target attribute swapped, added as negatives on the image side."""

    enabled: bool = False
    field: str | None = None  # default: data.target_field
    values: list[str] | None = None  # vocabulary to swap in; default: values seen in the data
    count: int = Field(1, ge=1)  # hard negative captions per image
    # Used when the caption does not contain the item's value (case-insensitive):
    # {caption} and {value} are filled in, e.g. "{caption} with {value} laces".
    fallback_template: str | None = "{caption} {value}."


class LossConfig(Section):
    # None: the model's own (resolve_objective): sigmoid for a model with a logit bias
    # (SigLIP), else contrastive (CLIP's InfoNCE); zeroshot_ce: the image tower only
    objective: Literal["contrastive", "sigmoid", "zeroshot_ce"] | None = None
    same_label_masking: bool = False  # same target value: not a negative
    hard_negatives: HardNegativesConfig = HardNegativesConfig()


class LockConfig(Section):
    """Which tower parts stay frozen (open_clip's --lock-image / --lock-text)."""

    lock_image: bool = False
    lock_image_unlocked_blocks: int = Field(0, ge=0)  # last N blocks stay trainable
    lock_image_unlock_projection: bool = False
    lock_text: bool = False
    lock_text_unlocked_blocks: int = Field(0, ge=0)
    lock_text_unlock_projection: bool = False
    gradual_unfreeze: bool = False  # unfreeze locked blocks from the top, epoch by epoch
    unfreeze_blocks_per_epoch: int = Field(1, ge=1)


class LoraConfig(Section):
    enabled: bool = False
    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target: Literal["attention"] = "attention"


class EmaConfig(Section):
    enabled: bool = False
    decay: float = Field(0.999, gt=0, lt=1)
    eval_with_ema: bool = True  # validate and save the EMA weights


class OutputConfig(Section):
    dir: str = "runs/finetune"
    run_name: str | None = None  # default: the output folder's name
    save_last: bool = True
    save_best: bool = True
    log_with: str | None = None  # an accelerate tracker ("tensorboard", "all"); None: none


class TrainConfig(Section):
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainSection = TrainSection()
    loss: LossConfig = LossConfig()
    lock: LockConfig = LockConfig()
    lora: LoraConfig = LoraConfig()
    ema: EmaConfig = EmaConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        plateau = self.schedule.name == "plateau"
        if plateau and (self.data.val_split is None or not self.train.eval_every_epoch):
            raise ValueError(
                "schedule.name 'plateau' needs a validation split (data.val_split) and "
                "train.eval_every_epoch: true; use 'cosine' or 'constant' otherwise"
            )
        if self.loss.objective == "zeroshot_ce" and self.data.replay is not None:
            raise ValueError(
                "data.replay needs loss.objective 'contrastive' or 'sigmoid': zeroshot_ce "
                "classifies into the target classes, which replay items (other categories) "
                "do not have"
            )
        pairwise_only = self.loss.hard_negatives.enabled or self.loss.same_label_masking
        if self.loss.objective == "zeroshot_ce" and pairwise_only:
            raise ValueError(
                "loss.hard_negatives and loss.same_label_masking need loss.objective "
                "'contrastive' or 'sigmoid'"
            )
        return self

    @property
    def run_name(self) -> str:
        return self.output.run_name or Path(self.output.dir).resolve().name

    @property
    def hard_negative_field(self) -> str:
        return self.loss.hard_negatives.field or self.data.target_field


# --- loading ---------------------------------------------------------------------------------


def flatten_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dump as flat ``section.key`` scalars: what trackers accept, and what
    a resumed run compares with the saved config."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = str(value)  # None, lists: TensorBoard takes scalars only
    return out


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``section.key=value`` to the raw dict; the value is parsed as YAML."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
    parts = key.strip().split(".")
    config_key_model(key.strip(), f"--set {assignment!r}")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        node = node.setdefault(part, {}) if child is None else child
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {part} is not a section in the file")
    node[parts[-1]] = yaml.safe_load(text) if text.strip() else None


def config_key_model(key: str, what: str) -> type[BaseModel] | None:
    """The section model a dotted ``key`` of the config names (None for a value); for a key
    the config does not have, a ConfigError starting with ``what`` that names the closest
    (``--set`` and a sweep's params both check their keys here)."""
    model: type[BaseModel] | None = TrainConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if model is None:
            raise ConfigError(f"{what}: {key!r}: {'.'.join(parts[:depth])} has no keys")
        fields = model.model_fields
        if part not in fields:
            inside = ".".join(parts[:depth]) or "the top level"
            raise ConfigError(
                f"{what}: unknown config key {key!r}: no {part!r} in {inside}"
                f"{suggest(part, sorted(fields))}"
            )
        annotation = fields[part].annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_section else None
    return model


def load_config(
    path: str | Path, overrides: Sequence[str] = (), output_dir: str | None = None
) -> TrainConfig:
    """Read ``path``, apply ``--set`` overrides (and ``--output-dir``), validate."""
    path = Path(path)
    data = read_yaml_mapping(path, ConfigError, "sections at the top")
    for assignment in overrides:
        apply_override(data, assignment)
    if output_dir is not None:
        apply_override(data, "output.dir=")
        data["output"]["dir"] = str(output_dir)
    return validate_config(data, display_path(path))


def validate_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_message(err, TrainConfig, source)) from None


def resolve_objective(cfg: TrainConfig, model: ClipModel) -> TrainConfig:
    """``cfg`` with ``loss.objective`` set, once the model is loaded: unset, the model's own
    (``sigmoid`` for a model with a logit bias, SigLIP's, else ``contrastive``); ``sigmoid``
    on a model without a logit bias is a ConfigError. The run (training.json, trackers, the
    state that --resume compares) records the resolved value."""
    objective = cfg.loss.objective
    if objective is None:
        objective = model.objective
        log.info("loss.objective: %s (the objective of %s)", objective, model.name)
    elif objective == "sigmoid" and model.logit_bias_parameter is None:
        raise ConfigError(
            f"loss.objective 'sigmoid' needs a model with a logit bias, and {model.name} has "
            "none (SigLIP models have one: sigmoid(scale * cos + bias)); use "
            "loss.objective: contrastive, or leave it unset for the model's own objective"
        )
    return cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"objective": objective})})


def check_model_spec(cfg: TrainConfig) -> None:
    """A Hub id in ``model.spec`` that is neither cached nor downloadable fails now, in a
    second, before torch and transformers load; the advice names ``model.spec``."""
    try:
        check_hub_spec(cfg.model.spec)
    except HubModelNotCached as err:
        raise err.advise(SPEC_ADVICE) from None
