"""Per-class evaluation of a label-conditional image model under classifier-free guidance (docs/math.md §18): each
class's samples scored against held-out images of that class, and a classifier trained on the real training split
asked which class they show, at each guidance scale (`funcdiff eval --per-class`)."""

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from funcdiff._typing import Float, Int, Tensor
from funcdiff.conditioning import UNSPECIFIED, LabelConditioning
from funcdiff.data.array_cache import digest
from funcdiff.data.icons import default_cache_dir
from funcdiff.data.labels import labelled
from funcdiff.domains.io import image_grid, write_png
from funcdiff.factory import make_split
from funcdiff.metrics.classifier import ImageClassifier, classify, train_classifier
from funcdiff.metrics.pyramid import swd_per_level
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.sampling import sample
from funcdiff.training.plots import line_chart


@dataclass(frozen=True)
class ClassRow:
    """One class at one guidance scale: the mean SWD x 1e3 over pyramid levels of its samples against held-out images
    of the class, the floor (as many training images of the class, scored alike), and the share of its samples that
    the classifier assigns to it."""

    scale: float
    label: str
    swd: float
    floor: float
    accuracy: float


@dataclass(frozen=True)
class ClassStudy:
    """The rows of every class and scale, the kind of label they are classes of, and the classifier's accuracy on the
    real held-out images (what its verdicts on samples are worth)."""

    kind: str
    classifier_accuracy: float
    rows: tuple[ClassRow, ...]

    @property
    def scales(self) -> tuple[float, ...]:
        """The guidance scales, in the order sampled."""
        return tuple(dict.fromkeys(row.scale for row in self.rows))

    def mean(self, scale: float, field: str) -> float:
        """The mean over classes of ``field`` ("swd", "floor", "accuracy") at ``scale``."""
        return float(np.mean([getattr(row, field) for row in self.rows if row.scale == scale]))

    def to_dict(self) -> dict[str, object]:
        """The study as JSON-ready data."""
        return {"kind": self.kind, "classifier_accuracy": self.classifier_accuracy, "rows": [dataclasses.asdict(r) for r in self.rows]}


def class_images(data: str | Path, resolution: int, split: str, *, channels: int, limit: int | None = None
                 ) -> tuple[Float[Tensor, "n c h w"], Int[Tensor, " n"], tuple[str, ...], str]:
    """A labelled image data set's images (its first ``limit``, when given; image folders read with ``channels``),
    their classes of its first kind, the class names and the kind."""
    dataset = labelled(make_split(data, resolution=resolution, split=split, channels=channels, limit=limit))
    kind, names = next(iter(dataset.vocabulary.items()))
    images = torch.stack([dataset.fields[i] for i in range(len(dataset))]).float()
    return images, dataset.labels[:, 0], names, kind


def trained_classifier(data: str | Path, resolution: int, *, channels: int, limit: int | None = None, seed: int = 0,
                       cache_dir: Path | None = None, train: tuple[Tensor, Tensor, tuple[str, ...], str] | None = None,
                       ) -> tuple[nn.Module, float]:
    """An `ImageClassifier` trained on the training split of ``data`` at ``resolution``, and its accuracy on the test
    split; cached (safetensors and JSON) in ``<cache_dir>/classifiers``, keyed by the data, resolution, limit and seed.
    ``train``: the training split as `class_images` gives it, when the caller has it already."""
    images, labels, names, _ = train or class_images(data, resolution, "train", channels=channels, limit=limit)
    root = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / "classifiers"
    name = re.sub(r"[^\w.-]", "_", Path(str(data)).name)[:40]
    key = digest(str(Path(str(data)).expanduser().resolve()) if Path(str(data)).expanduser().is_dir() else str(data),
                 resolution, limit, seed, len(images), names)[:12]
    weights, meta = root / f"{name}-{resolution}px-{key}.safetensors", root / f"{name}-{resolution}px-{key}.json"
    if weights.is_file() and meta.is_file():
        classifier = ImageClassifier(images.shape[1], len(names))
        classifier.load_state_dict(load_file(weights))
        return classifier.eval(), float(json.loads(meta.read_text())["test_accuracy"])
    classifier = train_classifier(images, labels, len(names), seed=seed)
    test_images, test_labels, _, _ = class_images(data, resolution, "test", channels=channels, limit=limit)
    accuracy = float((classify(classifier, test_images) == test_labels).float().mean())
    root.mkdir(parents=True, exist_ok=True)
    save_file(classifier.state_dict(), weights)
    meta.write_text(json.dumps({"data": str(data), "resolution": resolution, "test_accuracy": accuracy, "classes": list(names)}))
    return classifier, accuracy


def _class_subset(images: Tensor, labels: Tensor, label: int, num: int, seed: int) -> Tensor:
    """``num`` (or all, if fewer) seeded random images of class ``label``."""
    members = torch.nonzero(labels == label).flatten()
    order = members[torch.randperm(len(members), generator=torch.Generator().manual_seed(seed))]
    return images[order[:num]]


def class_study(
    model: NeuralOperator,
    process: DiffusionProcess,
    data: str | Path,
    *,
    scales: Sequence[float],
    num: int,
    steps: int,
    out_dir: str | Path,
    sampling: dict[str, object] | None = None,
    seed: int = 0,
    device: str = "cpu",
    limit: int | None = None,
    chunk_points: int | None = None,
) -> tuple[ClassStudy, Path]:
    """Sample ``num`` fields of every class of the model's first kind of label at the training resolution under each
    guidance scale (the same noise for every class and scale), score them per class, and write ``report.md``,
    ``scores.json``, ``guidance.png`` and one ``classes-w<scale>.png`` (a row per class) into ``out_dir``.

    ``sampling`` holds `funcdiff.sampling.sample`'s ``sampler``, ``grid`` and ``options``.

    Raises:
        ValueError: if the model is not label-conditional, its domain is not square images, the data's classes differ
            from the model's, or a class has fewer than 2 held-out images.
    """
    if not isinstance(model, LabelConditioning):
        raise ValueError(f"--per-class evaluates a label-conditional model (train --conditional); this is a {type(model).__name__}")
    reference = tuple(model.reference_shape)
    if len(reference) != 2 or reference[0] != reference[1]:
        raise ValueError(f"--per-class scores square images; this model's grid is {reference}")
    side = reference[0]
    channels = process.domain.channels
    train = class_images(data, side, "train", channels=channels, limit=limit)
    classifier, accuracy = trained_classifier(data, side, channels=channels, limit=limit, seed=seed, train=train)
    test_images, test_labels, names, kind = class_images(data, side, "test", channels=channels, limit=limit)
    train_images, train_labels, _, _ = train
    vocabulary = model.vocabulary
    if next(iter(vocabulary.items())) != (kind, names):
        raise ValueError(f"the data's {kind!r} classes {names} are not the model's {next(iter(vocabulary.items()))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, generator = [], torch.Generator(device=device)
    for scale in scales:
        pictures = []
        for label, name in enumerate(names):
            held_out = _class_subset(test_images, test_labels, label, num, seed)
            if len(held_out) < 2:
                raise ValueError(f"class {name!r} has {len(held_out)} held-out images; per-class scores need 2 or more")
            cond = torch.tensor([[label] + [UNSPECIFIED] * (len(vocabulary) - 1)] * num, device=device)
            generator.manual_seed(seed)
            samples = sample(model, process, side, batch=num, steps=steps, generator=generator, device=device, cond=cond,
                             guidance_scale=scale, chunk_points=chunk_points, **(sampling or {})).cpu()
            floor_set = _class_subset(train_images, train_labels, label, num, seed)
            rows.append(ClassRow(scale, name, float(np.mean(swd_per_level(samples, held_out, seed=seed))),
                                 float(np.mean(swd_per_level(floor_set, held_out, seed=seed))),
                                 float((classify(classifier, samples) == label).float().mean())))
            pictures.append(samples[:8])
        write_png(image_grid(torch.cat(pictures), nrow=min(8, num)), out / f"classes-w{scale:g}.png")
    study = ClassStudy(kind, accuracy, tuple(rows))
    (out / "scores.json").write_text(json.dumps(study.to_dict(), indent=2))
    line_chart({"SWD x 1e3 / floor": (list(study.scales), [study.mean(s, "swd") / study.mean(s, "floor") for s in study.scales]),
                "classified as asked x 10": (list(study.scales), [10 * study.mean(s, "accuracy") for s in study.scales])},
               out / "guidance.png", title="classifier-free guidance: fidelity and quality", x_label="guidance scale", log_y=False, size=(640, 360))
    path = out / "report.md"
    path.write_text(class_report(study, data, num))
    return study, path


def class_report(study: ClassStudy, data: str | Path, num: int) -> str:
    """The markdown report of a `ClassStudy`."""
    base = study.scales[0]
    lines = ["| guidance scale | SWD x 1e3 (mean over classes) | x floor | x first scale | classified as asked |",
             "|---|---|---|---|---|"]
    for s in study.scales:
        swd = study.mean(s, "swd")
        lines.append(f"| {s:g} | {swd:.1f} | {swd / study.mean(s, 'floor'):.2f} | {swd / study.mean(base, 'swd'):.2f} | "
                     f"{100 * study.mean(s, 'accuracy'):.0f} % |")
    header = "| class | " + " | ".join(f"SWD w={s:g}" for s in study.scales) + " | floor | " + \
             " | ".join(f"asked w={s:g}" for s in study.scales) + " |"
    per_class = [header, "|" + "---|" * (2 * len(study.scales) + 2)]
    for name in dict.fromkeys(row.label for row in study.rows):
        mine = {row.scale: row for row in study.rows if row.label == name}
        per_class.append(f"| {name} | " + " | ".join(f"{mine[s].swd:.1f}" for s in study.scales) + f" | {mine[base].floor:.1f} | "
                         + " | ".join(f"{100 * mine[s].accuracy:.0f} %" for s in study.scales) + " |")
    pictures = "\n".join(f"![guidance scale {s:g}](classes-w{s:g}.png)" for s in study.scales)
    return f"""# Per-class evaluation under classifier-free guidance

- data: {data}; {num} samples per class and scale, the same noise for every class and scale
- classes: the {study.kind!r} labels; a classifier trained on the real training split scores {100 * study.classifier_accuracy:.1f} %
  on the real held-out split

SWD: sliced Wasserstein distance x 1e3 on 7 x 7 patches, mean over Laplacian levels, of each class's samples against
as many held-out images of that class (lower is better); the floor scores as many real training images of the class
the same way. "Classified as asked": the share of samples the classifier assigns to the class they were drawn for.

{chr(10).join(lines)}

{chr(10).join(per_class)}

![fidelity and quality against the guidance scale](guidance.png)

Each picture: one row per class (its first 8 samples), at one guidance scale.

{pictures}
"""


def describe_classes(study: ClassStudy) -> str:
    """A line per guidance scale for the terminal."""
    return "\n".join(f"guidance {s:g}: SWD {study.mean(s, 'swd'):.1f} ({study.mean(s, 'swd') / study.mean(s, 'floor'):.2f}x floor), "
                     f"{100 * study.mean(s, 'accuracy'):.0f} % classified as asked" for s in study.scales) + \
        f"\n(the classifier scores {100 * study.classifier_accuracy:.1f} % on real held-out images)"
