"""Classifier-free guidance (Ho & Salimans 2022; docs/math.md §18): a label-conditional model's prediction pushed away
from its unconditional one, ``u + w (c - u)``, both from one batched call."""

from collections.abc import Callable

import torch

from funcdiff._typing import DenseField, Float, Int, Tensor
from funcdiff.conditioning import LabelConditioning, check_labels, unspecified_like

DenseCall = Callable[[DenseField, Float[Tensor, " b"], Tensor | None], DenseField]


def free_guidance(model: object, dense: DenseCall, labels: Tensor | None, scale: float) -> DenseCall:
    """``dense`` (the dense call of ``model``) under classifier-free guidance of ``scale``: the prediction given the
    labels passed to it, ``c``, and given none, ``u``, combined as ``u + scale (c - u)`` (1: the conditional model, 0:
    the unconditional one). The samplers pass ``labels`` through as their ``cond``.

    Raises:
        ValueError: if ``model`` is not label-conditional (`LabelConditioning`), ``labels`` are missing, or a label is
            out of range.
    """
    if not isinstance(model, LabelConditioning):
        raise ValueError(f"a guidance scale needs a label-conditional model (trained with --conditional); {type(model).__name__} is not one")
    if labels is None:
        raise ValueError("a guidance scale needs the labels to guide toward (cond, or --class)")
    check_labels(labels, model.vocabulary)

    def guided(y: DenseField, t: Float[Tensor, " b"], cond: Int[Tensor, "b k"]) -> DenseField:
        both = dense(torch.cat([y, y]), torch.cat([t, t]), torch.cat([cond, unspecified_like(cond)]))
        conditional, unconditional = both.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    return guided
