"""Contracts of Points and GridDomain that mutation testing showed untested: every refusal's message, dtypes and
devices that follow the inputs, reproducible draws, the two subsampling schemes, the config round trip."""

import math

import pytest
import torch

from funcdiff import GaussianMollifier, GridDomain, Points
from funcdiff.domains import box_average, nested_white_noise, resolve_count, white_noise
from funcdiff.points import flat_index, grid_index, unflatten_index
from funcdiff.registry import build
from tests.strategies import assert_on_the_inputs_device, ours_or_checkers


def test_points_messages_name_the_shapes() -> None:
    """Each refusal of the Points constructor and of gather names what was wrong and the shapes involved."""
    index = torch.zeros(2, 3, 2, dtype=torch.long)
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"values must be \(b, n, c\) and index \(b, n, d\); got \(2, 3\) and \(2, 3, 2\)")):
        Points(torch.zeros(2, 3), index, (4, 4))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"got \(2, 3, 1\) and \(2, 3\)$")):
        Points(torch.zeros(2, 3, 1), index[..., 0], (4, 4))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"values \(2, 4, 1\) and index \(2, 3, 2\) disagree on \(b, n\)")):
        Points(torch.zeros(2, 4, 1), index, (4, 4))
    with pytest.raises(ValueError, match=r"index has d=2 but shape \(4, 4, 4\) has 3 axes"):
        Points(torch.zeros(2, 3, 1), index, (4, 4, 4))
    with pytest.raises(ValueError, match=r"index has d=2 but x has 1 spatial axes"):
        Points.gather(torch.zeros(2, 1, 4), index)
    with pytest.raises(ValueError, match=r"index along axis 0 must lie in \[0, 4\), got values in \[7, 7\]"):
        Points(torch.zeros(1, 1, 1), torch.tensor([[[7]]]), (4,))  # a single index is checked too
    with pytest.raises(ValueError, match=r"shape must be a tuple of one or more positive ints, got \(True, 4\)"):
        Points(torch.zeros(1, 1, 1), torch.zeros(1, 1, 2, dtype=torch.long), (True, 4))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
def test_points_coordinates_and_masks_keep_their_dtypes(dtype: torch.dtype) -> None:
    """Coordinates are cell centres (i + 1/2) / N in the values' dtype; the presence mask is boolean."""
    index = torch.tensor([[[0, 4], [2, 1]]])
    p = Points(torch.ones(1, 2, 3, dtype=dtype), index, (3, 5))
    expected = torch.tensor([[[0.5 / 3, 4.5 / 5], [2.5 / 3, 1.5 / 5]]], dtype=torch.float64)
    assert p.coords.dtype == dtype
    torch.testing.assert_close(p.coords.double(), expected, rtol=0, atol=1e-2 if dtype == torch.bfloat16 else 1e-7)
    dense, mask = p.to_dense()
    assert mask.dtype == torch.bool and dense.dtype == dtype and int(mask.sum()) == 2 and bool(mask[0, 0, 2, 1])


def test_lattice_index_helpers_are_row_major_inverses() -> None:
    """flat_index and unflatten_index are inverse row-major maps; grid_index lists every cell in row-major order."""
    shape = (3, 4, 5)
    index = grid_index(2, shape)
    assert index.shape == (2, 60, 3) and index[0, 23].tolist() == [1, 0, 3]
    assert torch.equal(flat_index(index, shape), torch.arange(60).expand(2, -1))
    assert torch.equal(unflatten_index(flat_index(index, shape), shape), index)


def test_tensors_follow_the_inputs_device() -> None:
    """With another default device set (meta), everything is still made on the inputs' device (here the CPU) and
    equals the result made without it: no tensor is created on the default device."""
    domain, mollifier = GridDomain(2, 1), GaussianMollifier(0.1)
    x = torch.randn(2, 1, 4, 6, dtype=torch.float64)

    def results() -> list[torch.Tensor]:
        p = domain.subsample(x, 5, generator=torch.Generator().manual_seed(0))
        dense, mask = p.to_dense()
        strat = GridDomain(2, 1, scheme="stratified").draw_index(2, (4, 6), 5, generator=torch.Generator().manual_seed(0), device="cpu")
        return [
            p.values, p.coords, dense, mask, Points.from_dense(x).coords, strat, box_average(x, 2),
            domain.white_noise(2, (1, 4, 6), (2, 3), generator=torch.Generator().manual_seed(1), device="cpu"),
            nested_white_noise(2, (1, 2, 3), (2, 3), (4, 6), generator=torch.Generator().manual_seed(1), device="cpu"),
            mollifier.mollify(x), mollifier.unmollify(x, 0.1), mollifier.spectrum((4, 6), device="cpu"),
        ]

    assert_on_the_inputs_device(results)


def test_draws_follow_the_generator() -> None:
    """The same seed gives the same points (for both schemes and every batch element independently), another seed other
    points, and the global RNG is left alone."""
    x = torch.randn(3, 1, 8, 8)
    for scheme in ("uniform", "stratified"):
        domain = GridDomain(2, 1, scheme=scheme)
        state = torch.random.get_rng_state()
        a, b, c = (domain.subsample(x, 10, generator=torch.Generator().manual_seed(s)).index for s in (1, 1, 2))
        assert torch.equal(torch.random.get_rng_state(), state)
        assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a[0], a[1])
        direct = domain.draw_index(3, (8, 8), 10, generator=torch.Generator().manual_seed(1))
        assert torch.equal(direct, a)


def test_uniform_and_stratified_draws_differ_as_documented() -> None:
    """Uniform draws may put two points in one run of total / n row-major cells; stratified draws never do, and over
    many draws reach every cell of every run, the first and the last included."""
    gen = torch.Generator().manual_seed(0)
    uniform = GridDomain(2, 1).draw_index(200, (8, 8), 8, generator=gen)
    stratified = GridDomain(2, 1, scheme="stratified").draw_index(200, (8, 8), 8, generator=gen)
    runs = lambda index: torch.div(flat_index(index, (8, 8)), 8, rounding_mode="floor")  # noqa: E731
    assert bool((runs(stratified) == torch.arange(8)).all())
    assert not bool((runs(uniform) == torch.arange(8)).all())
    assert torch.unique(flat_index(stratified, (8, 8))).numel() == 64


def test_domain_config_round_trip_keeps_every_setting() -> None:
    """A domain with non-default settings rebuilds equal from its JSON config."""
    domain = GridDomain(3, 2, value_range=(-0.5, 2.0), scheme="stratified")
    assert domain.to_dict() == {"kind": "grid", "ndim": 3, "channels": 2, "value_range": [-0.5, 2.0], "scheme": "stratified"}
    rebuilt = build(domain.to_dict())
    assert (rebuilt.ndim, rebuilt.channels, rebuilt.value_range, rebuilt.scheme) == (3, 2, (-0.5, 2.0), "stratified")
    assert repr(rebuilt) == "GridDomain(ndim=3, channels=2, value_range=(-0.5, 2.0), scheme='stratified')"


def test_grid_shape_and_counts() -> None:
    """An int resolution repeats over the axes, a tuple is taken as it is; counts and fractions resolve as documented."""
    domain = GridDomain(2, 1)
    assert domain.grid_shape(5) == (5, 5) and domain.grid_shape((3, 7)) == (3, 7)
    for bad in ((0, 4), (4,), (4, 4, 4), (2.0, 4)):
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"resolution must be a positive int or 2 positive ints")):
            domain.grid_shape(bad)  # the type checker samples one entry of a tuple, so (2.0, 4) is its catch or ours
    assert resolve_count(1.0, 48) == 48 and resolve_count(0.001, 48) == 1 and resolve_count(0.5, 47) == 24 and resolve_count(48, 48) == 48
    for bad in (True, "3", None):
        with pytest.raises(TypeError, match=ours_or_checkers(rf"points must be an int count or a float fraction, got {type(bad).__name__}")):
            resolve_count(bad, 48)
    with pytest.raises(ValueError, match=r"points=49 must lie in \[1, 48\] \(the number of grid points\)"):
        resolve_count(49, 48)


def test_domain_messages_name_the_argument() -> None:
    """Constructor, noise and averaging refusals name their argument and value."""
    with pytest.raises(ValueError, match="ndim must be a positive int, got 0"):
        GridDomain(0, 1)
    with pytest.raises(ValueError, match="channels must be a positive int, got -1"):
        GridDomain(1, -1)
    with pytest.raises(ValueError, match=r"value_range must be \(low, high\) with low < high, got \(1.0, 1.0\)"):
        GridDomain(1, 1, value_range=(1.0, 1.0))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"scheme must be one of \('uniform', 'stratified'\), got 'grid'")):
        GridDomain(1, 1, scheme="grid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(1, 4\) is \(channels, \*spatial\) and must have 2 spatial axes like reference_shape"):
        white_noise(1, (1, 4), (4, 4))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers("nest_shape must be a tuple of one or more positive ints, got 16")):
        nested_white_noise(1, (1, 8), (8,), 16)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="factor must be a positive int, got 0"):
        box_average(torch.zeros(1, 1, 4), 0)
    with pytest.raises(TypeError, match=ours_or_checkers("x must be a floating tensor, got torch.int64")):
        box_average(torch.zeros(1, 1, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"factor 3 must divide every spatial size \(4, 6\)"):
        box_average(torch.zeros(1, 1, 4, 6), 3)


def test_box_average_on_every_rank() -> None:
    """Averaging blocks works for 1-D, 2-D and 3-D fields and is the identity for a factor of 1."""
    for shape in ((4,), (4, 6), (2, 4, 2)):
        x = torch.arange(math.prod(shape), dtype=torch.float64).view(1, 1, *shape)
        out = box_average(x, 2)
        assert out.shape == (1, 1, *(s // 2 for s in shape))
        torch.testing.assert_close(out.sum() * 2 ** len(shape), x.sum())
        assert box_average(x, 1) is x


def test_noise_dtype_and_scale() -> None:
    """White noise comes in the asked dtype with per-point variance prod(N / N_ref); nested noise keeps the dtype."""
    noise = white_noise(4000, (1, 8), (2,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert noise.dtype == torch.float64 and abs(float(noise.var()) / 4 - 1) < 0.03
    nested = nested_white_noise(2, (1, 4), (4,), (8,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert nested.dtype == torch.float64 and nested.shape == (2, 1, 4)
    half = GridDomain(1, 1).white_noise(2, (1, 4), (4,), dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_with_values_keeps_the_coordinates() -> None:
    """with_values carries other values (any channel count) at the same cells of the same grid."""
    p = GridDomain(2, 1).subsample(torch.randn(2, 1, 4, 4), 5, generator=torch.Generator().manual_seed(0))
    q = p.with_values(torch.ones(2, 5, 3))
    assert torch.equal(q.index, p.index) and q.shape == p.shape == (4, 4) and q.values.shape == (2, 5, 3)
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"disagree on \(b, n\)")):
        p.with_values(torch.ones(2, 4, 1))
