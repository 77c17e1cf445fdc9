"""An operator conditioned on class labels: one learned embedding per kind of label, summed into the latent that
modulates the denoiser, each label dropped at random in training (Ho & Salimans 2022; docs/math.md §18)."""

from collections.abc import Mapping, Sequence
from typing import Any, final

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Int, Tensor
from funcdiff.conditioning import UNSPECIFIED, LabelConditioning, check_labels
from funcdiff.data.labels import check_vocabulary
from funcdiff.operators.base import NeuralOperator
from funcdiff.points import Points
from funcdiff.registry import component_dict, register


@register("label_conditional")
@final
class LabelConditional(nn.Module, NeuralOperator, LabelConditioning):
    """A `NeuralOperator` whose ``cond`` is a label of each kind of ``vocabulary`` (``(b, k)`` integers, `UNSPECIFIED`
    for "any"): the sum of one embedding per kind (row ``classes`` of each table stands for `UNSPECIFIED`) is the
    latent ``z`` of the wrapped operator, which modulates its blocks as a diffusion autoencoder's latent does.

    In training mode an example's labels are all replaced by `UNSPECIFIED` with probability ``dropout``, and with
    several kinds each kind also alone with probability ``dropout``, so the one network is also the model of the data
    given some kinds or none, and classifier-free guidance (`funcdiff.sampling.sample`'s ``guidance_scale``) can
    extrapolate from it. ``cond=None`` specifies nothing.

    Args:
        operator: the denoiser, built with a latent of ``z_dim`` (e.g. ``operator_preset(..., z_dim=64)``).
        vocabulary: each kind of label and its class names (`funcdiff.data.labels.Vocabulary`).
        z_dim: the embeddings' size, the operator's latent size.
        dropout: the probability that training drops a label.
    """

    def __init__(self, operator: NeuralOperator, vocabulary: Mapping[str, Sequence[str]], *, z_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        if not isinstance(operator, nn.Module) or not isinstance(operator, NeuralOperator):
            raise TypeError(f"operator must be a torch.nn.Module implementing NeuralOperator, got {type(operator).__name__}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        self.operator = operator
        self._vocabulary = check_vocabulary(vocabulary)
        self.z_dim, self.dropout = z_dim, dropout
        self.embeddings = nn.ModuleList(nn.Embedding(len(names) + 1, z_dim) for names in self._vocabulary.values())

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Each kind of label and its class names."""
        return dict(self._vocabulary)

    @property
    def reference_shape(self) -> tuple[int, ...]:
        """The operator's training grid."""
        return tuple(self.operator.reference_shape)

    @jaxtyped(typechecker=beartype)
    def embed(self, labels: Int[Tensor, "b k"]) -> Float[Tensor, "b z"]:
        """The latent of ``labels`` (after training's dropout, in training mode)."""
        check_labels(labels, self._vocabulary)
        if self.training and self.dropout > 0:
            whole = torch.rand(labels.shape[0], 1, device=labels.device) < self.dropout
            alone = torch.rand(labels.shape, device=labels.device) < self.dropout if labels.shape[1] > 1 else torch.zeros_like(whole)
            labels = labels.masked_fill(whole | alone, UNSPECIFIED)
        rows = [torch.where(column == UNSPECIFIED, len(names), column)
                for column, names in zip(labels.unbind(1), self._vocabulary.values())]
        return torch.stack([table(row) for table, row in zip(self.embeddings, rows)]).sum(0)

    def _labels(self, cond: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """``cond`` as labels; all `UNSPECIFIED` for None."""
        if cond is None:
            return torch.full((batch, len(self._vocabulary)), UNSPECIFIED, dtype=torch.int64, device=device)
        if cond.dtype.is_floating_point or cond.shape[0] != batch:
            raise ValueError(f"cond must be ({batch}, {len(self._vocabulary)}) integer labels, got {cond.dtype} {tuple(cond.shape)}")
        return cond

    @jaxtyped(typechecker=beartype)
    def forward(self, points: Points, t: Float[Tensor, " b"], cond: Int[Tensor, "b k"] | None = None) -> Float[Tensor, "b n c"]:
        """The operator's prediction at ``points`` given the labels ``cond``."""
        labels = self._labels(cond, points.values.shape[0], points.values.device)
        return self.operator(points, t, self.embed(labels))

    @jaxtyped(typechecker=beartype)
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Int[Tensor, "b k"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The operator's prediction on a whole grid given the labels ``cond``."""
        labels = self._labels(cond, x.shape[0], x.device)
        return self.operator.forward_dense(x, t, self.embed(labels), chunk_points=chunk_points)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds it (`funcdiff.registry.build`)."""
        return component_dict(self.kind, operator=self.operator, vocabulary=self._vocabulary, z_dim=self.z_dim, dropout=self.dropout)
