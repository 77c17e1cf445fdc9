"""The label-conditioning protocol: an operator conditioned on class labels, trained with labels dropped so that it
also models the data without them, which classifier-free guidance needs (Ho & Salimans 2022; docs/math.md §18)."""

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch

from funcdiff._typing import Int, Tensor

UNSPECIFIED = -1
"""The label that says "any class of this kind": the model's condition without it."""


@runtime_checkable
class LabelConditioning(Protocol):
    """An operator whose ``cond`` is an integer label per kind of its `vocabulary` (``(b, k)``; `UNSPECIFIED` where a
    kind is not given), that drops labels at random in training (so ``cond`` of `UNSPECIFIED` labels is the
    unconditional model)."""

    @property
    @abstractmethod
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Each kind of label and its class names, in index order."""


def check_labels(labels: Int[Tensor, "b k"], vocabulary: Mapping[str, Sequence[str]]) -> None:
    """``ValueError`` naming the kind unless every label lies in its kind's classes or is `UNSPECIFIED`."""
    if labels.ndim != 2 or labels.shape[1] != len(vocabulary):
        raise ValueError(f"labels must have shape (b, {len(vocabulary)}) for the kinds {list(vocabulary)}, got {tuple(labels.shape)}")
    for column, (kind, names) in zip(labels.unbind(1), vocabulary.items()):
        bad = column[(column < UNSPECIFIED) | (column >= len(names))]
        if len(bad):
            raise ValueError(f"label {int(bad[0])} of {kind!r} is out of range: {len(names)} classes, 0 to {len(names) - 1}")


def parse_labels(text: str, vocabulary: Mapping[str, Sequence[str]]) -> tuple[int, ...]:
    """The labels a user writes: ``"Sandal"`` or ``"5"`` for a model with one kind of label, ``"instrument=church
    organ,pitch=C4"`` for several (kinds left out are `UNSPECIFIED`); names match without regard to case.

    Raises:
        ValueError: naming the kind or the class that is not in ``vocabulary``.
    """
    kinds = list(vocabulary)
    parts = [part.strip() for part in text.split(",")] if "=" in text else [f"{kinds[0]}={text.strip()}"]
    labels = [UNSPECIFIED] * len(kinds)
    for part in parts:
        kind, _, value = (piece.strip() for piece in part.partition("="))
        if kind not in vocabulary:
            raise ValueError(f"no label kind {kind!r} in {text!r}: the model's kinds are {kinds}")
        labels[kinds.index(kind)] = _class_index(kind, value, vocabulary[kind])
    if len(kinds) > 1 and "=" not in text:
        raise ValueError(f"the model has several kinds of label, {kinds}: write them as {kinds[0]}=...,{kinds[1]}=...")
    return tuple(labels)


def _class_index(kind: str, value: str, names: Sequence[str]) -> int:
    """The index of class ``value`` (a name, any case, or an index) of ``kind``."""
    lowered = [name.lower() for name in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    if value.isdigit() and int(value) < len(names):
        return int(value)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise ValueError(f"no class {value!r} of {kind!r}: its {len(names)} classes are {shown} (or 0 to {len(names) - 1})")


def unspecified_like(labels: Int[Tensor, "b k"]) -> Int[Tensor, "b k"]:
    """Labels of the same shape that specify nothing (the unconditional model's)."""
    return torch.full_like(labels, UNSPECIFIED)
