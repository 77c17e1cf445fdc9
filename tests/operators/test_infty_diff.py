"""The ∞-Diff operator (docs/reference-differences.md §2-3): dense/sparse agreement, chunking, any resolution, dropout, gradients."""

import copy

import jaxtyping
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.domains.grid import GridDomain
from funcdiff.mollifiers import GaussianMollifier
from funcdiff.operators import InftyDiffOperator, NeuralOperator, SparseEncoder, available_backends, operator_preset, preset_config
from funcdiff.operators.layers.unet import Attention
from funcdiff.points import Points
from funcdiff.processes import MollifiedDDPM, cosine_schedule
from funcdiff.sampling import sample


def tiny(z_dim: int = 0, backend: str = "auto") -> InftyDiffOperator:
    torch.manual_seed(0)
    return InftyDiffOperator(preset_config("tiny", channels=2, resolution=16, z_dim=z_dim), backend=backend).double().eval()


@pytest.mark.parametrize("backend", available_backends("cpu"))
@pytest.mark.parametrize("shape", [(16, 16), (12, 20)])
def test_forward_on_all_points_equals_forward_dense(backend: str, shape: tuple[int, int]) -> None:
    """``forward`` on every point equals ``forward_dense`` (the `NeuralOperator` protocol), also off the reference grid."""
    op = tiny(backend=backend)
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    t = torch.tensor([0.1, 0.7], dtype=torch.float64)
    dense = op.forward_dense(x, t)
    torch.testing.assert_close(op(Points.from_dense(x), t), dense.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("chunk", [5, 17, 64, 1000])
def test_chunked_forward_dense_equals_unchunked(chunk: int) -> None:
    """Chunking the points of ``forward_dense`` changes memory, not the result."""
    op = tiny(z_dim=3)
    x = torch.randn(2, 2, 16, 8, dtype=torch.float64)
    t, z = torch.rand(2, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(op.forward_dense(x, t, z, chunk_points=chunk), op.forward_dense(x, t, z))


@settings(deadline=None, max_examples=4)
@given(seed=st.integers(0, 99), fraction=st.floats(0.05, 1.0))
def test_permuting_points_permutes_prediction(seed: int, fraction: float) -> None:
    """The whole operator is permutation-equivariant in its points (docs/math.md §8)."""
    op = tiny()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, 16, 16, generator=gen, dtype=torch.float64)
    points = GridDomain(2, 2).subsample(x, fraction, generator=gen)
    perm = torch.randperm(points.index.shape[1], generator=gen)
    t = torch.rand(2, generator=gen, dtype=torch.float64)
    out = op(Points(points.values[:, perm], points.index[:, perm], points.shape), t)
    torch.testing.assert_close(out, op(points, t)[:, perm])


@pytest.mark.parametrize("resolution", [8, 16, 32, 48])
def test_sparse_path_runs_at_any_resolution(resolution: int) -> None:
    """The sparse path is not tied to the training lattice: kernels are resampled for the points' grid."""
    op = tiny()
    x = torch.randn(2, 2, resolution, resolution, dtype=torch.float64)
    points = GridDomain(2, 2).subsample(x, 0.25)
    out = op(points, torch.rand(2, dtype=torch.float64))
    assert out.shape == points.values.shape and torch.isfinite(out).all()


def test_eval_disables_dropout() -> None:
    """Sampling twice in eval mode gives the same output; in train mode dropout makes them differ."""
    op = tiny()
    x, t = torch.randn(2, 2, 16, 16, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    torch.testing.assert_close(op.forward_dense(x, t), op.forward_dense(x, t))
    op.train()
    assert not torch.equal(op.forward_dense(x, t), op.forward_dense(x, t))


@pytest.mark.parametrize("z_dim", [0, 4])
def test_gradients_reach_every_parameter(z_dim: int) -> None:
    """One backward pass gives every parameter a non-zero gradient (nothing is disconnected or zero-initialised)."""
    op = tiny(z_dim=z_dim).train()
    x = torch.randn(3, 2, 16, 16, dtype=torch.float64)
    points = GridDomain(2, 2).subsample(x, 0.3)
    cond = torch.randn(3, z_dim, dtype=torch.float64) if z_dim else None
    op(points, torch.rand(3, dtype=torch.float64), cond).square().mean().backward()
    missing = [name for name, p in op.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_protocol_and_state_dict_has_only_parameters() -> None:
    """The operator is a NeuralOperator; derived tensors are non-persistent, so checkpoints hold parameters only."""
    op = tiny()
    assert isinstance(op, NeuralOperator)
    assert set(op.state_dict()) == {name for name, _ in op.named_parameters()}


def test_config_rebuilds_same_architecture() -> None:
    """``InftyDiffOperator(config)`` from the JSON round trip accepts the original's state dict."""
    op = operator_preset("tiny", channels=3, resolution=16, z_dim=2)
    again = InftyDiffOperator(type(op.config).from_dict(op.config.to_dict()))
    again.load_state_dict(op.state_dict())
    assert again.config == op.config


def test_validation_names_arguments() -> None:
    """Wrong channels, missing or unexpected cond and bad chunk sizes raise ValueError naming the argument."""
    op, cond_op = tiny(), tiny(z_dim=3)
    x, t = torch.randn(2, 2, 16, 16, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="channels"):
        op.forward_dense(torch.randn(2, 3, 16, 16, dtype=torch.float64), t)
    with pytest.raises(ValueError, match="cond"):
        op.forward_dense(x, t, torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="cond"):
        cond_op.forward_dense(x, t)
    with pytest.raises(ValueError, match="chunk_points"):
        op.forward_dense(x, t, chunk_points=0)


def test_jaxtyping_catches_batch_mismatch() -> None:
    """A time vector whose length disagrees with the batch is caught at the public boundary."""
    op = tiny()
    with pytest.raises(jaxtyping.TypeCheckError):
        op.forward_dense(torch.randn(2, 2, 16, 16, dtype=torch.float64), torch.rand(3, dtype=torch.float64))


@pytest.mark.parametrize(("ndim", "resolution"), [(1, 32), (3, 8)])
def test_operator_in_one_and_three_dimensions(ndim: int, resolution: int) -> None:
    """The whole operator runs on 1-d signals and 3-d volumes, sparse and dense paths agreeing (the `NeuralOperator` protocol)."""
    torch.manual_seed(0)
    op = InftyDiffOperator(preset_config("tiny", channels=2, resolution=resolution, ndim=ndim)).double().eval()
    x = torch.randn(2, 2, *(resolution,) * ndim, dtype=torch.float64)
    t = torch.rand(2, dtype=torch.float64)
    dense = op.forward_dense(x, t, chunk_points=37)
    torch.testing.assert_close(op(Points.from_dense(x), t), dense.flatten(2).transpose(1, 2))
    points = GridDomain(ndim, 2).subsample(x, 0.3)
    assert op(points, t).shape == points.values.shape


@pytest.mark.parametrize("backend", available_backends("cpu"))
def test_bf16_autocast_training_step(backend: str) -> None:
    """Under CPU bf16 autocast every backend runs forward and backward in bf16 (sparse blocks, U-Net, interpolation),
    and the prediction and gradient agree with float32 within bf16's precision."""
    torch.manual_seed(0)
    op = InftyDiffOperator(preset_config("tiny", channels=2, resolution=16), backend=backend).eval()
    points = GridDomain(2, 2).subsample(torch.randn(2, 2, 16, 16), 0.3)
    t = torch.rand(2)
    runs = []
    for bf16 in (False, True):
        op.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = op(points, t)
        out.float().square().mean().backward()
        runs.append((out.detach(), torch.cat([p.grad.flatten() for p in op.parameters()])))
    (out32, grad32), (out16, grad16) = runs
    assert out16.dtype == torch.bfloat16 and bool(torch.isfinite(grad16).all())
    assert float((out16.float() - out32).norm() / out32.norm()) < 0.03
    assert float(torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)) > 0.99


@pytest.mark.parametrize("preset", ["tiny", "cpu-small"])
def test_output_does_not_depend_on_requires_grad(preset: str) -> None:
    """The model and a copy with frozen weights (the trainer's EMA, a reloaded model) give bit-identical outputs
    without autograd: dense, chunked, on every point and on a subset. A Linear given a non-contiguous (b, n, c)
    view took another matmul path (folded or batched, another summation order) when its weight required grad."""
    torch.manual_seed(0)
    model = operator_preset(preset, channels=1, resolution=32).eval()
    frozen = copy.deepcopy(model).requires_grad_(False)
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([0.3, 0.8])
    flat = torch.stack([torch.randperm(32 * 32)[:300] for _ in range(2)])
    subset = Points.gather(x, torch.stack([flat // 32, flat % 32], dim=-1))
    runs = {
        "dense": lambda m: m.forward_dense(x, t),
        "dense in chunks": lambda m: m.forward_dense(x, t, chunk_points=300),
        "dense at 48 px": lambda m: m.forward_dense(torch.nn.functional.interpolate(x, size=48), t),
        "all points": lambda m: m(Points.from_dense(x), t),
        "a subset": lambda m: m(subset, t),
    }
    with torch.no_grad():
        for name, run in runs.items():
            assert torch.equal(run(model), run(frozen)), name


def test_sampling_does_not_depend_on_requires_grad() -> None:
    """A few sampler steps draw the same picture, bit for bit, from the model and from its frozen copy."""
    torch.manual_seed(0)
    model = operator_preset("tiny", channels=1, resolution=32)
    frozen = copy.deepcopy(model).requires_grad_(False)
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(100), GaussianMollifier(1 / 32))
    pictures = [sample(m, process, 32, batch=2, steps=4, generator=torch.Generator().manual_seed(1)) for m in (model, frozen)]
    assert torch.equal(*pictures)


@pytest.mark.parametrize("part", ["attention", "encoder"])
def test_attention_and_encoder_do_not_depend_on_requires_grad(part: str) -> None:
    """The same for the U-Net's attention and the encoder's latent head, which read transposed grids."""
    torch.manual_seed(0)
    if part == "attention":
        module, x, method = Attention(64), torch.randn(3, 64, 3), "forward"
    else:
        module, x, method = SparseEncoder(preset_config("tiny", channels=1, resolution=(64,), z_dim=8)).eval(), torch.randn(3, 1, 64), "forward_dense"
    frozen = copy.deepcopy(module).requires_grad_(False)
    with torch.no_grad():
        assert torch.equal(getattr(module, method)(x), getattr(frozen, method)(x))
