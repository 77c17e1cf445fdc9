"""Per-class evaluation: the classifier learns separable classes, and `class_study` credits a model that draws
exactly the class asked for (an oracle), and no more than chance to one that ignores the labels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import funcdiff
from funcdiff import GaussianMollifier, GridDomain, MollifiedDDPM, NeuralOperator, cosine_schedule
from funcdiff.conditioning import LabelConditioning
from funcdiff.evaluation.classes import class_study, trained_classifier
from funcdiff.metrics.classifier import classify, train_classifier
from funcdiff.operators import operator_preset


def halves(label: int, side: int = 16) -> torch.Tensor:
    """Class 0 ("left"): the left half white; class 1 ("right"): the right half; grey fields ``(1, side, side)``."""
    field = -torch.ones(1, side, side)
    if label == 0:
        field[..., : side // 2] = 1
    else:
        field[..., side // 2 :] = 1
    return field


@pytest.fixture
def half_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """60 noisy 16 px images in the subfolders ``left`` and ``right``; the cache under ``tmp_path``."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for i in range(60):
        label = i % 2
        pixels = (halves(label)[0].numpy() + rng.normal(0, 0.3, (16, 16))).clip(-1, 1)
        path = tmp_path / "halves" / ("left", "right")[label] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint((pixels + 1) * 127.5).astype(np.uint8), "L").save(path)
    return tmp_path / "halves"


def test_the_classifier_learns_separable_classes() -> None:
    """Bright-left against bright-right images with noise: all held-out ones classified right; bad labels refused."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.stack([halves(int(k)) for k in labels]) + 0.3 * torch.randn(200, 1, 16, 16, generator=generator)
    classifier = train_classifier(images[:150], labels[:150], 2, epochs=5, batch_size=32)
    assert bool((classify(classifier, images[150:]) == labels[150:]).all())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        train_classifier(images[:4], torch.tensor([0, 1, 2, 0]), 2)


@funcdiff.register("test-halves-oracle")
class HalvesOracle(nn.Module, NeuralOperator, LabelConditioning):
    """Predicts ``x0`` = the class's template (``blind``: a grey field whatever the label)."""

    reference_shape = (16, 16)
    vocabulary = {"class": ("left", "right")}

    def __init__(self, blind: bool = False) -> None:
        super().__init__()
        self.blind = blind

    def forward(self, points, t, cond=None):
        raise NotImplementedError

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        if self.blind or cond is None:
            return torch.zeros_like(x)
        return torch.stack([halves(int(k)) if k >= 0 else torch.zeros(1, 16, 16) for k in cond[:, 0]]).to(x.dtype)

    def to_dict(self):
        return {"kind": "test-halves-oracle", "blind": self.blind}


def test_the_study_credits_the_class_asked_for_and_only_that(half_folder: Path, tmp_path: Path) -> None:
    """The oracle's samples are classified as asked at every scale and lie nearer their class than the blind model's;
    the classifier is cached; the report has a row per class and a picture per scale."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(50), GaussianMollifier(1 / 16), prediction="x0")
    study, path = class_study(HalvesOracle(), process, str(half_folder), scales=(1.0, 2.0), num=4, steps=5, out_dir=tmp_path / "oracle")
    assert study.classifier_accuracy == 1.0 and [row.accuracy for row in study.rows] == [1.0] * 4
    blind, _ = class_study(HalvesOracle(blind=True), process, str(half_folder), scales=(1.0,), num=4, steps=5, out_dir=tmp_path / "blind")
    assert blind.mean(1.0, "accuracy") == 0.5 and study.mean(1.0, "swd") < blind.mean(1.0, "swd") / 2
    text = path.read_text()
    assert "| left |" in text and "| right |" in text and (tmp_path / "oracle" / "classes-w2.png").is_file()
    assert len(list((tmp_path / "cache" / "classifiers").glob("*.safetensors"))) == 1
    cached, accuracy = trained_classifier(str(half_folder), 16, channels=1)
    assert accuracy == 1.0 and isinstance(cached, nn.Module)
    with pytest.raises(ValueError, match="label-conditional"):
        class_study(operator_preset("tiny", channels=1, resolution=16), process, str(half_folder), scales=(1.0,), num=2, steps=2, out_dir=tmp_path / "x")


def test_real_sets_read_folders_with_the_models_channels_and_limit_any_data_set(half_folder: Path) -> None:
    """`make_split` gives a grey folder its channels and limits a data set without a ``limit`` of its own by a
    `Subset`; `real_sets` draws grey reference and floor sets from it."""
    from funcdiff.evaluation import real_sets
    from funcdiff.factory import make_split

    limited = make_split(str(half_folder), resolution=16, split="train", channels=1, limit=3)
    assert len(limited) == 3 and limited[0].shape == (1, 16, 16)
    reference, other = real_sets(str(half_folder), 16, 2, channels=1)
    assert reference.shape == other.shape == (2, 1, 16, 16)
