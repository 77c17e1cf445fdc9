"""A deterministic train / held-out split by a seeded hash of each item's name."""

import hashlib
from collections.abc import Sequence
from typing import Literal, TypeAlias

Split: TypeAlias = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


def is_held_out(key: str, *, fraction: float, seed: int) -> bool:
    """Whether the item named ``key`` is held out: a hash, so an item's side never changes as others come and go."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def split_indices(keys: Sequence[str], split: Split, *, fraction: float, seed: int) -> list[int]:
    """Positions of the ``keys`` that fall in ``split`` ("test": the held-out ``fraction``; "train": the rest).

    Raises:
        ValueError: if ``split`` is not "train" or "test", or ``fraction`` is outside ``[0, 1)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {fraction}")
    held_out = split == "test"
    return [i for i, key in enumerate(keys) if is_held_out(key, fraction=fraction, seed=seed) == held_out]
