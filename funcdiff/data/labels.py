"""Labelled data: fields with class labels of one or more kinds (a garment's class; a note's instrument and pitch).

A data set that has labels says so with two attributes: ``vocabulary``, the names of each kind's classes in order
(``{"instrument": ("acoustic grand piano", ...), "pitch": ("C3", ...)}``), and ``label_rows``, an integer array
``(n, k)`` holding each item's class index of every kind. `labelled` wraps it so that items are ``(field, labels)``.
"""

from collections.abc import Mapping, Sequence
from typing import final

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch.utils.data import Dataset, Subset

from funcdiff._typing import Int, Tensor

Vocabulary = dict[str, tuple[str, ...]]
"""Each kind of label and the names of its classes, in index order."""


def check_vocabulary(vocabulary: Mapping[str, Sequence[str]]) -> Vocabulary:
    """``vocabulary`` as a `Vocabulary`; ``ValueError`` unless every kind names at least one class, all distinct."""
    if not vocabulary:
        raise ValueError("a vocabulary needs at least one kind of label")
    for kind, names in vocabulary.items():
        if not isinstance(kind, str) or not kind or isinstance(names, str) or not names or len(set(names)) != len(names):
            raise ValueError(f"label kind {kind!r} must name one or more distinct classes, got {names!r}")
    return {kind: tuple(str(name) for name in names) for kind, names in vocabulary.items()}


@final
class Labelled(Dataset):
    """A data set of fields with a label of each kind of ``vocabulary`` per item; item ``i`` is ``(field, labels)``.

    Args:
        fields: the data set of fields ``(c, *spatial)``.
        labels: each item's class index of every kind, ``(len(fields), len(vocabulary))``.
        vocabulary: each kind's class names (`Vocabulary`).

    Raises:
        ValueError: if the labels do not have one row per field and one column per kind, or lie outside the classes.
    """

    def __init__(self, fields: Dataset | Sequence[Tensor], labels: np.ndarray | Tensor, vocabulary: Mapping[str, Sequence[str]]) -> None:
        self.vocabulary = check_vocabulary(vocabulary)
        rows = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        rows = rows[:, None] if rows.ndim == 1 else rows
        if rows.ndim != 2 or rows.shape != (len(fields), len(self.vocabulary)):
            raise ValueError(f"labels must have shape ({len(fields)}, {len(self.vocabulary)}), got {tuple(rows.shape)}")
        sizes = torch.tensor([len(names) for names in self.vocabulary.values()])
        if len(rows) and bool(((rows < 0) | (rows >= sizes)).any()):
            raise ValueError(f"labels must lie in [0, classes) for the classes {dict(zip(self.vocabulary, sizes.tolist()))}")
        self.fields = fields
        self.labels = rows

    def __len__(self) -> int:
        """The number of items."""
        return len(self.fields)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> tuple[Tensor, Int[Tensor, " k"]]:
        """Field ``index`` and its labels."""
        return self.fields[index], self.labels[index]


def fields_of(data: Dataset | Sequence[Tensor]) -> Dataset | Sequence[Tensor]:
    """The fields of a `Labelled` data set, or ``data`` itself."""
    return data.fields if isinstance(data, Labelled) else data


def labelled(dataset: Dataset | Sequence[Tensor]) -> Labelled:
    """``dataset`` with its labels (its ``vocabulary`` and ``label_rows``, also under `Subset` wrappers).

    Raises:
        ValueError: if the data set has no labels.
    """
    base, indices = dataset, np.arange(len(dataset))
    while isinstance(base, Subset):
        indices = np.asarray(base.indices)[indices]
        base = base.dataset
    vocabulary, rows = getattr(base, "vocabulary", None), getattr(base, "label_rows", None)
    if vocabulary is None or rows is None:
        raise ValueError(f"{type(base).__name__} data have no labels to condition on (labelled: fashion-mnist, notes, digits, "
                         "image folders with one subfolder per class)")
    return Labelled(dataset, np.asarray(rows).reshape(len(base), -1)[indices], vocabulary)
