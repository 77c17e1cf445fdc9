"""Functions observed at scattered points (docs/math.md §20): the `Scattered` type and its refusals, the operator's
reads by coordinates against independent computations, the scattered loss against an exact denoiser, the
``shapes-points`` data, and training from the command line."""

import math
import subprocess
import sys
from pathlib import Path

import jaxtyping
import numpy as np
import pytest
import torch

from funcdiff.data import ShapePoints, ShapeVolumes, as_scattered, example_shape, is_scattered
from funcdiff.domains import GridDomain
from funcdiff.factory import TrainConfig, build_run
from funcdiff.mollifiers import GaussianMollifier, IdentityMollifier
from funcdiff.operators import operator_preset
from funcdiff.operators.layers.interpolate import cosine_at, knn_to_grid
from funcdiff.points import Points, Scattered
from funcdiff.processes import MollifiedDDPM
from funcdiff.processes.schedules import table_schedule
from funcdiff.sampling import sample, sample_at


def test_scattered_points_refuse_positions_outside_the_domain_duplicates_and_bad_shapes() -> None:
    """Coordinates outside [0, 1]^d (or not finite) and an example with a position twice are refused in one line."""
    values = torch.zeros(1, 3, 1)
    with pytest.raises(ValueError, match=r"must lie in the domain \[0, 1\]\^2: example 0, point 1"):
        Scattered(values, torch.tensor([[[0.1, 0.2], [0.5, 1.2], [0.3, 0.3]]]))
    with pytest.raises(ValueError, match="must lie in the domain"):
        Scattered(values, torch.tensor([[[0.1, 0.2], [0.5, float("nan")], [0.3, 0.3]]]))
    with pytest.raises(ValueError, match="must be distinct: 1 duplicate"):
        Scattered(values, torch.tensor([[[0.1, 0.2], [0.5, 0.5], [0.1, 0.2]]]))
    jaxtyping.config.update("jaxtyping_disable", True)  # as outside the tests: the explicit check answers
    try:
        with pytest.raises(ValueError, match="equal"):
            Scattered(torch.zeros(1, 2, 1), torch.rand(1, 3, 2))
        with pytest.raises(ValueError, match=r"values must be \(b, n, c\) of \(1, 2\) points"):
            Scattered(torch.zeros(1, 2, 1), torch.rand(1, 2, 2)).with_values(torch.zeros(1, 3, 1))
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
    points = Scattered(values, torch.tensor([[[0.0, 1.0], [0.5, 0.5], [0.1, 0.5]]]))  # the closed cube's corners are in
    assert points.ndim == 2 and points.with_values(torch.ones(1, 3, 4)).values.shape == (1, 3, 4)


def test_the_cosine_read_reproduces_a_band_limited_function_anywhere() -> None:
    """docs/math.md §16, §20: a product of cosines below the grid's Nyquist frequency, sampled at the cell centres,
    is read back exactly at arbitrary positions (the closed form, not the code's DCT)."""
    torch.manual_seed(0)
    shape, modes = (6, 5, 7), (2, 4, 3)
    axes = [(torch.arange(n, dtype=torch.float64) + 0.5) / n for n in shape]
    grid = math.prod(torch.cos(math.pi * k * u).view(*(-1 if a == i else 1 for a in range(3)))
                     for i, (k, u) in enumerate(zip(modes, axes)))
    coords = torch.rand(2, 50, 3, dtype=torch.float64)
    expected = math.prod(torch.cos(math.pi * k * coords[..., i]) for i, k in enumerate(modes))
    read = cosine_at(grid.expand(2, 1, *shape), coords)
    torch.testing.assert_close(read[..., 0], expected)


def test_points_reach_the_grid_by_their_nearest_neighbours() -> None:
    """docs/math.md §8, §20: each node gets its k nearest points weighted by inverse squared distance (a brute force in
    NumPy here); a point on a node gives that node its own value."""
    rng = np.random.default_rng(0)
    coords, values = rng.random((2, 40, 2)), rng.standard_normal((2, 40, 3))
    coords[1, 0] = [0.125, 0.375]  # the centre of node (0, 1) of a 4 x 4 grid
    got = knn_to_grid(Scattered(torch.from_numpy(values), torch.from_numpy(coords)), (4, 4), k=3).numpy()
    centres = np.stack(np.meshgrid((np.arange(4) + 0.5) / 4, (np.arange(4) + 0.5) / 4, indexing="ij"), -1).reshape(-1, 2)
    for b in range(2):
        d2 = ((centres[:, None] - coords[b][None]) ** 2).sum(-1)
        near = np.argsort(d2, axis=1)[:, :3]
        w = 1 / np.maximum(np.take_along_axis(d2, near, 1), 1e-20)
        expected = (w[..., None] * values[b][near]).sum(1) / w.sum(1, keepdims=True)
        np.testing.assert_allclose(got[b].reshape(3, -1).T, expected, rtol=1e-10)
    np.testing.assert_allclose(got[1, :, 0, 1], values[1, 0], rtol=1e-9)


def test_the_operator_reads_scattered_points_as_it_reads_a_grid_at_the_same_positions() -> None:
    """docs/math.md §20: the Fourier neural operator at the cell centres of a whole grid, given as scattered points,
    equals its prediction on the grid itself; at random positions it runs and every weight gets a gradient. The
    ∞-Diff operator's sparse convolutions need a lattice and refuse them."""
    torch.manual_seed(0)
    net = operator_preset("fno-tiny", channels=1, resolution=(6, 6, 6), ndim=3).double()
    x, t = torch.randn(2, 1, 6, 6, 6, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    grid = Points.from_dense(x)
    torch.testing.assert_close(net(Scattered(grid.values, grid.coords), t), net(grid, t))
    net(Scattered(torch.randn(2, 30, 1, dtype=torch.float64), torch.rand(2, 30, 3, dtype=torch.float64)), t).square().sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    oversampled = operator_preset("fno-audio", channels=1, resolution=(12,), ndim=1, oversample=2).double()  # position features too
    x = torch.randn(2, 1, 12, dtype=torch.float64)
    grid = Points.from_dense(x)
    torch.testing.assert_close(oversampled(Scattered(grid.values, grid.coords), t), oversampled(grid, t))
    jaxtyping.config.update("jaxtyping_disable", True)  # as outside the tests: the explicit check answers
    try:
        with pytest.raises(TypeError, match="need points on a grid"):
            operator_preset("tiny", channels=1, resolution=6, ndim=3)(Scattered(grid.values, torch.rand(2, 12, 3, dtype=torch.float64)), t)
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


ALPHA_BAR = [1.0 - 0.0099 * t for t in range(101)]
"""A hand-made schedule: ``abar_t = 1 - 0.0099 t`` for ``t = 0..100``."""


def _ddpm(mollifier: IdentityMollifier | GaussianMollifier, prediction: str) -> MollifiedDDPM:
    return MollifiedDDPM(GridDomain(ndim=2, channels=1), table_schedule(ALPHA_BAR), mollifier, prediction)


@pytest.mark.parametrize("prediction", ["x0", "mollified_eps"])
def test_the_scattered_loss_vanishes_for_the_exact_denoiser(prediction: str) -> None:
    """docs/math.md §20: with a model that knows the clean function and inverts ``y = sqrt(abar) x0 + sqrt(1 - abar)
    eps`` at the points it is given (from the hand-made table, not the process's code), the loss is zero; a model
    that is wrong by 0.1 at every point scores 0.01."""
    def clean(coords: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * coords[..., :1]) * torch.cos(2 * coords[..., 1:])

    def exact(points: Scattered, time: torch.Tensor, cond: None, shift: float = 0.0) -> torch.Tensor:
        abar = torch.tensor(ALPHA_BAR, dtype=torch.float64)[(time * 100).round().long()].view(-1, 1, 1)
        x0 = clean(points.coords)
        eps = (points.values - abar.sqrt() * x0) / (1 - abar).sqrt()
        return (x0 if prediction == "x0" else eps) + shift

    process = _ddpm(IdentityMollifier(), prediction)
    data = Scattered(clean(coords := torch.rand(3, 64, 2, dtype=torch.float64)), coords)
    generator = torch.Generator().manual_seed(0)
    assert float(process.loss(exact, data, points=0.5, generator=generator)) < 1e-20
    wrong = process.loss(lambda p, t, c: exact(p, t, c, 0.1), data, points=16, generator=generator)
    assert float(wrong) == pytest.approx(0.01)


def test_the_scattered_loss_refuses_a_grid_mollifier_and_too_many_points() -> None:
    """A Gaussian mollifier needs a grid; more points than observations cannot be drawn."""
    data = Scattered(torch.zeros(1, 8, 1), torch.rand(1, 8, 2))
    with pytest.raises(ValueError, match="identity mollifier"):
        _ddpm(GaussianMollifier(0.05), "x0").loss(lambda p, t, c: p.values, data, points=4, generator=None)
    with pytest.raises(ValueError, match="points=9"):
        _ddpm(IdentityMollifier(), "x0").loss(lambda p, t, c: p.values, data, points=9, generator=None)


def test_shapes_points_are_the_shapes_exact_occupancy_at_fixed_random_positions() -> None:
    """Each example's positions are fixed and uniform in the cube, its values +-1, and its share of inside points
    matches the occupied share of the same shape's 64^3 volume (4,096 points: within 0.05, about 6 standard errors)."""
    data = ShapePoints(resolution=16, limit=4, observations=4096)
    assert is_scattered(data) and example_shape(data) == (1, 16, 16, 16) and len(data) == 4
    again = ShapePoints(resolution=8, limit=4, observations=4096)
    volumes = ShapeVolumes(resolution=64, limit=4)
    for i in range(4):
        item = data[i]
        assert item["values"].shape == (4096, 1) and item["coords"].shape == (4096, 3)
        assert torch.equal(item["coords"], again[i]["coords"]) and torch.equal(item["values"], again[i]["values"])
        assert set(item["values"].unique().tolist()) <= {-1.0, 1.0} and 0 <= float(item["coords"].min()) < float(item["coords"].max()) <= 1
        inside = float((item["values"] > 0).double().mean())
        assert inside == pytest.approx(float((volumes[i] + 1).mean() / 2), abs=0.05)
    batch = as_scattered({"values": torch.stack([data[0]["values"], data[1]["values"]]),
                          "coords": torch.stack([data[0]["coords"], data[1]["coords"]])})
    assert batch.values.shape == (2, 4096, 1)
    with pytest.raises(ValueError, match="observations"):
        ShapePoints(resolution=16, observations=0)


@pytest.mark.parametrize("settings", [
    dict(preset="tiny"), dict(operator="fno", preset="tiny", sigma_pixels=1.0), dict(operator="fno", preset="tiny", process="flow"),
])
def test_scattered_data_refuse_what_needs_a_grid(settings: dict) -> None:
    """The ∞-Diff operator, a Gaussian mollifier and the other process families are refused before any training."""
    config = TrainConfig(data="shapes-points", resolution=8, data_limit=4, **{"sigma_pixels": 0.0, **settings})
    with pytest.raises(ValueError, match="scattered points"):
        build_run(config)


def test_training_on_scattered_points_writes_a_model_that_samples_on_grids(tmp_path: Path) -> None:
    """`funcdiff train --data shapes-points` end to end: a few steps, a checkpoint, samples on the reference grid."""
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "funcdiff", "train", "--data", "shapes-points", "--resolution", "8", "--preset",
                             "fno-tiny", "--sigma-pixels", "0", "--points", "128", "--steps", "3", "--batch-size", "2", "--data-limit",
                             "4", "--sample-count", "2", "--sample-steps", "2", "--out-dir", str(out)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "checkpoint").exists() and list((out / "samples").glob("step0000003_8px*"))


def test_sampling_at_the_cell_centres_of_a_grid_is_sampling_on_the_grid() -> None:
    """docs/math.md §20: from the same start, deterministic DDIM at the cell centres given as scattered points equals
    DDIM on the grid; at random positions every sampler of the DDPM runs, and a grid mollifier is refused."""
    torch.manual_seed(0)
    net = operator_preset("fno-tiny", channels=1, resolution=(4, 4, 4), ndim=3).double().eval()
    process = MollifiedDDPM(GridDomain(ndim=3, channels=1), table_schedule(ALPHA_BAR), IdentityMollifier(), "x0")
    start = torch.randn(2, 1, 4, 4, 4, dtype=torch.float64)
    on_grid = sample(net, process, 4, batch=2, steps=5, sampler="ddim", start=start)
    centres = Points.from_dense(start).coords
    at_points = sample_at(net, process, centres, steps=5, sampler="ddim", start=start.flatten(2))
    torch.testing.assert_close(at_points, on_grid.flatten(2).transpose(1, 2))
    anywhere = torch.rand(2, 20, 3, dtype=torch.float64)
    for name in ("ddpm", "dpmpp"):
        out = sample_at(net, process, anywhere, steps=4, sampler=name, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 20, 1) and bool(out.isfinite().all()) and float(out.abs().max()) <= 1
    mollified = MollifiedDDPM(GridDomain(ndim=3, channels=1), table_schedule(ALPHA_BAR), GaussianMollifier(0.1), "x0")
    with pytest.raises(ValueError, match="identity mollifier"):
        sample_at(net, mollified, anywhere, steps=2)
