"""The diffusion autoencoder: a denoiser conditioned on ``z`` and the encoder that makes ``z`` (docs/math.md §9)."""

from typing import Any, final

from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.conditioning import EncodedConditioning
from funcdiff.operators.base import LatentEncoder, NeuralOperator
from funcdiff.points import Points
from funcdiff.registry import component_dict, register


@register("diffusion_autoencoder")
@final
class DiffusionAutoencoder(nn.Module, NeuralOperator, EncodedConditioning):
    """A conditional `NeuralOperator` (the decoder) together with the `LatentEncoder` that gives its condition.

    As a `NeuralOperator` it is the decoder: ``forward(points, t, cond)`` with ``cond = z``. Training passes the clean
    data instead, as ``source`` (the data at their own points, drawn independently of the noisy ones), and the latent
    is encoded in the same call, so one backward pass trains both networks (and one DDP forward sees both). Both are
    saved in one checkpoint (``decoder.*`` and ``encoder.*`` weights) and rebuilt from ``to_dict``.

    Args:
        decoder: the denoiser; its ``cond`` must be a ``(b, z)`` latent.
        encoder: maps the data at any points to that latent.
    """

    def __init__(self, decoder: NeuralOperator, encoder: LatentEncoder) -> None:
        super().__init__()
        for name, part, protocol in (("decoder", decoder, NeuralOperator), ("encoder", encoder, LatentEncoder)):
            if not isinstance(part, nn.Module) or not isinstance(part, protocol):
                raise TypeError(f"{name} must be a torch.nn.Module implementing {protocol.__name__}, got {type(part).__name__}")
        self.decoder = decoder
        self.encoder = encoder

    @property
    def reference_shape(self) -> tuple[int, ...]:
        """The decoder's training grid."""
        return tuple(self.decoder.reference_shape)

    @jaxtyped(typechecker=beartype)
    def forward(
        self, points: Points, t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *, source: Points | None = None
    ) -> Float[Tensor, "b n c"]:
        """The decoder's prediction at ``points`` given ``cond``, or given the latent of ``source`` (exactly one)."""
        if (cond is None) == (source is None):
            raise ValueError("pass exactly one of cond (a latent) and source (the clean data at some points to encode)")
        output = self.decoder(points, t, self.encoder(source) if source is not None else cond)
        return self._checked(output, tuple(points.values.shape), "on points")

    @jaxtyped(typechecker=beartype)
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The decoder's prediction on a whole grid given the latent ``cond``."""
        if cond is None:
            raise ValueError("a diffusion autoencoder's decoder needs cond, the latent z (from encode or a latent model)")
        return self._checked(self.decoder.forward_dense(x, t, cond, chunk_points=chunk_points), tuple(x.shape), "on the grid")

    def _checked(self, output: object, expected: tuple[int, ...], where: str) -> Tensor:
        """The decoder's ``output``; ``ValueError`` naming the decoder unless it is a tensor of the ``expected`` shape
        (the shape of the data it was given, ``where``)."""
        if not isinstance(output, Tensor) or tuple(output.shape) != expected:
            got = f"shape {tuple(output.shape)}" if isinstance(output, Tensor) else f"a {type(output).__name__}"
            raise ValueError(f"the decoder {type(self.decoder).__name__} returned {got} {where}, expected {expected}")
        return output

    @jaxtyped(typechecker=beartype)
    def encode(self, x: Float[Tensor, "b c *spatial"], *, chunk_points: int | None = None) -> Float[Tensor, "b z"]:
        """The latents of whole fields on any grid."""
        return self.encoder.forward_dense(x, chunk_points=chunk_points)

    @jaxtyped(typechecker=beartype)
    def encode_points(self, points: Points) -> Float[Tensor, "b z"]:
        """The latents of the data seen at ``points`` only (the encoder reads any subset of any grid)."""
        return self.encoder(points)

    def training_inputs(self, source: Points) -> dict[str, Any]:
        """``{"source": source}``: `forward` encodes the clean data and decodes in one call."""
        return {"source": source}

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The decoder's and the encoder's parameters, clipped separately as the paper does."""
        return [list(self.decoder.parameters()), list(self.encoder.parameters())]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds both networks (`funcdiff.registry.build`)."""
        return component_dict(self.kind, decoder=self.decoder, encoder=self.encoder)
