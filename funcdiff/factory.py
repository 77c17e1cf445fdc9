"""The factory: a run's config (command-line flags or JSON) turned into built components.

This is the one place where names in a config become objects: data set names (`make_dataset`), the process
family and its settings (`build_process`) and operator presets (`build_model`); sampler names live in
`funcdiff.sampling.SAMPLERS`.
Everything below it (the trainer, the samplers, `sample`) takes built objects, so a user's own components skip
this module entirely; checkpoints rebuild components by their registered kinds (`funcdiff.registry`).
"""

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from funcdiff.data.folder import EXTENSIONS as IMAGE_EXTENSIONS
from funcdiff.data.labels import Labelled, Vocabulary, labelled
from funcdiff.data.scattered import example_shape, is_scattered
from funcdiff.data.split import Split
from funcdiff.domains.audio import AudioDomain
from funcdiff.domains.base import Domain
from funcdiff.domains.grid import GridDomain
from funcdiff.mollifiers.gaussian import GaussianMollifier, IdentityMollifier
from funcdiff.operators import FNO_OF, FNO_PRESETS, autoencoder_preset, conditional_preset, operator_preset
from funcdiff.operators.layers.kernel_resampling import Resampling
from funcdiff.processes.base import DenoisingProcess, DiffusionProcess, FlowProcess, SigmaProcess
from funcdiff.processes.edm import MollifiedEDM
from funcdiff.processes.flow import FunctionalFlowMatching
from funcdiff.processes.mollified import MollifiedDDPM
from funcdiff.processes.schedules import Schedule
from funcdiff.registry import lookup, registered_kinds
from funcdiff.sampling import SAMPLERS
from funcdiff.training.config import TrainSettings

ProcessName = Literal["ddpm", "flow", "edm", "mollified_ddpm", "flow_matching", "mollified_edm"]
PROCESS_KINDS = {"mollified_ddpm": "ddpm", "flow_matching": "flow", "mollified_edm": "edm"}
"""The registered kinds of the three process families the flags build, and the family (short) names they go by."""
_PROTOCOLS = {"ddpm": DenoisingProcess, "flow": FlowProcess, "edm": SigmaProcess}
"""The protocol each family's samplers run."""
PredictionName = Literal["auto", "mollified_eps", "x0", "velocity", "x1", "preconditioned"]

_PREDICTIONS: dict[str, tuple[str, ...]] = {"ddpm": ("x0", "mollified_eps"), "flow": ("x1", "velocity"), "edm": ("x0", "preconditioned")}
"""Each process family's predictions; the first is what ``"auto"`` picks."""



@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainSettings):
    """A training run of an ∞-Diff operator, components and settings (defaults: the CPU demo).

    Attributes:
        data: "icons", "fashion-mnist", "shapes" (3-D), "notes" or "digits" (audio), a folder of images or of
            sound files (WAV, FLAC, OGG), or another registered data set kind.
        resolution: the training grid: its side in pixels (images, volumes) or its sample rate in Hz (audio); the
            operator's reference resolution.
        train_resolutions: train at several resolutions of the same data (one drawn per step, docs/math.md §15), in the
            unit of ``resolution``: the data load at the largest, which each must divide, as must ``resolution``
            (still the operator's reference, 1x); with a count of ``points`` each sees that many points, so a
            ``--train-resolutions 32 64 128 --points 256`` run sees 25 % of a 32 px icon and 1.6 % of a 128 px one.
        channels: channels of image folders (1 grey or 3 RGB); the built-in sets are grey or mono.
        data_limit: use only this many examples (quick runs), or all.
        flip: add mirrored copies (image folders).
        data_cache: keep an image folder's decoded images on disk at the training resolution (`ImageFolder`'s cache,
            also off when the environment variable ``FUNCDIFF_FOLDER_CACHE`` is ``0``).
        duration: the clip length in seconds of folders of sound files (cut or padded to it).
        preset: operator preset ("tiny", "cpu-small", "audio-small", "paper-128", "paper-256"; the Fourier neural
            operator's "fno-tiny", "fno-small", "fno-audio").
        operator: the operator family: "infty_diff" (the preset as named) or "fno" (the Fourier neural operator of the
            preset's size: tiny, cpu-small and audio-small become fno-tiny, fno-small and fno-audio; docs/math.md §17).
        resampling: how the operator's kernels and grid read-out change resolution: "bandlimited" (no images of the
            trained band, docs/math.md §16) or "linear" (multilinear, as the first releases did).
        oversample: the Fourier neural operator's blocks run on this many times its grid's cells per axis, so that
            their nonlinear products do not fold into images of the band (docs/math.md §17; ``--operator fno`` only),
            or None for the preset's.
        process: "ddpm" or its registered kind "mollified_ddpm" (the mollified DDPM, docs/math.md §3-6), "flow" or
            "flow_matching" (functional flow matching, docs/math.md §11), "edm" or "mollified_edm" (the mollified EDM,
            docs/math.md §19); other kinds through a run file (--config).
        diffusion_steps: the number T of diffusion steps (ddpm).
        schedule: the noise schedule (ddpm): a registered schedule builder of ``num_steps``, "cosine" (Nichol &
            Dhariwal 2021), "linear" or "constant" (or a user's, registered by a plugin).
        prediction: what the network predicts: "auto" (ddpm, edm: x0; flow: x1), "mollified_eps" or "x0" (ddpm), "x0"
            or "preconditioned" (edm: Karras et al.'s ``c_skip y + c_out F``),
            "velocity" or "x1" (flow). The paper predicts the mollified noise; the data are the defaults here: after
            500 CPU steps of the demo x0 gave clean icon shapes where mollified-eps still gave speckle, and after the
            demo's four minutes a flow predicting x1 gave clean shapes where one predicting the velocity gave speckle
            (the Wiener filter at the end amplifies an undertrained model's high-frequency errors).
        sigma_pixels: the mollifier's standard deviation in grid cells (pixels, or samples for audio) at the training
            resolution (0 = white noise).
        sigma_min: the noise left at the end of the flow (flow).
        sigma_data: the standard deviation of the mollified data, for EDM's preconditioning (edm).
        p_mean: the mean of the training noise levels' logarithm, ``log sigma ~ N(p_mean, p_std^2)`` (edm; docs/math.md
            §19); None: Karras et al.'s -1.2.
        p_std: the standard deviation of the training noise levels' logarithm (edm); None: Karras et al.'s 1.2.
        min_snr_gamma: weight the loss of each step by min-SNR-gamma (Hang et al. 2023; docs/math.md §5), e.g. 5
            (ddpm); None: every step counts the same.
        coupling: how a flow pairs noise with the data of a batch: "independent" or "ot" (minibatch optimal transport,
            straighter paths; docs/math.md §11) (flow).
        point_scheme: how each step's training points are drawn: "uniform" (without replacement) or "stratified"
            (one per block of cells, so they cover the grid evenly).
        sampler: a registered sampler (`funcdiff.sampling.SAMPLERS`): "ddim", "ddpm" or "dpmpp" (DPM-Solver++ 2M)
            (ddpm), "euler" or "heun" (flow), "edm_heun", "edm_dpmpp" or "edm_ddim" (edm), for samples written during training;
            "auto" picks ddim, heun or edm_heun.
        autoencoder: train a diffusion autoencoder (docs/math.md §9): the preset's denoiser conditioned on a latent and a
            `SparseEncoder` of the same preset that makes it, jointly.
        z_dim: the autoencoder's latent size, or the size of the label embeddings (``conditional``).
        conditional: condition on the data's labels (docs/math.md §18): fashion-mnist's class, digits' digit, notes'
            instrument and pitch, an image folder's subfolder; sampled with ``--class`` and ``--guidance-scale``.
        label_dropout: the probability that training drops a label (``conditional``), so that the model also learns
            the data without it, which classifier-free guidance needs.
    """

    data: str = "icons"
    resolution: int = 32
    train_resolutions: tuple[int, ...] = ()
    channels: int = 1
    data_limit: int | None = None
    flip: bool = False
    data_cache: bool = True
    duration: float = 1.0
    preset: str = "cpu-small"
    resampling: Resampling = "bandlimited"
    oversample: int | None = None
    operator: Literal["infty_diff", "fno"] = "infty_diff"
    process: ProcessName = "ddpm"
    diffusion_steps: int = 1000
    schedule: str = "cosine"
    prediction: PredictionName = "auto"
    sigma_pixels: float = 1.0
    sigma_min: float = 0.0
    sigma_data: float = 0.5
    p_mean: float | None = None
    p_std: float | None = None
    min_snr_gamma: float | None = None
    coupling: str = "independent"
    point_scheme: Literal["uniform", "stratified"] = "uniform"
    sampler: str = "auto"
    autoencoder: bool = False
    z_dim: int = 64
    conditional: bool = False
    label_dropout: float = 0.1

    @property
    def family(self) -> str:
        """The process family, ``"ddpm"``, ``"flow"`` or ``"edm"``, whichever name (family or registered kind) ``process`` uses."""
        return PROCESS_KINDS.get(self.process, self.process)

    @property
    def data_resolution(self) -> int:
        """The resolution the data load at: the largest of ``train_resolutions``, else ``resolution``."""
        return max(self.train_resolutions, default=self.resolution)

    def settings(self) -> TrainSettings:
        """The `TrainSettings` of this run, ``train_resolutions`` turned into the ``downscales`` of the data's grid."""
        settings = super().settings()
        if not self.train_resolutions:
            return settings
        return dataclasses.replace(settings, downscales=tuple(self.data_resolution // r for r in self.train_resolutions))

    def checks(self) -> dict[str, bool]:
        """Each checked field's name and whether its value is valid."""
        return {
            **super().checks(),
            "resolution": self.resolution >= 2,
            "operator": self.operator == "infty_diff" or self.preset in FNO_OF or self.preset in FNO_PRESETS,
            "train_resolutions": all(r >= 2 and self.data_resolution % r == 0 for r in self.train_resolutions)
                           and len(set(self.train_resolutions)) == len(self.train_resolutions) and (not self.train_resolutions or self.downscales == (1,)),
            "channels": self.channels in (1, 3),
            "duration": math.isfinite(self.duration) and self.duration > 0,
            "z_dim": self.z_dim >= 1,
            "oversample": self.oversample is None or (self.oversample >= 1 and (self.operator == "fno" or self.preset in FNO_PRESETS)),
            "conditional": not (self.conditional and self.autoencoder),
            "label_dropout": 0 <= self.label_dropout < 1,
            "process": self.family in _PREDICTIONS,
            "schedule": _is_schedule(self.schedule),
            "prediction": self.prediction == "auto" or self.prediction in _PREDICTIONS.get(self.family, ()),
            "sigma_pixels": math.isfinite(self.sigma_pixels) and self.sigma_pixels >= 0,
            "sigma_min": 0 <= self.sigma_min < 1,
            "coupling": self.coupling == "independent" or (self.coupling == "ot" and self.family == "flow"),
            "diffusion_steps": self.diffusion_steps >= 2 and (self.family != "ddpm" or self.sample_steps <= self.diffusion_steps),
            "sample_steps": self.sample_steps >= 1 and (self.family != "ddpm" or self.sample_steps <= self.diffusion_steps),
            "sigma_data": math.isfinite(self.sigma_data) and self.sigma_data > 0,
            "p_mean": self.p_mean is None or (math.isfinite(self.p_mean) and self.family == "edm"),
            "p_std": self.p_std is None or (math.isfinite(self.p_std) and self.p_std > 0 and self.family == "edm"),
            "min_snr_gamma": self.min_snr_gamma is None or (math.isfinite(self.min_snr_gamma) and self.min_snr_gamma > 0 and self.family == "ddpm"),
            "sampler": self.sampler == "auto" or (self.sampler in SAMPLERS and SAMPLERS[self.sampler].protocol is
                                                   _PROTOCOLS.get(self.family)),
        }


def _is_schedule(kind: str) -> bool:
    """Whether ``kind`` names a registered schedule builder that takes the number of steps first."""
    if kind not in registered_kinds():
        return False
    maker = lookup(kind)
    first = next(iter(inspect.signature(maker).parameters), None)
    return first == "num_steps" and inspect.signature(maker).return_annotation is Schedule


def _is_path(name: str) -> bool:
    """Whether ``name`` is written as a path (a separator, or a leading "." or "~"), so it never means a built-in."""
    return "/" in name or "\\" in name or name.startswith((".", "~"))


def _registered_dataset(name: str) -> type[Dataset] | None:
    """The data set class registered under a bare ``name``; None for paths and other names."""
    if _is_path(name) or name not in registered_kinds():
        return None
    maker = lookup(name)
    return maker if isinstance(maker, type) and issubclass(maker, Dataset) else None


SOUND_EXTENSIONS = frozenset({".wav", ".flac", ".ogg"})
"""Files that make a folder a folder of sound files (read by the ``audio-folder`` data set)."""


def folder_kind(folder: Path) -> str:
    """``"audio-folder"`` for a folder holding sound files and no images, else ``"folder"`` (images)."""
    suffixes = {p.suffix.lower() for p in folder.rglob("*") if p.is_file()}
    return "audio-folder" if suffixes & SOUND_EXTENSIONS and not suffixes & IMAGE_EXTENSIONS else "folder"


def dataset_class(name_or_path: str | Path) -> Callable[..., Dataset]:
    """The class `make_dataset` builds for ``name_or_path``: a registered data set, or the image or sound folder class.

    Raises:
        ValueError: if ``name_or_path`` is neither a registered data set nor an existing folder, or is both.
    """
    name = str(name_or_path)
    maker = None if isinstance(name_or_path, Path) else _registered_dataset(name)
    if maker is not None and Path(name).is_dir():
        raise ValueError(f"{name!r} is both a built-in data set and a folder here: write ./{name} for the folder")
    if maker is not None:
        return maker
    folder = Path(name).expanduser()
    if folder.is_dir():
        return lookup(folder_kind(folder))
    raise ValueError(f"data must be a registered data set (e.g. 'icons', 'notes') or an existing folder of images or "
                     f"sound files, got {name!r}")


def make_dataset(name_or_path: str | Path, *, resolution: int | tuple[int, int], split: Split = "train", **options: Any) -> Dataset:
    """The data set ``name_or_path`` at ``resolution``; ``options`` go to its constructor.

    Args:
        name_or_path: a registered data set kind ("icons", "notes", or a user's), or a folder of images or of sound
            files (WAV, FLAC, OGG). A name written as a path (``./icons``, ``data/icons``) is always the folder; a
            bare name that is both a registered kind and a folder here is refused as ambiguous.
        resolution: the side in pixels (for image folders also ``(height, width)``), or the sample rate for audio.
        split: "train" or "test".
        **options: further keyword arguments of the data set's class, e.g. ``limit`` or ``flip``.

    Raises:
        ValueError: if ``name_or_path`` is neither a registered data set nor an existing folder, or ambiguous.
    """
    maker = dataset_class(name_or_path)
    if isinstance(name_or_path, Path) or _registered_dataset(str(name_or_path)) is None:
        return maker(Path(name_or_path).expanduser(), resolution=resolution, split=split, **options)
    return maker(resolution=resolution, split=split, **options)


def make_split(name_or_path: str | Path, *, resolution: int | tuple[int, int], split: Split, channels: int | None = None,
               limit: int | None = None) -> Dataset:
    """`make_dataset` with only the options the data set takes: image folders read with ``channels``, and the first
    ``limit`` examples (by the data set's own ``limit`` where it has one, else a `Subset`)."""
    accepted = inspect.signature(dataset_class(name_or_path)).parameters
    options = {k: v for k, v in {"channels": channels, "limit": limit}.items() if v is not None and k in accepted}
    dataset = make_dataset(name_or_path, resolution=resolution, split=split, **options)
    return dataset if limit is None or "limit" in accepted else Subset(dataset, range(min(limit, len(dataset))))


def build_dataset(config: TrainConfig, *, split: Split = "train") -> Dataset:
    """The data a config names, limited to ``data_limit`` examples (at construction, where the data set takes a
    ``limit``); ``channels``, ``flip``, ``duration`` and ``data_cache`` go to the data sets that take them.

    Raises:
        ValueError: if the data set's channels are not ``config.channels`` (built-in sets are grey or mono).
    """
    accepted = inspect.signature(dataset_class(config.data)).parameters
    options = {"channels": config.channels, "flip": config.flip, "duration": config.duration, "limit": config.data_limit,
               "cache": None if config.data_cache else False}
    dataset = make_dataset(config.data, resolution=config.data_resolution, split=split, **{k: v for k, v in options.items() if k in accepted})
    if example_shape(dataset)[0] != config.channels:
        raise ValueError(f"data {config.data!r} has {example_shape(dataset)[0]} channel(s), not channels={config.channels}; "
                         "channels applies to image folders")
    limited = config.data_limit is None or "limit" in accepted
    dataset = dataset if limited else Subset(dataset, range(min(config.data_limit, len(dataset))))
    return labelled(dataset) if config.conditional else dataset


def build_domain(config: TrainConfig, data_shape: tuple[int, ...], *, duration: float | None = None) -> Domain:
    """The domain of data of ``data_shape = (c, *spatial)``: clips of ``duration`` seconds (an `AudioDomain`, whose
    resolutions are sample rates) when given, else a `GridDomain`."""
    if duration is not None:
        if len(data_shape) != 2:
            raise ValueError(f"a duration is for 1-D clips (c, n), got data of shape {data_shape}")
        return AudioDomain(duration, channels=data_shape[0], scheme=config.point_scheme)
    return GridDomain(ndim=len(data_shape) - 1, channels=data_shape[0], scheme=config.point_scheme)


def build_process(config: TrainConfig, data_shape: tuple[int, ...], *, duration: float | None = None) -> DiffusionProcess:
    """The process a config describes for data of ``data_shape = (c, *spatial)`` (sigma given in cells of the training
    grid, stored in domain units); ``duration`` makes the domain audio (`build_domain`)."""
    domain = build_domain(config, data_shape, duration=duration)
    mollifier = GaussianMollifier(config.sigma_pixels / data_shape[1]) if config.sigma_pixels > 0 else IdentityMollifier()
    prediction = _PREDICTIONS[config.family][0] if config.prediction == "auto" else config.prediction
    if config.family == "edm":
        levels = {name: value for name, value in (("p_mean", config.p_mean), ("p_std", config.p_std)) if value is not None}
        return MollifiedEDM(domain, mollifier, sigma_data=config.sigma_data, prediction=prediction, **levels)
    if config.family == "flow":
        return FunctionalFlowMatching(domain, mollifier, sigma_min=config.sigma_min, prediction=prediction, coupling=config.coupling)
    return MollifiedDDPM(domain, lookup(config.schedule)(config.diffusion_steps), mollifier, prediction, min_snr_gamma=config.min_snr_gamma)


def build_model(config: TrainConfig, data_shape: tuple[int, ...], vocabulary: Vocabulary | None = None) -> nn.Module:
    """The operator preset a config names for data of ``data_shape = (c, *spatial)`` (with ``autoencoder``, the
    preset's diffusion autoencoder; with ``conditional``, conditioned on labels of ``vocabulary``), initialised from
    the config's seed."""
    channels, resolution = data_shape[0], tuple(data_shape[1:])
    preset = FNO_OF.get(config.preset, config.preset) if config.operator == "fno" else config.preset
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.autoencoder:
            return autoencoder_preset(preset, channels=channels, resolution=resolution, z_dim=config.z_dim, resampling=config.resampling,
                                      oversample=config.oversample)
        if config.conditional:
            if vocabulary is None:
                raise ValueError("conditional: the data's label vocabulary is needed to build the model")
            return conditional_preset(preset, channels=channels, resolution=resolution, vocabulary=vocabulary, z_dim=config.z_dim,
                                      dropout=config.label_dropout, ndim=len(resolution), resampling=config.resampling,
                                      oversample=config.oversample)
        return operator_preset(preset, channels=channels, resolution=resolution, resampling=config.resampling, oversample=config.oversample)


def build_run(config: TrainConfig) -> tuple[nn.Module, DiffusionProcess, Dataset]:
    """Model, process and training data of a config, ready for `funcdiff.training.Trainer`: the data at
    ``data_resolution``, the operator and the mollifier's width at ``resolution``."""
    if config.data_resolution % config.resolution:
        raise ValueError(f"resolution {config.resolution} must divide the largest of train_resolutions {config.train_resolutions}")
    data = build_dataset(config)
    shape = example_shape(data)
    if is_scattered(data) and (config.autoencoder or config.operator != "fno" and config.preset not in FNO_PRESETS
                               or config.sigma_pixels != 0 or config.family != "ddpm" or len(config.train_resolutions) > 1):
        raise ValueError(f"data {config.data!r} are observations at scattered points: train them with the Fourier neural "
                         "operator (--operator fno), the DDPM process with the identity mollifier (--sigma-pixels 0), one "
                         "resolution and no autoencoder (docs/math.md §20)")
    factor = config.data_resolution // config.resolution
    if any(s % factor for s in shape[1:]):
        raise ValueError(f"resolution {config.resolution} must divide the data's grid {shape[1:]} at {config.data_resolution}")
    base = (shape[0], *(s // factor for s in shape[1:]))
    vocabulary = data.vocabulary if isinstance(data, Labelled) else None
    model = build_model(config, base, vocabulary)
    return model, build_process(config, base, duration=getattr(_unwrap(data), "duration", None)), data


def _unwrap(data: Dataset) -> Dataset:
    """The data set under `Subset` and `Labelled` wrappers."""
    while isinstance(data, (Subset, Labelled)):
        data = data.dataset if isinstance(data, Subset) else data.fields
    return data
