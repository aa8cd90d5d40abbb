"""Which process this is under ``accelerate launch`` / torchrun, and objects shared between
the processes: what scoring needs to split work and agree on decisions.

torch.distributed is used directly once it is initialised: accelerate's own
``gather_object`` trusts its ``PartialState``, which a forked child (accelerate's
``debug_launcher``) inherits from its parent.
"""

from __future__ import annotations

from typing import Any

import torch


def process_rank_and_count() -> tuple[int, int]:
    """(rank, world size) under ``accelerate launch`` or torchrun; (0, 1) otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        from accelerate import PartialState  # accelerate is slow to import: only when asked

        state = PartialState()
        return state.process_index, state.num_processes
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def all_gather(value: Any) -> list[Any]:
    """``value`` of every process, in rank order (``[value]`` in a single process)."""
    world = process_rank_and_count()[1]
    if world == 1:
        return [value]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, value)
    return out


def main_process_value(value: Any) -> Any:
    """The main process's ``value`` on every process: a decision all must take alike."""
    return all_gather(value)[0]
