"""Validation settings (tests/test_finetune_distributed.py runs validation on 2 processes)."""

from __future__ import annotations

from finetune.config import validate_config
from finetune.validation import val_chunk


def config(**train) -> dict:
    return {"model": {"spec": "unused"}, "data": {"path": "unused"}, "train": train}


def test_val_chunk_is_one_process_step_by_default() -> None:
    assert val_chunk(validate_config(config(batch_size=4, accum_steps=3))) == 12
    assert val_chunk(validate_config(config(batch_size=1))) == 2  # one item: no negative
    assert val_chunk(validate_config(config(batch_size=4, val_batch_size=10))) == 10
