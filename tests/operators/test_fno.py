"""The Fourier neural operator (docs/math.md §17): the spectral convolution against its closed form at two resolutions,
the operator's protocol (points = dense grid, chunks, any resolution and dimension, latents, round trip, refusals)."""

import math

import pytest
import torch

from funcdiff.operators import ENCODER_OF, FNOConfig, FourierNeuralOperator, NeuralOperator, autoencoder_preset, operator_preset
from funcdiff.operators.layers.spectral import SpectralConv
from funcdiff.points import Points, grid_index
from funcdiff.registry import build


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("n", [24, 50])
def test_a_cosine_maps_to_its_bin_gain_at_every_resolution(depthwise: bool, n: int) -> None:
    """docs/math.md §17: on the evenly extended grid ``cos(pi k u)`` is bin ``k``, so the layer maps it to
    ``Re(sum_i R_k[i, o] e^{i pi k u})`` at any grid of cell centres; a bin beyond the kept modes maps to zero."""
    torch.manual_seed(0)
    conv = SpectralConv(2, 2, (8,), depthwise=depthwise).double()
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    k = 3
    x = torch.cos(math.pi * k * u).expand(1, 2, n)
    gain = torch.view_as_complex(conv.weight[0, ..., k, :].detach().contiguous())
    wave = torch.exp(1j * math.pi * k * u)
    expected = (gain[:, None] * wave).real if depthwise else (gain.sum(0)[:, None] * wave).real
    torch.testing.assert_close(conv(x)[0].detach(), expected)
    beyond = torch.cos(math.pi * 9 * u).expand(1, 2, n)
    assert conv(beyond).abs().max() < 1e-12


@pytest.mark.parametrize(("name", "shape"), [("fno-tiny", (16,)), ("fno-small", (16, 12)), ("fno-tiny", (8, 8, 8))])
def test_all_points_equal_the_dense_grid_in_any_chunks_and_at_other_resolutions(name: str, shape: tuple[int, ...]) -> None:
    """forward on every point = forward_dense (whole or chunked); it runs at twice the grid and from a random subset."""
    torch.manual_seed(0)
    net = operator_preset(name, channels=1, resolution=shape, ndim=len(shape)).double().eval()
    assert isinstance(net, NeuralOperator)
    x, t = torch.randn(2, 1, *shape, dtype=torch.float64), torch.tensor([0.2, 0.7], dtype=torch.float64)
    with torch.no_grad():
        dense = net.forward_dense(x, t)
        points = net(Points(x.flatten(2).transpose(1, 2), grid_index(2, shape), shape), t)
        torch.testing.assert_close(points, dense.flatten(2).transpose(1, 2))
        torch.testing.assert_close(net.forward_dense(x, t, chunk_points=7), dense)
        big = tuple(2 * s for s in shape)
        assert net.forward_dense(torch.randn(2, 1, *big, dtype=torch.float64), t).shape == (2, 1, *big)
        index = grid_index(2, big)[:, :11]
        assert net(Points(torch.randn(2, 11, 1, dtype=torch.float64), index, big), t).shape == (2, 11, 1)


def test_a_diffusion_autoencoder_decodes_with_it_and_every_parameter_learns() -> None:
    """With ``z_dim`` the FNO is a decoder; the encoder is the matching ∞-Diff preset's; one loss reaches every weight."""
    torch.manual_seed(0)
    model = autoencoder_preset("fno-tiny", channels=1, resolution=16, z_dim=4)
    assert isinstance(model.decoder, FourierNeuralOperator) and ENCODER_OF["fno-tiny"] == "tiny"
    x = torch.randn(2, 1, 16, 16)
    points = Points(x.flatten(2).transpose(1, 2), grid_index(2, (16, 16)), (16, 16))
    model(points, torch.rand(2), source=points).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_config_round_trips_and_bad_settings_are_refused_by_name() -> None:
    """`to_dict` rebuilds the same architecture; more modes than the grid has cells, a wrong number of axes, a latent
    the config does not have, or a non-depthwise mismatch of channels are refused naming the setting."""
    net = operator_preset("fno-small", channels=1, resolution=16)
    again = build(net.to_dict())
    assert isinstance(again, FourierNeuralOperator) and again.config == net.config
    assert again.state_dict().keys() == net.state_dict().keys()
    base = dict(channels=1, reference_shape=(16,), grid_shape=(16,))
    with pytest.raises(ValueError, match="modes"):
        FNOConfig(**base, modes=(17,))
    with pytest.raises(ValueError, match="modes"):
        FNOConfig(**base, modes=(4, 4))
    with pytest.raises(ValueError, match="cond"):
        net(Points(torch.randn(1, 3, 1), grid_index(1, (16, 16))[:, :3], (16, 16)), torch.rand(1), torch.randn(1, 4))
    with pytest.raises(ValueError, match="depthwise"):
        SpectralConv(2, 3, (4,), depthwise=True)


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_axis_keeps_the_same_bins_on_grids_coarser_and_finer_than_the_modes(ndim: int) -> None:
    """Bins ``|j| < m`` on every axis: a cosine of mode ``m`` along any one axis maps to zero. A grid with fewer bins
    than ``m`` applies the weights of the bins it holds: a function it holds exactly gives, at its nodes, the output
    that a three times finer grid gives there."""
    torch.manual_seed(0)
    conv = SpectralConv(2, 3, (6,) * ndim).double()

    def field(n: int, modes: tuple[int, ...]) -> torch.Tensor:
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        out = torch.ones((), dtype=torch.float64)
        for axis, k in enumerate(modes):
            view = [1] * ndim
            view[axis] = n
            out = out * torch.cos(math.pi * k * u).view(view)
        return out.expand(1, 2, *(n,) * ndim)

    for axis in range(ndim):
        modes = tuple(6 if a == axis else 1 for a in range(ndim))
        assert conv(field(16, modes)).abs().max() < 1e-12, axis
    held = tuple(range(1, ndim + 1))  # modes 1, 2(, 3): within a 4-cell grid's band
    coarse, fine = conv(field(4, held)), conv(field(12, held))
    nodes = (slice(None), slice(None), *(slice(1, None, 3),) * ndim)
    torch.testing.assert_close(coarse, fine[nodes])


def _mirror_share(oversample: int, seed: int, rate: int = 400, f0: float = 52.3) -> float:
    """Energy of an FNO's output at the partials' images about ``rate / 2`` over that at its true overtones, for three
    partials at twice the training rate (``rate`` cells)."""
    torch.manual_seed(seed)
    config = FNOConfig(channels=1, reference_shape=(rate,), grid_shape=(rate,), modes=(rate,), width=16, layers=2,
                       time_dim=16, depthwise=True, oversample=oversample)
    net = FourierNeuralOperator(config).double().eval()
    n = 2 * rate
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x = sum(torch.sin(2 * math.pi * k * f0 * u) / k for k in (1, 2, 3)).view(1, 1, n)
    with torch.no_grad():
        y = net.forward_dense(x, torch.tensor([0.1], dtype=torch.float64))[0, 0]
    power = torch.fft.rfft(y * torch.hann_window(n, dtype=torch.float64)).abs().square()
    hz = torch.fft.rfftfreq(n, 1 / n)

    def energy(frequencies: list[float]) -> float:
        return sum(float(power[(hz - f).abs() < 1.5].sum()) for f in frequencies)

    return energy([rate - k * f0 for k in (1, 2, 3)]) / energy([k * f0 for k in range(4, 8)])


def test_oversampled_blocks_make_overtones_not_images_of_the_band() -> None:
    """docs/math.md §17: at twice the training rate, a harmonic input's output above the grid's Nyquist frequency has
    its overtones (``k f0``) but almost no images of the partials (``rate - k f0``) once the blocks run on twice the
    grid (at most 0.2 % of the overtones' energy at initialisation); on the grid itself (oversample 1) the blocks'
    products fold into images that reach 0.4-79 % of it."""
    assert max(_mirror_share(2, seed) for seed in range(3)) < 1e-2
    assert max(_mirror_share(1, seed) for seed in range(3)) > 0.1


def test_oversample_is_refused_where_it_has_no_meaning() -> None:
    """An oversampling factor below 1, or one for an ∞-Diff preset, is refused naming the setting."""
    with pytest.raises(ValueError, match="oversample"):
        FNOConfig(channels=1, reference_shape=(8,), grid_shape=(8,), modes=(4,), oversample=0)
    with pytest.raises(ValueError, match="oversample"):
        operator_preset("tiny", channels=1, resolution=8, ndim=1, oversample=2)
    net = operator_preset("fno-tiny", channels=1, resolution=8, ndim=1, oversample=3)
    assert isinstance(net, FourierNeuralOperator) and net.config.oversample == 3
