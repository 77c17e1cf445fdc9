"""Image folders: nested trees, any size, centre crops, corrupt files skipped and reported, flips, split."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from funcdiff.data import ImageFolder, infinite_loader
from funcdiff.domains import box_average, read_png
from tests.data.files import save_random_image


def test_corrupt_files_are_skipped_and_reported(image_tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A corrupt file is skipped at index time, logged and listed; nested images count, text files do not."""
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.folder"):
        dataset = ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False)
    assert dataset.skipped == [image_tree / "bad.png"]
    assert "bad.png" in caplog.text
    names = sorted(p.relative_to(image_tree).as_posix() for p in dataset.paths)
    assert names == ["a.png", "sub/c.png", "sub/deep/b.jpg"], "nested folders count; text files do not"


def test_a_file_that_fails_only_when_loaded_is_skipped(image_tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A truncated JPEG passes verify(), fails on load, and is replaced by the next image and reported."""
    truncated = image_tree / "sub" / "deep" / "b.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-400])
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.folder"):
        dataset = ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False)
        assert truncated in dataset.paths, "a truncated JPEG passes verify()"
        index = dataset.paths.index(truncated)
        torch.testing.assert_close(dataset[index], dataset[(index + 1) % len(dataset.paths)])
    assert dataset.skipped[-1] == truncated
    assert "b.jpg" in caplog.text


def test_all_files_unreadable_at_load_time_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When no file can be decoded, loading raises instead of looping."""
    (tmp_path / "x.png").write_bytes(b"junk")
    dataset = ImageFolder(tmp_path, resolution=4, test_fraction=0.0, verify=False)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="could be read"):
        dataset[0]
    assert dataset.skipped == [tmp_path / "x.png"]


@pytest.mark.parametrize(("resolution", "shape"), [(16, (16, 16)), ((8, 12), (8, 12)), ((12, 6), (12, 6))])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_size_becomes_the_requested_shape(
    image_tree: Path, resolution: int | tuple[int, int], shape: tuple[int, int], channels: int
) -> None:
    """Images of any size and mode become fields of the requested shape and channels in [-1, 1]."""
    dataset = ImageFolder(image_tree, resolution=resolution, channels=channels, test_fraction=0.0, progress=False)
    assert dataset.shape == (channels, *shape)
    for i in range(len(dataset)):
        x = dataset[i]
        assert x.shape == (channels, *shape)
        assert x.min() >= -1 and x.max() <= 1


@given(width=st.integers(1, 40), height=st.integers(1, 40), out_height=st.integers(1, 12), out_width=st.integers(1, 12))
def test_every_size_and_aspect_ratio_works(
    tmp_path_factory: pytest.TempPathFactory, width: int, height: int, out_height: int, out_width: int
) -> None:
    """Any image size, shrunk or enlarged to any target aspect ratio, gives the target shape in [-1, 1]."""
    root = tmp_path_factory.mktemp("sizes")
    save_random_image(root / "x.png", (width, height))
    x = ImageFolder(root, resolution=(out_height, out_width), test_fraction=0.0)[0]
    assert x.shape == (3, out_height, out_width)
    assert x.min() >= -1 and x.max() <= 1


def test_centre_crop_keeps_the_middle(tmp_path: Path) -> None:
    """A wide image is cropped to its centre: the middle stripe only."""
    stripes = np.zeros((10, 30, 3), dtype=np.uint8)
    stripes[:, :10, 0], stripes[:, 10:20, 1], stripes[:, 20:, 2] = 255, 255, 255
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    x = ImageFolder(tmp_path, resolution=10, test_fraction=0.0)[0]
    torch.testing.assert_close(x, torch.tensor([-1.0, 1.0, -1.0])[:, None, None].expand(3, 10, 10))


def test_shrinking_averages_boxes(tmp_path: Path) -> None:
    """Shrinking by an integer factor is the box-average, up to 8-bit rounding."""
    save_random_image(tmp_path / "square.png", (32, 32))
    x = ImageFolder(tmp_path, resolution=8, test_fraction=0.0)[0]
    expected = box_average(read_png(tmp_path / "square.png")[None], 4)[0]
    torch.testing.assert_close(x, expected, atol=1 / 127.5, rtol=0)


def test_flips_mirror_and_are_deterministic_under_a_seed(image_tree: Path) -> None:
    """Flipping doubles the set with mirrored copies; the loader's seed fixes which are drawn."""
    plain = ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False)
    flipped = ImageFolder(image_tree, resolution=8, test_fraction=0.0, flip=True, progress=False)
    n = len(plain)
    assert len(flipped) == 2 * n
    for i in range(n):
        torch.testing.assert_close(flipped[i], plain[i])
        torch.testing.assert_close(flipped[i + n], plain[i].flip(-1))
    runs = [list(map(torch.Tensor.clone, _take(infinite_loader(flipped, 2, seed=s), 6))) for s in (3, 3, 4)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def _take(batches, count: int) -> list[torch.Tensor]:  # noqa: ANN001
    """The first ``count`` batches of an iterator."""
    return [next(batches) for _ in range(count)]


def test_split_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    """The folder split is disjoint, complete, repeatable, and changes with the seed."""
    for i in range(20):
        save_random_image(tmp_path / f"{i:02d}.png", (4, 4), seed=i)
    train = ImageFolder(tmp_path, resolution=4, test_fraction=0.3)
    test = ImageFolder(tmp_path, resolution=4, split="test", test_fraction=0.3)
    assert not set(train.paths) & set(test.paths)
    assert len(train) + len(test) == 20 and len(test) > 0
    assert ImageFolder(tmp_path, resolution=4, split="test", test_fraction=0.3).paths == test.paths
    assert ImageFolder(tmp_path, resolution=4, split="test", test_fraction=0.3, seed=1).paths != test.paths


def test_bad_arguments(image_tree: Path, tmp_path: Path) -> None:
    """Missing or empty folders, bad resolutions, channels and indices raise clear errors."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing", resolution=8)
    with pytest.raises(ValueError, match="resolution"):
        ImageFolder(image_tree, resolution=(8, 0), progress=False)
    with pytest.raises(ValueError, match="channels"):
        ImageFolder(image_tree, resolution=8, channels=4, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        ImageFolder(tmp_path / "empty", resolution=8)
    with pytest.raises(IndexError):
        ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False)[3]


def test_sixteen_bit_and_transparent_images_keep_their_values(tmp_path: Path) -> None:
    """A 16-bit grey PNG maps 0..65535 onto [-1, 1] (not saturated to white); transparency is composited over white."""
    ramp = np.linspace(0, 65535, 16).astype(np.uint16)[None].repeat(16, axis=0)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    with Image.open(tmp_path / "ramp16.png") as image:
        assert image.mode == "I;16"
    field = ImageFolder(tmp_path, resolution=16, channels=1, test_fraction=0.0, progress=False)[0]
    np.testing.assert_allclose(field[0, 0].numpy(), ramp[0] / 65535 * 2 - 1, atol=1e-5)
    assert ImageFolder(tmp_path, resolution=16, channels=3, test_fraction=0.0, progress=False)[0].shape == (3, 16, 16)
    (tmp_path / "ramp16.png").unlink()
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2, :, 3] = 255  # top half opaque black, bottom half transparent (black underneath)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    field = ImageFolder(tmp_path, resolution=4, channels=3, test_fraction=0.0, progress=False)[0]
    assert bool((field[:, :2] == -1).all()) and bool((field[:, 2:] == 1).all())
