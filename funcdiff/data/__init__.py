"""Data sets of dense fields ``(c, *spatial)`` in ``[-1, 1]`` at a requested resolution, and an endless loader.

Built in: `IconDataset` (vector icons, exact ground truth at every resolution dividing 512), `FashionMNIST`
(Debian's ``dataset-fashion-mnist``), `ImageFolder` (any tree of PNG/JPEG files). Each has a ``shape``
attribute ``(c, h, w)`` and a registered kind.

Audio, mono fields ``(1, n)`` over ``duration`` seconds with ``shape = (1, n)`` and a ``sample_rate``:
`NoteDataset` (kind "notes": single notes of recorded instruments, FluidSynth and the FluidR3 GM soundfont),
`SpokenDigits` ("digits": "zero" to "nine" spoken by eSpeak NG voices), `AudioFolder` ("audio-folder": any tree
of WAV/FLAC/OGG files). Built-in clips last 1 s, so ``n`` is the sample rate; shared helpers live in
`funcdiff.data.audio`.

Volumes: `ShapeVolumes` ("shapes": procedural solid shapes as occupancy fields ``(1, r, r, r)``, exact nesting
from a 64^3 master), and the same shapes observed at scattered points, `ShapePoints` ("shapes-points"; items
``{"values", "coords"}``, `funcdiff.data.scattered`).

Every data set has a registered kind (`funcdiff.factory.make_dataset` picks one by name for the command
line); `infinite_loader` yields
seeded, resumable batches, and `ResolutionMixture` coarsens each to the resolution its step trains at.
"""

from funcdiff.data.audio_folder import AudioFolder
from funcdiff.data.digits import DIGITS, SpokenDigits
from funcdiff.data.fashion_mnist import CLASSES, DatasetNotFoundError, FashionMNIST, read_idx
from funcdiff.data.folder import ImageFolder
from funcdiff.data.glyphs import MASTER, GlyphSet, find_glyphs, render_masters
from funcdiff.data.icons import IconDataset, default_cache_dir
from funcdiff.data.loader import StreamSampler, epoch_permutation, infinite_loader
from funcdiff.data.notes import PROGRAMS, NoteDataset, midi_file
from funcdiff.data.resolutions import ResolutionMixture
from funcdiff.data.pixels import box_sums, sums_to_field
from funcdiff.data.scattered import as_scattered, example_shape, is_scattered
from funcdiff.data.shapes import ShapePoints, ShapeVolumes
from funcdiff.data.split import SPLITS, Split, is_held_out, split_indices

__all__ = [
    "CLASSES",
    "DIGITS",
    "MASTER",
    "PROGRAMS",
    "ResolutionMixture",
    "SPLITS",
    "ShapePoints",
    "ShapeVolumes",
    "as_scattered",
    "example_shape",
    "is_scattered",
    "AudioFolder",
    "DatasetNotFoundError",
    "FashionMNIST",
    "GlyphSet",
    "IconDataset",
    "ImageFolder",
    "NoteDataset",
    "SpokenDigits",
    "Split",
    "StreamSampler",
    "box_sums",
    "default_cache_dir",
    "epoch_permutation",
    "find_glyphs",
    "infinite_loader",
    "is_held_out",
    "midi_file",
    "read_idx",
    "render_masters",
    "split_indices",
    "sums_to_field",
]
