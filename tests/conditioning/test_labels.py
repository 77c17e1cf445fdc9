"""Label conditioning: labels written by users, the label-conditional operator (embeddings, dropout, round trip),
classifier-free guidance against an oracle, training on labelled data, and the refusals."""

import math

import jaxtyping
import numpy as np
import pytest
import torch
from torch import nn

import funcdiff
from funcdiff import GaussianMollifier, GridDomain, MollifiedDDPM, NeuralOperator, Points, cosine_schedule
from funcdiff.conditioning import UNSPECIFIED, LabelConditioning, check_labels, parse_labels
from funcdiff.data.labels import Labelled, labelled
from funcdiff.operators import LabelConditional, conditional_preset
from funcdiff.registry import build, check_round_trip
from funcdiff.sampling import free_guidance, sample
from funcdiff.training import TrainSettings, Trainer

NOTES = {"instrument": ("piano", "church organ"), "pitch": ("C4", "C#4", "D4")}


def test_labels_are_parsed_by_name_any_case_or_index_and_kinds_left_out_are_any() -> None:
    """One kind: a name or an index; several: ``kind=value`` pairs, the rest `UNSPECIFIED`."""
    assert parse_labels("sandal", {"class": ("Bag", "Sandal")}) == (1,)
    assert parse_labels("0", {"class": ("Bag", "Sandal")}) == (0,)
    assert parse_labels("instrument=Church Organ, pitch=c#4", NOTES) == (1, 1)
    assert parse_labels("pitch=D4", NOTES) == (UNSPECIFIED, 2)


@pytest.mark.parametrize(("text", "message"), [("Sandals", "no class 'Sandals' of 'class'"), ("2", "no class '2'"),
                                               ("colour=red", "no label kind 'colour'")])
def test_unknown_classes_and_kinds_are_refused_naming_them(text: str, message: str) -> None:
    """A class or kind the vocabulary does not hold is refused in one line that names it."""
    with pytest.raises(ValueError, match=message):
        parse_labels(text, {"class": ("Bag", "Sandal")})


def test_several_kinds_must_be_named_and_labels_out_of_range_are_refused() -> None:
    """A bare class for a model of several kinds is ambiguous; label tensors are checked per kind."""
    with pytest.raises(ValueError, match="several kinds"):
        parse_labels("piano", NOTES)
    with pytest.raises(ValueError, match="label 3 of 'pitch' is out of range"):
        check_labels(torch.tensor([[0, 3]]), NOTES)
    with pytest.raises(ValueError, match="label -2 of 'instrument'"):
        check_labels(torch.tensor([[-2, 0]]), NOTES)
    with pytest.raises(ValueError, match=r"shape \(b, 2\)"):
        check_labels(torch.tensor([[0]]), NOTES)


def test_labelled_data_check_their_labels_and_keep_subsets() -> None:
    """Items are ``(field, labels)``; rows outside the classes are refused; `labelled` follows `Subset` indices."""
    fields = [torch.full((1, 4, 4), float(i)) for i in range(5)]
    data = Labelled(fields, np.array([0, 1, 0, 1, 1]), {"class": ("a", "b")})
    field, labels = data[3]
    assert torch.equal(field, fields[3]) and labels.tolist() == [1]
    with pytest.raises(ValueError, match=r"lie in \[0, classes\)"):
        Labelled(fields, np.array([0, 1, 2, 0, 0]), {"class": ("a", "b")})
    with pytest.raises(ValueError, match=r"shape \(5, 1\)"):
        Labelled(fields, np.zeros((4, 1)), {"class": ("a", "b")})

    class Owned(torch.utils.data.Dataset):
        vocabulary, label_rows = {"class": ("a", "b", "c")}, np.array([[2], [1], [0], [1]])

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(1, 2, 2)

    subset = labelled(torch.utils.data.Subset(Owned(), [3, 0]))
    assert subset.labels.tolist() == [[1], [2]] and subset.vocabulary == {"class": ("a", "b", "c")}
    with pytest.raises(ValueError, match="no labels"):
        labelled(fields)


def test_the_operator_drops_labels_in_training_only_and_rebuilds_from_its_config() -> None:
    """In training mode an example loses all labels with probability ``p`` and each kind alone with ``p`` (so a kind is
    "any" in ``p + (1 - p) p`` of the examples, both in ``p + (1 - p) p^2``; within 5 sigma of the binomial); in eval
    mode none does; ``cond=None`` is every label unspecified; ``to_dict`` rebuilds the same architecture."""
    torch.manual_seed(0)
    model = conditional_preset("tiny", channels=1, resolution=8, vocabulary=NOTES, z_dim=8, dropout=0.3)
    labels = torch.tensor([[1, 2]]).repeat(4000, 1)
    null = model.embed(torch.full((1, 2), UNSPECIFIED))
    model.train()
    z = model.embed(labels)
    instrument, pitch = model.embeddings[0].weight, model.embeddings[1].weight
    combos = torch.stack([instrument[i] + pitch[k] for i in (1, 2) for k in (2, 3)])  # kept/dropped instrument x pitch
    match = (z[:, None] - combos[None]).abs().amax(-1).argmin(1)
    assert bool(((z - combos[match]).abs().amax(-1) < 1e-5).all())
    one, both = 0.3 + 0.7 * 0.3, 0.3 + 0.7 * 0.09
    for share, p in (((match >= 2).float().mean(), one), ((match % 2 == 1).float().mean(), one), ((match == 3).float().mean(), both)):
        assert abs(share.item() - p) < 5 * math.sqrt(p * (1 - p) / 4000), (share, p)
    model.eval()
    assert torch.equal(model.embed(labels[:3]), model.embeddings[0].weight[1] + model.embeddings[1].weight[2] + torch.zeros(3, 8))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    torch.testing.assert_close(model.forward_dense(x, t), model.operator.forward_dense(x, t, null.expand(2, -1)))
    dense = model.forward_dense(x, t, labels[:2])
    torch.testing.assert_close(model(Points.from_dense(x), t, labels[:2]), Points.from_dense(dense).values, atol=1e-5, rtol=1e-5)
    check_round_trip(model, "operator")
    rebuilt = build(model.to_dict())
    assert isinstance(rebuilt, LabelConditional) and rebuilt.vocabulary == NOTES and rebuilt.dropout == 0.3
    jaxtyping.config.update("jaxtyping_disable", True)  # as outside the tests: the explicit check answers
    try:
        with pytest.raises(ValueError, match="integer labels"):
            model.forward_dense(x, t, torch.zeros(2, 2))
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


@funcdiff.register("test-label-oracle")
class LabelOracle(nn.Module, NeuralOperator, LabelConditioning):
    """Predicts the data ``x0 = label + 1`` everywhere, or 0 for an unspecified label: a known conditional and
    unconditional model."""

    reference_shape = (8, 8)
    vocabulary = {"class": ("a", "b", "c")}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def _value(self, cond: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        value = torch.zeros(like.shape[0]) if cond is None else torch.where(cond[:, 0] >= 0, cond[:, 0] + 1.0, 0.0)
        return value.view(-1, *[1] * (like.ndim - 1)).expand_as(like).to(like.dtype)

    def forward(self, points, t, cond=None):
        return self._value(cond, points.values)

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        self.calls.append(x.shape[0])
        return self._value(cond, x)

    def to_dict(self):
        return {"kind": "test-label-oracle"}


@funcdiff.register("test-constant-oracle")
class ConstantOracle(nn.Module, NeuralOperator):
    """Predicts the data ``x0 = value[i]`` everywhere for example ``i``."""

    reference_shape = (8, 8)

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = values

    def forward(self, points, t, cond=None):
        return torch.tensor(self.values).view(-1, 1, 1).expand_as(points.values).clone()

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        return torch.tensor(self.values, dtype=x.dtype).view(-1, 1, 1, 1).expand_as(x).clone()

    def to_dict(self):
        return {"kind": "test-constant-oracle", "values": self.values}


def test_guided_sampling_equals_the_extrapolated_prediction() -> None:
    """Under guidance ``w`` the sampler sees ``u + w (c - u)``: with the oracle's ``c = label + 1`` and ``u = 0``, the
    same as a model predicting ``w (label + 1)``, from one batched call per step (a single batch at ``w = 1``, the
    conditional model)."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(50), GaussianMollifier(0.05), prediction="x0")
    oracle, labels = LabelOracle(), torch.tensor([[0], [2]])
    for scale in (0.0, 1.0, 2.5):
        guided = sample(oracle, process, 8, batch=2, steps=5, cond=labels, guidance_scale=scale, generator=torch.Generator().manual_seed(1))
        values = [scale * 1.0, scale * 3.0]
        expected = sample(ConstantOracle(values), process, 8, batch=2, steps=5, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(guided, expected)
    assert oracle.calls.count(2) == 5 and set(oracle.calls) == {2, 4}
    plain = sample(oracle, process, 8, batch=2, steps=5, cond=labels, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(plain, sample(ConstantOracle([1.0, 3.0]), process, 8, batch=2, steps=5, generator=torch.Generator().manual_seed(1)))


def test_guidance_needs_a_label_conditional_model_labels_and_labels_in_range() -> None:
    """A guidance scale for another model, without labels, or with a label outside the classes is refused."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(50), GaussianMollifier(0.05))
    with pytest.raises(ValueError, match="needs a label-conditional model"):
        sample(ConstantOracle([0.0]), process, 8, batch=1, steps=2, guidance_scale=2.0)
    with pytest.raises(ValueError, match="needs the labels"):
        sample(LabelOracle(), process, 8, batch=1, steps=2, guidance_scale=2.0)
    with pytest.raises(ValueError, match="label 3 of 'class' is out of range"):
        sample(LabelOracle(), process, 8, batch=1, steps=2, cond=torch.tensor([[3]]))
    with pytest.raises(ValueError, match="label 5"):
        free_guidance(LabelOracle(), LabelOracle().forward_dense, torch.tensor([[5]]), 2.0)
    with pytest.raises(ValueError, match="one row of labels per sample: 4, got 1"):
        sample(LabelOracle(), process, 8, batch=4, steps=2, cond=torch.tensor([[1]]), guidance_scale=2.0)


def test_a_label_conditional_model_trains_on_labelled_data_and_samples_its_examples_labels(tmp_path) -> None:
    """The trainer passes each batch's labels (the model's embeddings learn), its samples use the first examples'
    labels; data without labels, or labelled otherwise, are refused."""
    torch.manual_seed(0)
    fields = [torch.full((1, 8, 8), -0.5 if i % 2 else 0.5) for i in range(8)]
    data = Labelled(fields, np.arange(8) % 2, {"class": ("bright", "dark")})
    model = conditional_preset("tiny", channels=1, resolution=8, vocabulary=data.vocabulary, z_dim=8)
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(20), GaussianMollifier(0.05))
    settings = TrainSettings(steps=3, batch_size=4, lr=1e-2, log_every=1, checkpoint_every=0, sample_count=3, sample_steps=2,
                             out_dir=str(tmp_path / "run"))
    before = model.embeddings[0].weight.detach().clone()
    trainer = Trainer(model, process, data, settings, progress=False)
    assert trainer._sample_latents().tolist() == [[0], [1], [0]]
    trainer.run()
    assert not torch.equal(before[:2], model.embeddings[0].weight[:2])
    assert trainer.write_samples()
    with pytest.raises(ValueError, match="needs data labelled alike"):
        Trainer(model, process, fields, settings, overwrite=True, progress=False)
    with pytest.raises(ValueError, match="needs data labelled alike"):
        Trainer(model, process, Labelled(fields, np.zeros(8), {"class": ("x",)}), settings, overwrite=True, progress=False)


def test_default_sampling_labels_spread_each_kind_and_flags_are_refused_for_plain_models() -> None:
    """Without ``--class``: each kind cycles through its classes, or spreads over them when there are fewer samples;
    ``--class`` values are taken in turn; ``--class`` or ``--guidance-scale`` for a plain model is refused."""
    from funcdiff.commands.common import SampleOptions, sampling_labels
    from funcdiff.operators import operator_preset

    model = conditional_preset("tiny", channels=1, resolution=8, ndim=1, vocabulary={"i": tuple("abcd"), "p": tuple("0123456789")}, z_dim=4)
    assert sampling_labels(model, SampleOptions(num=5)).tolist() == [[0, 0], [1, 2], [2, 4], [3, 6], [0, 8]]
    assert sampling_labels(model, SampleOptions(num=12))[:, 1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert sampling_labels(model, SampleOptions(num=3, classes=("p=3", "i=b"))).tolist() == [[UNSPECIFIED, 3], [1, UNSPECIFIED], [UNSPECIFIED, 3]]
    plain = operator_preset("tiny", channels=1, resolution=8)
    assert sampling_labels(plain, SampleOptions()) is None
    with pytest.raises(ValueError, match="label-conditional checkpoints"):
        sampling_labels(plain, SampleOptions(guidance_scale=2.0))
