"""Volume pictures: the layout of `volume_slices`, its panels against the volume's own slices, and the lighting of
`depth_view` on surfaces whose normal is known."""

import math

import pytest
import torch

from funcdiff.domains.slices import LIGHT, depth_view, volume_slices


def coded_volume(b: int, c: int, side: int) -> torch.Tensor:
    """A volume whose every cell holds a different value in [-1, 1), so a panel shows which cells it took."""
    return torch.linspace(-1, 1, b * c * side**3 + 1)[:-1].reshape(b, c, side, side, side)


def panel(picture: torch.Tensor, row: int, column: int, side: int, pad: int = 1) -> torch.Tensor:
    """The panel in ``row`` (example) and ``column`` (view) of a `volume_slices` picture without enlargement."""
    top, left = pad + row * (side + pad), pad + column * (side + pad)
    return picture[:, top : top + side, left : left + side]


def test_picture_size_and_padding() -> None:
    """``count`` rows of four panels of ``display`` pixels, -1 between them; channels kept."""
    x = coded_volume(3, 2, 8)
    picture = volume_slices(x, count=2, display=16, pad=2)
    assert picture.shape == (2, 2 * (16 + 2) + 2, 4 * (16 + 2) + 2)
    assert bool((picture[:, :2] == -1).all()) and bool((picture[:, :, -2:] == -1).all())
    assert volume_slices(x, count=8).shape == (2, 3 * 9 + 1, 4 * 9 + 1)


def test_panels_are_the_central_slices() -> None:
    """Without enlargement, the first three panels of example i are its slices at the middle of d, h and w."""
    x = coded_volume(2, 1, 6)
    picture = volume_slices(x)
    for i in range(2):
        assert torch.equal(panel(picture, i, 0, 6), x[i, :, 3])
        assert torch.equal(panel(picture, i, 1, 6), x[i, :, :, 3])
        assert torch.equal(panel(picture, i, 2, 6), x[i, :, :, :, 3])
        assert torch.equal(panel(picture, i, 3, 6), depth_view(x)[i])


def test_a_plane_facing_the_viewer_is_lit_evenly_and_empty_rays_are_black() -> None:
    """A half-space ``d >= 3`` (wherever the surface falls inside a cell) is one shade, ``LIGHT``'s z component mapped
    to [-0.5, 1]; an empty volume is -1 everywhere."""
    x = -torch.ones(2, 1, 8, 8, 8)
    x[0, :, 3:] = 1
    x[1, :, 3] = 0.2  # a partly filled cell: the surface moves within it, still flat
    x[1, :, 4:] = 1
    expected = 1.5 * LIGHT[2] / math.sqrt(sum(v * v for v in LIGHT)) - 0.5
    torch.testing.assert_close(depth_view(x), torch.full((2, 1, 8, 8), expected))
    assert bool((depth_view(-torch.ones(1, 1, 4, 4, 4)) == -1).all())


@pytest.mark.parametrize("slope", [0.5, -0.5])
def test_a_tilted_plane_is_lit_by_its_normal(slope: float) -> None:
    """Occupancy ramping linearly through a plane whose depth rises by ``slope`` per row: the interpolated depth is
    exact, so every pixel has the Lambert shade of the normal ``(-slope, 0, 1)``; facing the light is brighter."""
    d, h, w = (torch.arange(n, dtype=torch.float32) for n in (16, 8, 8))
    surface = 6 + slope * h
    x = (0.5 * (d[:, None, None] - surface[None, :, None])).clamp(-1, 1).expand(16, 8, 8)[None, None]
    normal = torch.tensor([-slope, 0.0, 1.0]) / math.hypot(slope, 1)
    light = torch.tensor(LIGHT) / torch.tensor(LIGHT).norm()
    expected = 1.5 * float(normal @ light) - 0.5
    torch.testing.assert_close(depth_view(x), torch.full((1, 1, 8, 8), expected))
