"""Image folders: nested trees, any size, centre crops, corrupt files skipped and reported, flips, split, the cache."""

import logging
import os
import pickle
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Cache decoded folders in a per-test temporary folder, never in ~/.cache."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FUNCDIFF_FOLDER_CACHE", raising=False)
    yield tmp_path / "cache"


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
    with pytest.raises(ValueError, match="workers"):
        ImageFolder(image_tree, resolution=8, workers=-1, progress=False)
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


def mixed_tree(root: Path) -> Path:
    """Images of every kind the decoder handles: RGB, grey, palette, transparent, JPEG, 16-bit grey (sorted last, so
    the cache is widened after 8-bit rows were written), and a junk file that fails only when loaded."""
    save_random_image(root / "a.png", (40, 30))
    save_random_image(root / "b.jpg", (20, 50), seed=1)
    save_random_image(root / "c.png", (16, 16), mode="L", seed=2)
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (12, 9, 4), dtype=np.uint8), "RGBA").save(root / "d.png")
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (10, 10, 3), dtype=np.uint8)).convert("P").save(root / "e.png")
    (root / "f.png").write_bytes(b"junk")
    Image.fromarray(np.random.default_rng(5).integers(0, 65536, (14, 18), dtype=np.uint16)).save(root / "z16.png")
    return root


def items(dataset: ImageFolder) -> list[torch.Tensor]:
    """Every item of ``dataset``."""
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize(("resolution", "channels"), [(8, 3), ((6, 11), 1), (24, 3)])
def test_the_cache_gives_exactly_the_decoded_images(tmp_path: Path, resolution: int | tuple[int, int], channels: int) -> None:
    """Cached items equal decoded ones bit for bit (flips, 16-bit widening, a junk file's stand-in included), and a
    second data set reads them from the cache without decoding."""
    root = mixed_tree(tmp_path / "images")
    options = {"resolution": resolution, "channels": channels, "test_fraction": 0.0, "flip": True, "verify": False}
    decoded = items(ImageFolder(root, cache=False, **options))
    first = ImageFolder(root, **options)
    assert first.cache_path is not None and np.load(first.cache_path, mmap_mode="r").dtype == np.uint16
    assert all(torch.equal(a, b) for a, b in zip(items(first), decoded, strict=True))
    assert first.skipped == [root / "f.png"]
    again = ImageFolder(root, **options)
    again._load = None  # reading the cache must not decode
    assert again.cache_path == first.cache_path
    assert all(torch.equal(a, b) for a, b in zip(items(again), decoded, strict=True))


def test_eight_bit_folders_cache_one_byte_per_value_and_parallel_builds_agree(image_tree: Path, tmp_path: Path) -> None:
    """A folder of 8-bit images is cached as uint8; a cache built by two worker processes equals one built here."""
    here = ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False, workers=0)
    workers = ImageFolder(image_tree, resolution=8, test_fraction=0.0, progress=False, workers=2, cache_dir=tmp_path / "other")
    assert here.cache_path != workers.cache_path
    assert np.array_equal(np.load(here.cache_path), np.load(workers.cache_path))
    assert np.load(here.cache_path).dtype == np.uint8


def test_a_changed_folder_is_decoded_again(tmp_path: Path) -> None:
    """Rewriting, adding or removing a file gives a new cache that matches decoding; the stale one is deleted."""
    root = tmp_path / "images"
    for i in range(3):
        save_random_image(root / f"{i}.png", (8, 8), seed=i)

    def rewrite() -> None:
        stat = (root / "1.png").stat()
        save_random_image(root / "1.png", (8, 8), seed=10)
        os.utime(root / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # even where clocks are coarse

    old = ImageFolder(root, resolution=4, test_fraction=0.0)
    for change in (rewrite, lambda: save_random_image(root / "3.png", (8, 8), seed=3), (root / "0.png").unlink):
        change()
        new = ImageFolder(root, resolution=4, test_fraction=0.0)
        assert new.cache_path != old.cache_path and not old.cache_path.exists()
        assert new.cache_path.parent == old.cache_path.parent
        decoded = items(ImageFolder(root, resolution=4, test_fraction=0.0, cache=False))
        assert all(torch.equal(a, b) for a, b in zip(items(new), decoded, strict=True))
        old = new


def test_an_interrupted_cache_write_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Interrupting the build leaves no cache and no temporary file; a killed build's leftover and a truncated cache
    file are never read, and the next build gives the decoded images."""
    root = tmp_path / "images"
    for i in range(4):
        save_random_image(root / f"{i}.png", (8, 8), seed=i)
    load = ImageFolder._load
    calls = []

    def interrupted(self: ImageFolder, path: Path) -> np.ndarray:
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return load(self, path)

    monkeypatch.setattr(ImageFolder, "_load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ImageFolder(root, resolution=4, test_fraction=0.0, workers=0)
    monkeypatch.setattr(ImageFolder, "_load", load)
    entries = list((tmp_path / "cache" / "folders").iterdir())
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == ["lock"]
    (entries[0] / ".tmp-killed.npy").write_bytes(b"half a file")
    decoded = items(ImageFolder(root, resolution=4, test_fraction=0.0, cache=False))
    dataset = ImageFolder(root, resolution=4, test_fraction=0.0)
    assert sorted(p.name for p in entries[0].iterdir()) == sorted(["lock", dataset.cache_path.name])
    assert all(torch.equal(a, b) for a, b in zip(items(dataset), decoded, strict=True))
    dataset.cache_path.write_bytes(dataset.cache_path.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.array_cache"):
        rebuilt = ImageFolder(root, resolution=4, test_fraction=0.0)
    assert "ignoring unreadable cache" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(items(rebuilt), decoded, strict=True))


def test_a_pickled_data_set_maps_the_cache_again(image_tree: Path) -> None:
    """Pickling (as spawned DataLoader workers do) carries the cache's path, not its contents."""
    dataset = ImageFolder(image_tree, resolution=32, test_fraction=0.0, flip=True, progress=False)
    data = pickle.dumps(dataset)
    assert len(data) < 2000 < dataset.cache_path.stat().st_size
    assert all(torch.equal(a, b) for a, b in zip(items(pickle.loads(data)), items(dataset), strict=True))


def test_the_cache_can_be_turned_off_and_a_failing_cache_is_skipped(
    image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """cache=False or FUNCDIFF_FOLDER_CACHE=0 writes nothing; a cache folder that cannot be made warns and decodes."""
    options = {"resolution": 8, "test_fraction": 0.0, "progress": False}
    assert ImageFolder(image_tree, cache=False, **options).cache_path is None
    monkeypatch.setenv("FUNCDIFF_FOLDER_CACHE", "0")
    assert ImageFolder(image_tree, **options).cache_path is None
    assert not (tmp_path / "cache").exists()
    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.folder"):
        dataset = ImageFolder(image_tree, cache=True, cache_dir=tmp_path / "file", **options)
    assert dataset.cache_path is None and "cannot cache" in caplog.text
    torch.testing.assert_close(dataset[0], ImageFolder(image_tree, **options, cache=True)[0], rtol=0, atol=0)


def test_one_subfolder_per_class_labels_the_images_in_both_splits(tmp_path: Path) -> None:
    """Classes are the first folders below the root, sorted, the same in both splits; mirrored copies keep their
    image's class; images directly in the root give no labels (`labelled` refuses them)."""
    from funcdiff.data.labels import labelled

    for i in range(12):
        save_random_image(tmp_path / "tree" / ("cat" if i % 3 else "ant") / ("deep" if i == 4 else "") / f"{i}.png", (8, 8), seed=i)
    train = ImageFolder(tmp_path / "tree", resolution=8, channels=1, flip=True, cache=False, test_fraction=0.25)
    test = ImageFolder(tmp_path / "tree", resolution=8, channels=1, cache=False, test_fraction=0.25, split="test")
    assert train.vocabulary == test.vocabulary == {"class": ("ant", "cat")}
    expected = [0 if int(p.stem) % 3 == 0 else 1 for p in train.paths]
    assert labelled(train).labels[:, 0].tolist() == expected * 2
    assert [int(row) for row in test.label_rows[:, 0]] == [0 if int(p.stem) % 3 == 0 else 1 for p in test.paths]
    save_random_image(tmp_path / "tree" / "loose.png", (8, 8))
    flat = ImageFolder(tmp_path / "tree", resolution=8, channels=1, cache=False)
    assert flat.vocabulary is None
    with pytest.raises(ValueError, match="no labels"):
        labelled(flat)
