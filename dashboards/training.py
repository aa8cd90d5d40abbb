"""The Training page's tables and charts, as pure functions of the store's frames.

What ``finetune`` writes (``finetune/checkpoint.py::training_record``) is read here:
``training["config"]`` is the full ``finetune.config.TrainConfig`` dump (``optim.lr``,
``train.batch_size`` / ``accum_steps`` / ``epochs``, ``data.reader`` / ``path`` / splits /
``replay``), ``training["data"]`` what the run read (manifest hashes, split sizes, items
used, the replay set), and each history row one epoch's log (``epoch``, ``train_loss``,
``val_loss``, ``val_accuracy``, ``lr``, ``seconds``; anything else arrives from
``evalsuite.store.history`` in ``extra``). Epoch 0 is the base model's validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dashboards.views import fmt_duration, fmt_params, short_hash
from evalsuite.sweeps import describe

HISTORY_SERIES = {
    "train_loss": "Train loss",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
    "lr": "Learning rate",
}
# one colour and one marker per series, the same in every chart and legend
SERIES_COLOURS = {"Train loss": "#1f6feb", "Validation loss": "#d9480f",
                  "Validation accuracy": "#2f9e44", "Learning rate": "#6c757d"}  # fmt: skip
SERIES_SHAPES = {"Train loss": "circle", "Validation loss": "triangle-up",
                 "Validation accuracy": "diamond", "Learning rate": "square"}  # fmt: skip
HISTORY_COLUMNS = {  # the per-epoch table: history key -> column
    "epoch": "Epoch",
    "train_loss": "Train loss",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy (%)",
    "lr": "Learning rate",
    "seconds": "Time",
}
EXTRA_LABELS = {
    "steps": "Steps",
    "items_replaced": "Items replaced",
    "unfrozen": "Unfrozen",
    "trainable_parameters": "Trainable parameters",
}


def _section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else ""


def _splits(data: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """ "train 1,200 items, val 150" from the items used, else the manifest's split sizes."""
    used = [(s, info.get(f"{s}_items")) for s in ("train", "val")]
    if any(_count(n) for _, n in used):
        parts = [f"{s} {_count(n)}" for s, n in used if _count(n)]
        return parts[0] + " items" + "".join(f", {p}" for p in parts[1:])
    sizes = info.get("sizes") if isinstance(info.get("sizes"), dict) else {}
    named = [data.get("train_split"), data.get("val_split")]
    parts = [f"{s} {_count(sizes.get(s))}" for s in named if s and _count(sizes.get(s))]
    return ", ".join(parts)


def _replay(replay: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    fraction = replay.get("fraction")
    share = f"{100 * fraction:.0f}% of each batch" if isinstance(fraction, (int, float)) else ""
    items = _count(info.get("items"))
    source = " ".join(
        w for w in (replay.get("reader"), Path(str(replay.get("path", ""))).name) if w
    )
    parts = [source, share, f"{items} items" if items else ""]
    return "replay: " + ", ".join(p for p in parts if p)


def data_summary(training: Mapping[str, Any]) -> str:
    """One line on what a fine-tune read: reader, folder, split sizes, manifest hash, replay,
    e.g. "catalogue footwear-prepared · train 1,200 items, val 150 · manifest 3f2a1b9c0d"."""
    data = _section(_section(training, "config"), "data")
    info = _section(training, "data")
    path = data.get("path") or info.get("path")
    parts = [" ".join(str(w) for w in (data.get("reader") or info.get("reader"), path) if w)]
    parts.append(_splits(data, info))
    if info.get("manifest_hash"):
        parts.append(f"manifest {short_hash(info['manifest_hash'])}")
    elif info.get("file_sha256"):
        parts.append(f"file {short_hash(info['file_sha256'])}")
    replay = _section(data, "replay")
    if replay:
        parts.append(_replay(replay, _section(info, "replay")))
    return " · ".join(p for p in parts if p)


def _batch(train: Mapping[str, Any]) -> str:
    size, accum = train.get("batch_size"), train.get("accum_steps") or 1
    if not isinstance(size, int):
        return ""
    return f"{size} × {accum} steps" if accum > 1 else str(size)


def _epochs(training: Mapping[str, Any], train: Mapping[str, Any]) -> str:
    """Epochs trained (epoch 0, the base model's validation, is not one) of those planned."""
    done = [e for e in training.get("history") or [] if isinstance(e, dict) and e.get("epoch")]
    planned = train.get("epochs")
    if done and isinstance(planned, int) and planned != len(done):
        return f"{len(done)} of {planned}"
    return str(len(done) or planned or "")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def training_summary(models: pd.DataFrame) -> pd.DataFrame:
    """What each fine-tuned model is: run, base model, epochs, learning rate, batch size,
    time, data; a WiSE-FT interpolation shows its base model."""
    rows = []
    for row in models.to_dict("records"):
        training = row.get("training")
        if not training:
            continue
        config = _section(training, "config")
        train = _section(config, "train")
        base = training.get("base_model")
        base = base.get("spec") if isinstance(base, dict) else base
        wise = _section(training, "wise")
        lr = _section(config, "optim").get("lr")
        rows.append(
            {
                "Model": row["name"],
                "Type": row["kind"],
                "Run": training.get("run_name", ""),
                "Base model": _text(base)
                or _text(row.get("base_model"))
                or _text(wise.get("base_spec")),
                "Epochs": _epochs(training, train),
                "Learning rate": f"{lr:g}" if isinstance(lr, (int, float)) else "",
                "Batch size": _batch(train),
                "Fine-tuning time": fmt_duration(row.get("train_seconds")),
                "Trained on": data_summary(training),
                "Sweep": describe(training),
            }
        )
    frame = pd.DataFrame(rows)
    if "Sweep" in frame and not frame["Sweep"].astype(bool).any():  # no sweep: no column
        frame = frame.drop(columns="Sweep")
    return frame


# ---------------------------------------------------------------- per-epoch log


def _extras(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``extra`` column of ``store.history`` as columns of their own."""
    if "extra" not in frame.columns:
        return frame
    extra = pd.DataFrame(
        [e if isinstance(e, dict) else {} for e in frame["extra"]], index=frame.index
    )
    extra = extra.drop(columns=[c for c in extra.columns if c in frame.columns])
    return pd.concat([frame.drop(columns="extra"), extra], axis=1)


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return value


def history_table(history: pd.DataFrame, best_epoch: Any = None) -> pd.DataFrame:
    """One row per epoch: losses, validation accuracy in %, learning rate, time and every
    other key the epoch log holds; epoch 0 is the base model before fine-tuning."""
    frame = _extras(history).sort_values("epoch")
    out = pd.DataFrame(index=frame.index)
    for key, label in HISTORY_COLUMNS.items():
        if key in frame.columns and (key == "epoch" or frame[key].notna().any()):
            out[label] = frame[key]
    if "Validation accuracy (%)" in out:
        out["Validation accuracy (%)"] = (100 * out["Validation accuracy (%)"]).round(1)
    if "Learning rate" in out:
        out["Learning rate"] = [f"{v:.3g}" if pd.notna(v) else "" for v in out["Learning rate"]]
    if "Time" in out:
        out["Time"] = [fmt_duration(s) if pd.notna(s) else "" for s in out["Time"]]
    for key in [c for c in frame.columns if c not in HISTORY_COLUMNS]:
        values = [_cell(v) for v in frame[key]]
        if key == "trainable_parameters":
            values = [fmt_params(v) if isinstance(v, (int, float)) else v for v in values]
        out[EXTRA_LABELS.get(key, key)] = values
    if isinstance(best_epoch, int):
        out.insert(1, "Best", ["✓ best/" if e == best_epoch else "" for e in frame["epoch"]])
    return out.reset_index(drop=True)


def history_long(histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-epoch logs of several models in long format: Model, epoch, key, series, value."""
    frames = []
    for label, frame in histories.items():
        if frame is None or frame.empty:
            continue
        present = [c for c in HISTORY_SERIES if c in frame.columns]
        long = frame.melt(id_vars=["epoch"], value_vars=present, var_name="key")
        long["series"] = long["key"].map(HISTORY_SERIES)
        long["Model"] = label
        frames.append(long.dropna(subset=["value"]))
    if not frames:
        return pd.DataFrame(columns=["Model", "epoch", "key", "series", "value"])
    return pd.concat(frames, ignore_index=True)[["Model", "epoch", "key", "series", "value"]]


def history_chart(long: pd.DataFrame, keys: Sequence[str], title: str, log_scale: bool = False):
    """Per-epoch lines of the given history series: each series its own colour and marker
    (one legend), each model its own dash pattern when there are several."""
    import altair as alt

    part = long[long["key"].isin(list(keys))]
    series = [HISTORY_SERIES[k] for k in keys if k in HISTORY_SERIES]
    scale = alt.Scale(type="log") if log_scale else alt.Scale(zero=False)
    legend = alt.Legend(title=None, orient="top")
    encoding: dict[str, Any] = {
        "x": alt.X("epoch:Q", title="Epoch", axis=alt.Axis(tickMinStep=1)),
        "y": alt.Y("value:Q", title=None, scale=scale),
        "color": alt.Color(
            "series:N",
            scale=alt.Scale(domain=series, range=[SERIES_COLOURS[s] for s in series]),
            legend=legend,
        ),
        "shape": alt.Shape(
            "series:N",
            scale=alt.Scale(domain=series, range=[SERIES_SHAPES[s] for s in series]),
            legend=legend,
        ),
        "detail": "Model:N",
        "tooltip": ["Model", "series", "epoch", alt.Tooltip("value:Q", format=".4g")],
    }
    if part["Model"].nunique() > 1:
        encoding["strokeDash"] = alt.StrokeDash("Model:N", legend=alt.Legend(orient="top"))
    return (
        alt.Chart(part, title=title)
        .mark_line(point=alt.OverlayMarkDef(filled=True, size=70))
        .encode(**encoding)
        .properties(height=280)
    )
