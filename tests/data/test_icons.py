"""Icons: exact nesting across resolutions, the on-disk cache, the fixed split, and the Latin fallback."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import funcdiff.data.glyphs as glyphs
import funcdiff.data.icons as icons
from funcdiff.data import MASTER, IconDataset, default_cache_dir, find_glyphs, split_indices
from funcdiff.domains import box_average

needs_mdi6 = pytest.mark.skipif(glyphs.mdi6_glyphs() is None, reason="qtawesome is not installed")


def stacked(dataset: IconDataset) -> torch.Tensor:
    """All fields of a data set as one batch."""
    return torch.stack([dataset[i] for i in range(len(dataset))])


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module, so hypothesis examples reuse renders."""
    return tmp_path_factory.mktemp("cache")


@given(exponent=st.integers(0, 8))
def test_icons_nest_exactly_under_box_averaging(shared_cache: Path, exponent: int) -> None:
    """The 2 x 2 box-average of the icons at 2r equals the icons at r to 1e-6, for every r up to 256."""
    resolution = 2**exponent
    coarse = stacked(IconDataset(resolution=resolution, limit=3, cache_dir=shared_cache, progress=False))
    fine = stacked(IconDataset(resolution=2 * resolution, limit=3, cache_dir=shared_cache, progress=False))
    assert coarse.shape == (3, 1, resolution, resolution)
    assert coarse.min() >= -1 and coarse.max() <= 1
    torch.testing.assert_close(box_average(fine, 2), coarse, atol=1e-6, rtol=0)


@needs_mdi6
def test_icons_are_white_glyphs_on_black(shared_cache: Path) -> None:
    """At 512 px the master is binary-ish: glyph +1 on a mostly -1 background."""
    field = IconDataset(resolution=MASTER, limit=1, cache_dir=shared_cache, progress=False)[0]
    values = field.unique()
    assert values.min() == -1 and values.max() == 1
    assert (field == -1).float().mean() > 0.5, "the background is black (-1)"


def test_cache_round_trip_reads_instead_of_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second construction reads the cache (no rendering) with equal values; a larger limit renders only the new glyphs."""
    first = IconDataset(resolution=16, limit=4, cache_dir=tmp_path, progress=False)
    assert first.cache_path.is_file() and first.cache_path.is_relative_to(tmp_path)
    rendered: list[int] = []
    real_render = icons.render_masters

    def counting_render(glyph_set: glyphs.GlyphSet, indices: list[int], **kwargs: object):  # noqa: ANN202
        rendered.extend(indices)
        return real_render(glyph_set, indices, **kwargs)

    monkeypatch.setattr(icons, "render_masters", counting_render)
    second = IconDataset(resolution=16, limit=4, cache_dir=tmp_path, progress=False)
    assert rendered == []
    assert second.keys == first.keys
    torch.testing.assert_close(stacked(second), stacked(first), atol=0, rtol=0)
    grown = IconDataset(resolution=16, limit=6, cache_dir=tmp_path, progress=False)
    assert len(rendered) == 2, "only the glyphs missing from the cache are rendered"
    torch.testing.assert_close(stacked(grown)[:4], stacked(first), atol=0, rtol=0)


def test_unreadable_cache_is_rendered_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A corrupt cache file is logged and replaced by a fresh render with the same values."""
    reference = stacked(IconDataset(resolution=8, limit=2, cache_dir=tmp_path / "good", progress=False))
    path = IconDataset(resolution=8, limit=2, cache_dir=tmp_path / "bad", progress=False).cache_path
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.icons"):
        again = stacked(IconDataset(resolution=8, limit=2, cache_dir=tmp_path / "bad", progress=False))
    assert "unreadable icon cache" in caplog.text
    torch.testing.assert_close(again, reference, atol=0, rtol=0)


def test_cache_dir_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FUNCDIFF_CACHE sets the default cache root; without it, ~/.cache/funcdiff."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert IconDataset(resolution=4, limit=1, progress=False).cache_path.is_relative_to(tmp_path)
    monkeypatch.delenv("FUNCDIFF_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "funcdiff"


@needs_mdi6
def test_split_by_glyph_is_disjoint_and_deterministic(tmp_path: Path) -> None:
    """The fixed 90/10 split by glyph is disjoint, complete, and the same on every construction."""
    glyph_set = find_glyphs("mdi6")
    assert len(glyph_set.glyphs) == 7367
    keys = [glyph_set.key(i) for i in range(len(glyph_set.glyphs))]
    train, test = (split_indices(keys, s, fraction=icons.TEST_FRACTION, seed=0) for s in ("train", "test"))
    assert not set(train) & set(test) and len(train) + len(test) == len(keys)
    assert 0.08 < len(test) / len(keys) < 0.12
    train_set = IconDataset(resolution=4, limit=20, cache_dir=tmp_path, progress=False)
    test_set = IconDataset(resolution=4, split="test", limit=20, cache_dir=tmp_path, progress=False)
    assert train_set.keys == [keys[i] for i in train[:20]]
    assert test_set.keys == [keys[i] for i in test[:20]]
    assert IconDataset(resolution=4, limit=20, cache_dir=tmp_path, progress=False).keys == train_set.keys


def test_falls_back_to_latin_glyphs_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without qtawesome the default source falls back to Latin glyphs with a warning; asking for mdi6 fails clearly."""
    monkeypatch.setattr(glyphs, "mdi6_glyphs", lambda: None)
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.glyphs"):
        dataset = IconDataset(resolution=32, limit=3, cache_dir=tmp_path, progress=False)
    assert "falling back to Latin glyphs" in caplog.text
    assert dataset.glyph_set.name.startswith("latin")
    with pytest.raises(FileNotFoundError, match="pip install qtawesome"):
        IconDataset(resolution=32, source="mdi6", cache_dir=tmp_path)


@pytest.mark.parametrize("fonts", ["dejavu", "default"])
def test_latin_glyphs_fit_inside_the_master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fonts: str) -> None:
    """Wide and descending Latin glyphs have ink and are not clipped, in DejaVu and in Pillow's built-in font."""
    if fonts == "default":
        monkeypatch.setattr(glyphs, "DEJAVU_DIR", tmp_path / "no-fonts")
    glyph_set = glyphs.latin_glyphs()
    assert glyph_set.name == f"latin-{fonts}"
    wide = [i for i, (_, cp) in enumerate(glyph_set.glyphs) if chr(cp) in "WMgjQ@0"][:7]
    for master in glyphs.render_masters(glyph_set, wide, progress=False):
        assert master.max() == 255, "the glyph has ink"
        border = np.concatenate([master[0], master[-1], master[:, 0], master[:, -1]])
        assert not border.any(), "the glyph is not clipped"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"resolution": 48}, "resolution"),
        ({"resolution": 8, "limit": 0}, "limit"),
        ({"resolution": 8, "source": "emoji"}, "source"),
        ({"resolution": 8, "split": "valid"}, "split"),
    ],
)
@pytest.mark.usefixtures("unchecked")
def test_bad_arguments_raise_value_errors(tmp_path: Path, options: dict, match: str) -> None:
    """Bad arguments are ValueErrors naming the argument."""
    with pytest.raises(ValueError, match=match):
        IconDataset(cache_dir=tmp_path, **options)
