"""The sampling estimate: extrapolation from small grids, and the command line's refusal of huge runs without --yes."""

import math
import time

import pytest
import torch
from torch import nn

from funcdiff.domains.grid import GridDomain
from funcdiff.mollifiers.gaussian import IdentityMollifier
from funcdiff.processes.mollified import MollifiedDDPM
from funcdiff.processes.schedules import cosine_schedule
from funcdiff.training.estimate import Estimate, _resident_bytes, estimate_sampling, estimate_training_step

SECONDS_PER_POINT = 1e-5  # the sleep dominates the buffer fill, even on a loaded machine
BYTES_PER_POINT = 400


class Linear(nn.Module):
    """A stand-in operator whose evaluation costs a known time and memory per point."""

    reference_shape = (8, 8)

    def forward(self, points, t, cond=None):
        """Not used by the estimate."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Not used by the estimate."""
        return {"kind": "linear-cost"}

    def forward_dense(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, *, chunk_points: int | None = None) -> torch.Tensor:
        """Sleep and touch a buffer in proportion to the number of points."""
        points = x[0, 0].numel()
        buffer = torch.empty(points * BYTES_PER_POINT // 4)
        buffer[::1024] = 1.0  # one write per 4 KiB page makes it resident, at almost no cost in time
        time.sleep(points * SECONDS_PER_POINT)
        return x + buffer[:1].sum() * 0


def test_the_estimate_extrapolates_time_and_memory_in_the_number_of_points() -> None:
    """For an operator that is linear in the points, the estimate at 2048 px is within 35 % of the truth."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    points, resident = 2048**2, _resident_bytes()
    estimate = estimate_sampling(Linear(), process, (2048, 2048), batch=2, evaluations=10)
    assert estimate.seconds == pytest.approx(points * SECONDS_PER_POINT * 2 * 10, rel=0.35)
    sampler_fields = 8 * 2 * points * 4
    assert estimate.peak_bytes - resident - sampler_fields == pytest.approx(points * BYTES_PER_POINT * 2, rel=0.25)


def test_describe_picks_the_unit() -> None:
    """Seconds under two minutes, minutes under two hours, then hours."""
    assert Estimate(42.0, 1.5e9).describe() == "about 42 s and 1.5 GB"
    assert Estimate(600.0, 0.0).describe() == "about 10.0 min and 0.0 GB"
    assert Estimate(4 * 3600.0, 2e10).describe() == "about 4.0 h and 20.0 GB"


def test_huge_sampling_needs_yes(tmp_path, monkeypatch, capsys) -> None:
    """Above an hour the sample command refuses without --yes and names it; small resolutions are not probed."""
    from funcdiff.commands import common

    calls = []

    def fake(model, process, shape, **options):
        calls.append(shape)
        return Estimate(5 * 3600.0, 1e9)

    monkeypatch.setattr(common, "estimate_sampling", fake)
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    options = common.SampleOptions(resolutions=(16, 32, 4096), num=1)
    with pytest.raises(ValueError, match="4096 px would take about 5.0 h.*--yes"):
        common.check_sampling_estimates(options, "cpu", False, Linear(), process)
    assert calls == [(4096, 4096)] and "estimated about 5.0 h" in capsys.readouterr().out
    common.check_sampling_estimates(options, "cpu", True, Linear(), process)
    assert math.prod(calls[-1]) == 4096**2


def test_a_training_step_estimate_leaves_the_run_untouched() -> None:
    """Measuring a training step changes neither the weights, nor their gradients, nor the global random state."""
    from funcdiff.operators import operator_preset

    torch.manual_seed(0)
    model = operator_preset("tiny", channels=1, resolution=16, ndim=2)
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    estimate = estimate_training_step(model, process, (1, 16, 16), batch=2, points=0.5)
    assert 0 < estimate.seconds < 60 and estimate.peak_bytes > 0
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_huge_training_needs_yes(monkeypatch, capsys) -> None:
    """Above 128 x 128 points the train command prints the estimate; over a day it refuses without --yes."""
    from funcdiff.commands import train
    from funcdiff.training import TrainSettings

    monkeypatch.setattr(train, "estimate_training_step", lambda *a, **k: Estimate(10.0, 1e9))
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    settings = TrainSettings(steps=100_000)
    with pytest.raises(ValueError, match="about 11.6 d|about 277.8 h"):
        train.check_training_estimate(False, settings, Linear(), process, (1, 256, 256), "cpu")
    assert "10.00 s per step" in capsys.readouterr().out
    train.check_training_estimate(True, settings, Linear(), process, (1, 256, 256), "cpu")
    train.check_training_estimate(False, settings, Linear(), process, (1, 128, 128), "cpu")  # small grids are not measured
