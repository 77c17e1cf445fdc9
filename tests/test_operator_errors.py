"""A user's operator that returns the wrong shape is a ValueError saying what it returned and what was expected, in
training and in sampling, alone and as the decoder of a diffusion autoencoder; never a broadcasting or type-check
error from deep inside."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import funcdiff
from funcdiff import FunctionalFlowMatching, GaussianMollifier, GridDomain, MollifiedDDPM, NeuralOperator, cosine_schedule
from funcdiff.operators import DiffusionAutoencoder, SparseEncoder, preset_config
from funcdiff.sampling import sample
from funcdiff.training import TrainSettings, Trainer

WRONG = ("one channel too many", "no channel axis")


@funcdiff.register("test-wrong-shape-op")
class WrongShapeOperator(nn.Module, NeuralOperator):
    """A pointwise linear map that goes ``wrong`` (one of `WRONG`) on points (``on_points``) or on the grid
    (otherwise), and is right in the other call. Takes and ignores a latent."""

    def __init__(self, wrong: str, on_points: bool) -> None:
        super().__init__()
        self.wrong, self.on_points = wrong, on_points
        self.linear = nn.Linear(1, 2)
        self.reference_shape = (16, 16)

    def _values(self, values: torch.Tensor, wrong: bool) -> torch.Tensor:
        """The output with channels last: two channels or none where wrong, else one."""
        out = self.linear(values)
        return out[..., :1] if not wrong else out if self.wrong == "one channel too many" else out[..., 0]

    def forward(self, points, t, cond=None):
        return self._values(points.values, self.on_points)

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        out = self._values(x.movedim(1, -1), not self.on_points)
        return out if out.ndim < x.ndim else out.movedim(-1, 1)

    def to_dict(self):
        return {"kind": "test-wrong-shape-op", "wrong": self.wrong, "on_points": self.on_points}


PROCESSES = {
    "ddpm": lambda: MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.05)),
    "flow": lambda: FunctionalFlowMatching(GridDomain(2, 1), GaussianMollifier(0.05)),
}


def returned(wrong: str, shape: tuple[int, ...], axis: int) -> str:
    """What a ``wrong`` operator returns where ``shape`` (channels on ``axis``) is expected, as a pattern."""
    dims = list(shape)
    if wrong == "no channel axis":
        del dims[axis]
    else:
        dims[axis] += 1
    return re.escape(str(tuple(dims)))


def train_one_step(model: nn.Module, process, tmp_path: Path) -> None:
    """One training step of ``model`` on zeros at 16 px, 64 points per example, no samples."""
    settings = TrainSettings(points=64, batch_size=2, steps=1, checkpoint_every=0, out_dir=str(tmp_path / "run"))
    Trainer(model, process, [torch.zeros(1, 16, 16)] * 4, settings, progress=False).run()


@pytest.mark.parametrize("process", PROCESSES)
@pytest.mark.parametrize("wrong", WRONG)
def test_a_wrong_shape_on_points_stops_training_with_a_value_error(wrong: str, process: str, tmp_path: Path) -> None:
    """The loss sees the operator's output on the drawn points: the error names it and gives both shapes."""
    model = WrongShapeOperator(wrong, on_points=True)
    with pytest.raises(ValueError, match=rf"WrongShapeOperator returned shape {returned(wrong, (2, 64, 1), -1)} .*expected \(2, 64, 1\)"):
        train_one_step(model, PROCESSES[process](), tmp_path)


@pytest.mark.parametrize("process", PROCESSES)
@pytest.mark.parametrize("wrong", WRONG)
def test_a_wrong_shape_on_the_grid_stops_sampling_with_a_value_error(wrong: str, process: str) -> None:
    """The samplers see the operator's output on the whole grid: the error names it and gives both shapes."""
    model = WrongShapeOperator(wrong, on_points=False)
    with pytest.raises(ValueError, match=rf"WrongShapeOperator returned shape {returned(wrong, (2, 1, 16, 16), 1)} .*expected \(2, 1, 16, 16\)"):
        sample(model, PROCESSES[process](), 16, batch=2, steps=2)


def autoencoder(wrong: str, on_points: bool) -> DiffusionAutoencoder:
    """The user's operator as the decoder of a diffusion autoencoder with the built-in encoder."""
    encoder = SparseEncoder(preset_config("tiny", channels=1, resolution=16, z_dim=4))
    return DiffusionAutoencoder(WrongShapeOperator(wrong, on_points=on_points), encoder)


@pytest.mark.parametrize("wrong", WRONG)
def test_a_decoder_of_the_wrong_shape_is_named_in_training(wrong: str, tmp_path: Path) -> None:
    """As a decoder, the operator's wrong output on points is a ValueError that names it (it was jaxtyping's
    type-check error on the autoencoder's return value)."""
    expected = rf"^the decoder WrongShapeOperator returned shape {returned(wrong, (2, 64, 1), -1)} on points, expected \(2, 64, 1\)$"
    with pytest.raises(ValueError, match=expected):
        train_one_step(autoencoder(wrong, on_points=True), PROCESSES["ddpm"](), tmp_path)


@pytest.mark.parametrize("wrong", WRONG)
def test_a_decoder_of_the_wrong_shape_is_named_in_sampling(wrong: str) -> None:
    """The same on the grid, when sampling given a latent."""
    expected = rf"^the decoder WrongShapeOperator returned shape {returned(wrong, (2, 1, 16, 16), 1)} on the grid, expected \(2, 1, 16, 16\)$"
    with pytest.raises(ValueError, match=expected):
        sample(autoencoder(wrong, on_points=False), PROCESSES["ddpm"](), 16, batch=2, steps=2, cond=torch.zeros(2, 4))
