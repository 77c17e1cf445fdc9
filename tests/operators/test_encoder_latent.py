"""The diffusion autoencoder's encoder and latent MLP (docs/reference-differences.md §3-4)."""

import pytest
import torch

from funcdiff.domains.grid import GridDomain
from funcdiff.operators import LatentMLP, LatentMLPConfig, SparseEncoder, preset_config
from funcdiff.points import Points


def encoder() -> SparseEncoder:
    torch.manual_seed(0)
    return SparseEncoder(preset_config("tiny", channels=2, resolution=16, z_dim=6)).double().eval()


@pytest.mark.parametrize("shape", [(16, 16), (32, 32), (8, 24)])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 1.0])
def test_encoder_any_resolution_and_density(shape: tuple[int, int], fraction: float) -> None:
    """The encoder maps points of any grid at any density to a finite (b, z) latent."""
    x = torch.randn(3, 2, *shape, dtype=torch.float64)
    z = encoder()(GridDomain(2, 2).subsample(x, fraction))
    assert z.shape == (3, 6) and torch.isfinite(z).all()


def test_encoder_dense_equals_all_points() -> None:
    """``forward_dense`` (chunked or not) equals ``forward`` on every point."""
    enc = encoder()
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    expected = enc(Points.from_dense(x))
    torch.testing.assert_close(enc.forward_dense(x), expected)
    torch.testing.assert_close(enc.forward_dense(x, chunk_points=50), expected)


def test_encoder_needs_latent_size() -> None:
    """An encoder needs z_dim >= 1."""
    with pytest.raises(ValueError, match="z_dim"):
        SparseEncoder(preset_config("tiny", channels=2, resolution=16))


def test_encoder_gradients_reach_every_parameter() -> None:
    """Every encoder parameter receives a gradient."""
    enc = encoder().train()
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    enc(GridDomain(2, 2).subsample(x, 0.3)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_latent_mlp_shapes_skips_and_gradients() -> None:
    """The MLP keeps the latent shape, depends on t, and every parameter (skip inputs included) gets a gradient."""
    torch.manual_seed(0)
    mlp = LatentMLP(LatentMLPConfig(z_dim=5, hidden=16, layers=4))
    z = torch.randn(3, 5)
    out = mlp(z, torch.tensor([0.1, 0.5, 0.9]))
    assert out.shape == (3, 5)
    assert not torch.allclose(out, mlp(z, torch.tensor([0.2, 0.6, 1.0])))
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())
    assert mlp.layers[1].linear.in_features == 16 + 5


def test_latent_mlp_validation() -> None:
    """Too few layers and a wrong latent size raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="layers"):
        LatentMLPConfig(z_dim=4, layers=1)
    with pytest.raises(ValueError, match="z must"):
        LatentMLP(LatentMLPConfig(z_dim=4, hidden=8, layers=2))(torch.randn(2, 3), torch.rand(2))
