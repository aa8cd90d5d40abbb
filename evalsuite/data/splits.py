"""The stratified split rule shared by `prepare`, the `catalogue` reader and holdout probes,
and the order items are listed in.

Splits are stratified (by articleType unless told otherwise): ``test_size`` of the items go to
test, then ``val_size`` of the remaining (train) items go to val, each with scikit-learn's
``train_test_split(stratify=..., random_state=seed)``. A class with fewer than
``MIN_STRATIFY_ITEMS`` (3) items at a step cannot be spread over the splits: it stays whole in
train. Larger classes get their proportional share (a small class may still get none of a
small split; every articleType of the real footwear data, smallest 32, is present in all
three).
"""

from __future__ import annotations

from collections import Counter

from evalsuite.errors import DataError

SPLITS = ("train", "val", "test")
MIN_STRATIFY_ITEMS = 3


def id_key(item_id: str) -> tuple[int, int, str]:
    """Sort key: numeric ids in numeric order, then any others in text order."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def holdout(
    ids: list[str], labels: list[str], size: float, seed: int
) -> tuple[list[str], list[str]]:
    """Stratified (kept, held-out) ids; classes under MIN_STRATIFY_ITEMS stay in kept."""
    counts = Counter(labels)
    common = [counts[label] >= MIN_STRATIFY_ITEMS for label in labels]
    rare = [i for i, ok in zip(ids, common, strict=True) if not ok]
    pool_ids = [i for i, ok in zip(ids, common, strict=True) if ok]
    pool_labels = [label for label, ok in zip(labels, common, strict=True) if ok]
    if size <= 0 or not pool_ids:
        return list(ids), []
    # Imported here: scikit-learn takes ~1 s to import and every `Item` user imports this package.
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(
            pool_ids, test_size=size, random_state=seed, stratify=pool_labels
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(pool_ids)} items {size:.0%} stratified: {exc}") from exc
    return rare + list(kept), list(held)


def assign_splits(
    ids: list[str], labels: list[str], seed: int, test_size: float, val_size: float
) -> dict[str, str]:
    """id -> "train" | "val" | "test": test first, then val out of what is left."""
    if not (0 < test_size < 1 and 0 <= val_size < 1):
        raise DataError(
            f"test_size must be in (0, 1) and val_size in [0, 1), got {test_size}, {val_size}"
        )
    label_of = dict(zip(ids, labels, strict=True))
    rest, test = holdout(ids, labels, test_size, seed)
    train, val = holdout(rest, [label_of[i] for i in rest], val_size, seed)
    return {
        **dict.fromkeys(train, "train"),
        **dict.fromkeys(val, "val"),
        **dict.fromkeys(test, "test"),
    }
