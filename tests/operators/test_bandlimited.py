"""Band-limited resolution changes (docs/math.md §16) against closed forms: the sinc-resampled kernel keeps the taps and
stops their images, the DCT resize and read give a cosine back exactly, the two read paths agree, and a trained 1-D
model sampled at twice its rate has no image of its band above the training Nyquist frequency where the linear one has."""

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.operators import OperatorConfig, operator_preset, preset_config
from funcdiff.operators.layers.interpolate import dct_reader, dct_resize
from funcdiff.operators.layers.kernel_resampling import resample_kernel, sinc_matrix
from funcdiff.points import grid_index


def cosine_grid(shape: tuple[int, ...], modes: tuple[int, ...]) -> torch.Tensor:
    """``prod_a cos(pi k_a u_a)`` at the cell centres of ``shape``, ``(1, 1, *shape)`` in float64."""
    field = torch.ones((), dtype=torch.float64)
    for axis, (n, k) in enumerate(zip(shape, modes)):
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        view = [1] * len(shape)
        view[axis] = n
        field = field * torch.cos(math.pi * k * u).view(view)
    return field.view(1, 1, *shape)


def test_sinc_matrix_keeps_the_old_taps_at_whole_positions() -> None:
    """At 2k - 1 taps every second new tap sits on an old one, where the sinc interpolant is that tap."""
    m = sinc_matrix(7, 13, dtype=torch.float64, device=torch.device("cpu"))
    torch.testing.assert_close(m[::2], torch.eye(7, dtype=torch.float64))


def _energy_above(taps: torch.Tensor, cut: float) -> float:
    """The share of a kernel's DTFT power (zero-padded FFT) above ``cut`` cycles per tap."""
    power = torch.fft.rfft(taps, n=4096).abs().square()
    freq = torch.fft.rfftfreq(4096, dtype=torch.float64)
    return float(power[..., freq > cut].sum() / power.sum())


@pytest.mark.parametrize("factor", [2, 4])
def test_sinc_resampled_kernels_stop_the_images_that_linear_ones_keep(factor: int) -> None:
    """Smooth zero-mean kernels (random taps under a Hann taper, as trained kernels end near zero) resampled to a
    ``factor`` times finer grid: above the reference Nyquist frequency (1 / (2 factor) cycles per new tap) the sinc
    resampling keeps under 3 % of the power (measured 1.5 % at 2x: the interpolant's tails beyond the support are cut),
    the linear one several times more (its mirrored band; measured 9.4 % at 2x)."""
    g = torch.Generator().manual_seed(0)
    taper = torch.hann_window(9, periodic=False, dtype=torch.float64)
    weight = torch.randn(64, 9, generator=g, dtype=torch.float64) * taper
    weight = weight - weight.mean(1, keepdim=True) * taper / taper.mean()
    new = 8 * factor + 1
    sinc = _energy_above(resample_kernel(weight, (new,), "bandlimited"), 0.5 / factor)
    linear = _energy_above(resample_kernel(weight, (new,), "linear"), 0.5 / factor)
    assert sinc < 0.03 and linear > 3 * sinc, (sinc, linear)


@settings(deadline=None, max_examples=20)
@given(ndim=st.integers(1, 3), data=st.data())
def test_dct_resize_gives_a_cosine_back_on_any_grid(ndim: int, data: st.DataObject) -> None:
    """A cosine mode ``k < min(n, m)`` per axis on ``n`` cells, resized to ``m``, is that cosine on ``m`` cells; a mode
    the coarser grid cannot hold is removed (the ideal low-pass)."""
    shape = tuple(data.draw(st.integers(2, 12)) for _ in range(ndim))
    target = tuple(data.draw(st.integers(2, 24)) for _ in range(ndim))
    modes = tuple(data.draw(st.integers(0, min(n, m) - 1)) for n, m in zip(shape, target))
    torch.testing.assert_close(dct_resize(cosine_grid(shape, modes), target), cosine_grid(target, modes))
    too_fine = tuple(n - 1 for n in shape)
    coarse = tuple(max(1, min(m, n - 1)) for m, n in zip(target, shape))
    if any(k >= c for k, c in zip(too_fine, coarse)):
        assert dct_resize(cosine_grid(shape, too_fine), coarse).abs().max() < 1e-12


@pytest.mark.parametrize(("grid", "shape"), [((50,), (200,)), ((16, 12), (64, 48)), ((16, 12), (8, 30)), ((6, 4, 8), (12, 8, 16))])
def test_the_per_point_and_whole_grid_reads_agree(grid: tuple[int, ...], shape: tuple[int, ...]) -> None:
    """Few points are read per point, many by resizing the whole grid, or (bounded, for chunks of a whole grid) the rows
    they lie on: the same values, equal to `dct_resize` there."""
    g = torch.randn(2, 3, *grid, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    index = grid_index(2, shape)[:, torch.randperm(math.prod(shape), generator=torch.Generator().manual_seed(2))[:20]]
    few, many = dct_reader(g, 20, shape)(index), dct_reader(g, 10**9, shape)(index)
    torch.testing.assert_close(few, many)
    rows = grid_index(2, shape)[:, 5: 5 + math.prod(shape[1:]) + 3]  # a row-major chunk: parts of two rows
    torch.testing.assert_close(dct_reader(g, 10**9, shape, bounded=True)(rows), dct_reader(g, 10**9, shape)(rows))
    dense = dct_resize(g, shape).flatten(2).transpose(1, 2)
    flat = sum(index[..., a] * math.prod(shape[a + 1:]) for a in range(len(shape)))
    torch.testing.assert_close(few, dense.gather(1, flat.unsqueeze(-1).expand(-1, -1, 3)))


def test_configs_saved_before_resampling_existed_stay_linear_and_bad_names_are_refused() -> None:
    """A config without the field is the first releases' (linear); a new preset is band-limited; an unknown name is
    refused naming the setting."""
    config = preset_config("tiny", channels=1, resolution=16)
    assert config.resampling == "bandlimited"
    legacy = {k: v for k, v in config.to_dict().items() if k != "resampling"}
    assert OperatorConfig.from_dict(legacy).resampling == "linear"
    with pytest.raises(ValueError, match="resampling"):
        dataclasses.replace(config, resampling="cubic")


N = 128


def _tones(count: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """One-second harmonic tones of ``n`` samples: six partials of 1 / k over a fundamental of 5-12 cycles."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    f0 = torch.randint(5, 13, (count, 1), generator=generator).double()
    phase = torch.rand(count, 6, generator=generator, dtype=torch.float64) * 2 * math.pi
    x = sum(torch.sin(2 * math.pi * k * f0 * u + phase[:, k - 1: k]) / k for k in range(1, 7))
    return (0.5 * x / x.abs().amax(1, keepdim=True)).float().unsqueeze(1)


def _trained_mirror(resampling: str) -> float:
    """`mirror_correlation` about the training Nyquist frequency of 32 samples at twice the rate of a tiny 1-D model
    trained for 300 steps on `_tones`."""
    from funcdiff.domains import GridDomain
    from funcdiff.metrics.audio import mirror_correlation
    from funcdiff.mollifiers.gaussian import GaussianMollifier
    from funcdiff.processes.mollified import MollifiedDDPM
    from funcdiff.processes.schedules import cosine_schedule
    from funcdiff.sampling import sample

    torch.manual_seed(0)
    net = operator_preset("tiny", channels=1, resolution=(N,), ndim=1, resampling=resampling)
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(1000), GaussianMollifier(1 / N), "x0")
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = process.loss(net, _tones(16, N, generator), points=1.0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        clips = sample(net.eval(), process, (2 * N,), batch=32, steps=20, sampler="ddim", generator=torch.Generator().manual_seed(1))
    return mirror_correlation(clips, 2 * N, N / 2, window_seconds=0.25)


@pytest.mark.slow
def test_a_trained_model_at_twice_its_rate_has_no_image_of_its_band() -> None:
    """docs/math.md §16: above the training Nyquist frequency, the band-limited model's samples at 2x correlate with the
    mirrored lower band below 0.2, while the same recipe with linear resampling images it (above the band-limited)."""
    bandlimited, linear = _trained_mirror("bandlimited"), _trained_mirror("linear")
    assert bandlimited < 0.2 and linear > bandlimited, (bandlimited, linear)
