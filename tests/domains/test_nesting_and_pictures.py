"""Nested white noise across resolutions (docs/math.md §2) and picture grids."""

import pytest
import torch

from funcdiff.domains import box_average, image_grid, nested_white_noise, side_by_side


def test_nested_noise_is_the_box_average_of_one_fine_draw() -> None:
    """docs/math.md §2: with one seed and nest shape, noise at 16 and 32 px is the fine draw box-averaged, variance kept."""
    draws = {n: nested_white_noise(512, (1, n, n), (16, 16), (64, 64), generator=torch.Generator().manual_seed(3)) for n in (16, 32, 64)}
    torch.testing.assert_close(box_average(draws[64], 4), draws[16])
    torch.testing.assert_close(box_average(draws[32], 2), draws[16])
    for n, noise in draws.items():
        assert abs(noise.var().item() / (n / 16) ** 2 - 1) < 0.05


def test_nested_noise_rejects_a_non_multiple() -> None:
    """The nest shape must be an integer multiple of the sampling shape."""
    with pytest.raises(ValueError, match="nest shape"):
        nested_white_noise(1, (1, 24, 24), (16, 16), (64, 64), generator=None)


def test_image_grid_and_side_by_side_layout() -> None:
    """Grids tile images with -1 padding; side_by_side enlarges every row to one size."""
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    grid = image_grid(images, nrow=2)
    assert grid.shape == (1, 7, 7)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 4] == 1 and grid[0, 4, 1] == 2 and grid[0, 0, 0] == -1
    rows = side_by_side([torch.zeros(3, 1, 4, 4), torch.ones(3, 1, 8, 8)], count=2)
    assert rows.shape == (1, 2 * 9 + 1, 2 * 9 + 1)


def test_save_samples_picks_a_format_by_shape(tmp_path) -> None:
    """Images become a PNG grid, 1-D signals WAV files at one sample per cell, volumes a tensor file and a picture of
    slices, anything else a tensor file."""
    from safetensors.torch import load_file

    from funcdiff.domains import read_png, read_wav, save_samples

    grid = save_samples(torch.zeros(4, 1, 8, 8), tmp_path, "images", individual=False)
    assert grid.name == "images.png" and read_png(grid, channels=1).shape == (1, 2 * 9 + 1, 2 * 9 + 1)
    folder = save_samples(torch.linspace(-1, 1, 64).view(2, 1, 32), tmp_path, "audio")
    signal, rate = read_wav(folder / "0001.wav")
    assert rate == 32 and signal.shape == (1, 32) and abs(float(signal[0, -1]) - 1) < 1e-4
    volumes = torch.randn(2, 1, 4, 4, 4)
    path = save_samples(volumes, tmp_path, "volumes")
    assert path.name == "volumes.png" and read_png(path, channels=1).shape[0] == 1
    assert torch.equal(load_file(str(tmp_path / "volumes.safetensors"))["samples"], volumes)
    fields = torch.randn(2, 4, 4, 4)
    assert torch.equal(load_file(str(save_samples(fields, tmp_path, "fields")))["samples"], fields)
