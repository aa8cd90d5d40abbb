"""The Training page: each fine-tune's summary, per-epoch curves and validation metrics,
and its training configuration."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import training
from dashboards.reading import read
from dashboards.widgets import provenance
from evalsuite.formatting import md


def show(ctx: dict[str, Any]) -> None:
    models = ctx["models"]
    tuned = models[models["kind"] != "base"]
    # a training log belongs to weights: read by the fingerprint, shown under the name
    histories = {
        name: read(ctx["db"], "history", fp)
        for name, fp in zip(tuned["name"], tuned["fingerprint"], strict=True)
        if isinstance(fp, str)
    }
    histories = {k: v for k, v in histories.items() if not v.empty}
    summary = training.training_summary(tuned)
    if not summary.empty:
        st.dataframe(summary, hide_index=True, key="training_summary")
    if not histories:
        st.info(
            "No fine-tuned model with a training history in this database. Fine-tune with "
            "`finetune ...` and score the checkpoint with `evalsuite score CHECKPOINT`."
        )
        return
    chosen = st.multiselect(
        "Fine-tuned models", list(histories), default=list(histories), key="tr_models"
    )
    long = training.history_long({k: histories[k] for k in chosen})
    if long.empty:
        st.info("Pick a model.")
        return
    st.caption(
        "Per-epoch log written by `finetune`: a validation loss that rises while the "
        "train loss falls means the model starts to overfit."
    )
    left, right = st.columns(2)
    left.altair_chart(
        training.history_chart(long, ["train_loss", "val_loss"], "Loss"), width="stretch"
    )
    right.altair_chart(
        training.history_chart(long, ["val_accuracy"], "Validation accuracy"), width="stretch"
    )
    if "lr" in set(long["key"]):
        left.altair_chart(training.history_chart(long, ["lr"], "Learning rate"), width="stretch")
    records = dict(zip(tuned["name"], tuned["training"], strict=True))
    show_epochs(chosen, histories, records)
    with st.expander("Training configuration (training.json)"):
        for name in chosen:
            record = records.get(name) or {}
            st.markdown(f"**{md(name)}**")
            shown = {k: v for k, v in record.items() if k != "history"}
            st.code(json.dumps(shown, indent=2, default=str), language="json")
    keep = set(tuned["name"]) | {ctx["baseline"]}
    provenance(ctx["runs"][ctx["runs"]["model_name"].isin(keep)], models, ctx["baseline"])


def show_epochs(
    chosen: list[str], histories: dict[str, pd.DataFrame], records: dict[str, Any]
) -> None:
    """Each chosen model's per-epoch validation metrics, the epoch saved as best/ marked."""
    st.subheader("Validation metrics per epoch")
    st.caption("Epoch 0, where present, is the base model before fine-tuning.")
    for i, name in enumerate(chosen):
        record = records.get(name) or {}
        st.markdown(f"**{md(name)}**")
        if training.data_summary(record):
            st.caption(f"Trained on {md(training.data_summary(record))}")
        table = training.history_table(histories[name], record.get("best_epoch"))
        st.dataframe(table, hide_index=True, key=f"tr_epochs_{i}")
