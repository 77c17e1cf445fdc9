"""Clear errors at the edge: a model output of the wrong shape, an empty batch or point set, and NaN or Inf from the
model are refused before they broadcast into a finite loss or come back as NaN samples."""

import math
import re

import pytest
import torch

from funcdiff import (
    FunctionalFlowMatching,
    GaussianMollifier,
    GridDomain,
    InpaintingGuidance,
    MollifiedDDPM,
    cosine_schedule,
    encode_ddim,
    sample_ddim,
    sample_ddpm,
    sample_euler,
    sample_heun,
)
from tests.helpers import grid_of

DDPM = MollifiedDDPM(GridDomain(1, 2), cosine_schedule(20), GaussianMollifier(0.1))
FLOW = FunctionalFlowMatching(GridDomain(1, 2), GaussianMollifier(0.1))
X = torch.rand(3, 2, 8) * 2 - 1


def denoisers():
    """Each sampler as ``run(model, y)`` with the options it needs."""
    return {
        "ddpm": lambda model, y: sample_ddpm(model, y, grid_of(DDPM, 4), process=DDPM, reference_shape=(8,), generator=torch.Generator().manual_seed(0)),
        "ddim": lambda model, y: sample_ddim(model, y, grid_of(DDPM, 4), process=DDPM, reference_shape=(8,)),
        "ddim-eta": lambda model, y: sample_ddim(model, y, grid_of(DDPM, 4), process=DDPM, reference_shape=(8,), eta=1.0),
        "guided": lambda model, y: sample_ddim(model, y, grid_of(DDPM, 4), process=DDPM, reference_shape=(8,), guidance=InpaintingGuidance(X, torch.ones(1, 1, 8), DDPM.mollifier)),
        "encode": lambda model, y: encode_ddim(model, y, grid_of(DDPM, 4), process=DDPM),
        "euler": lambda model, y: sample_euler(model, y, grid_of(FLOW, 4), process=FLOW),
        "heun": lambda model, y: sample_heun(model, y, grid_of(FLOW, 4), process=FLOW),
    }


samplers = pytest.mark.parametrize("run", list(denoisers().values()), ids=list(denoisers()))


@pytest.mark.parametrize("process", [DDPM, FLOW], ids=["ddpm", "flow"])
@pytest.mark.parametrize(
    "wrong", [lambda v: v[..., :1], lambda v: v[:1], lambda v: v.mean(1, keepdim=True), lambda v: v[..., None]],
    ids=["channels", "batch", "points", "extra-axis"],
)
def test_loss_refuses_a_model_output_of_the_wrong_shape(process, wrong) -> None:
    """An output that would broadcast against the target is refused, naming both shapes."""
    model = lambda p, t, c: wrong(p.values)  # noqa: E731
    shape = tuple(wrong(torch.zeros(3, 5, 2)).shape)
    with pytest.raises(ValueError, match=rf"model returned shape {re.escape(str(shape))} in the loss, expected \(3, 5, 2\)"):
        process.loss(model, X, points=5, generator=None)


@pytest.mark.parametrize("process", [DDPM, FLOW], ids=["ddpm", "flow"])
def test_loss_refuses_empty_batches_points_and_foreign_fields(process) -> None:
    """No examples, zero points (as a count or a fraction), or a field that is not the domain's: ValueError."""
    model = lambda p, t, c: p.values  # noqa: E731
    with pytest.raises(ValueError, match=r"x0 must have shape \(b, 2, N\) with no empty axis, got \(0, 2, 8\)"):
        process.loss(model, X[:0], points=4, generator=None)
    with pytest.raises(ValueError, match="points=0 must lie in"):
        process.loss(model, X, points=0, generator=None)
    with pytest.raises(ValueError, match="points as a fraction must lie in"):
        process.loss(model, X, points=0.0, generator=None)
    with pytest.raises(ValueError, match="x0 must have shape"):
        process.loss(model, X[:, :1], points=4, generator=None)
    with pytest.raises(TypeError, match="the model must return a tensor in the loss, got list"):
        process.loss(lambda p, t, c: [0.0], X, points=4, generator=None)


@samplers
def test_samplers_refuse_a_model_output_of_the_wrong_shape(run) -> None:
    """A (1, c, N) output would broadcast over the batch; it is refused at the first step, naming both shapes."""
    with pytest.raises(ValueError, match=r"model returned shape \(1, 2, 8\) at step .*, expected \(3, 2, 8\)"):
        run(lambda y, t, c: y[:1], X)


@samplers
def test_samplers_refuse_an_empty_batch(run) -> None:
    """A start with no examples is refused with a ValueError naming it, not an IndexError inside the loop."""
    with pytest.raises(ValueError, match=r"(y_T|y_0|x0) must have shape \(b, 2, N\) with no empty axis, got \(0, 2, 8\)"):
        run(lambda y, t, c: y, X[:0])


@samplers
def test_samplers_report_nan_from_the_model_with_its_step(run) -> None:
    """NaN or Inf from the model stops the sampler with the step it happened at, instead of NaN samples."""
    calls = []

    def model(y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        calls.append(float(t[0]))
        return y * (math.inf if len(calls) == 2 else 0.5)

    with pytest.raises(FloatingPointError, match=r"the model produced NaN or Inf at step"):
        run(model, X)
    assert len(calls) == 2


@samplers
def test_samplers_refuse_a_non_finite_start(run) -> None:
    """A start holding NaN is refused before the model runs."""
    y = X.clone()
    y[1, 0, 3] = math.nan
    with pytest.raises(FloatingPointError, match="holds NaN or Inf"):
        run(lambda y, t, c: pytest.fail("the model must not run"), y)


def test_the_step_named_is_the_step_that_failed() -> None:
    """DDIM names the integer step t; the flow samplers name the step index and its s."""
    def nan_at(bad: float):
        return lambda y, t, c: y * (math.nan if abs(float(t[0]) - bad) < 1e-6 else 0.5)

    with pytest.raises(FloatingPointError, match=r"at step t=7$"):
        sample_ddim(nan_at(7 / 20), X, grid_of(DDPM, [20, 14, 7, 1]), process=DDPM, reference_shape=(8,))
    with pytest.raises(FloatingPointError, match=r"at step 2 \(s=0\.5\)$"):
        sample_euler(nan_at(0.5), X, grid_of(FLOW, 4), process=FLOW)


@pytest.mark.parametrize("eta", [-1.0, math.nan, math.inf, 1.5])
def test_ddim_refuses_a_bad_eta(eta: float) -> None:
    """eta must lie in [0, 1]: above 1 the noise's variance would exceed 1 - abar_prev (and a clamp would drop the
    direction term silently)."""
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        sample_ddim(lambda y, t, c: y, X, grid_of(DDPM, 4), process=DDPM, reference_shape=(8,), eta=eta)


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf])
def test_guidance_refuses_a_bad_weight(weight: float) -> None:
    """The guidance weight must be a finite number >= 0."""
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        InpaintingGuidance(X, torch.ones(1, 1, 8), DDPM.mollifier, weight)


def test_constructors_refuse_bad_components_and_numbers() -> None:
    """Components that are not a Domain, Schedule or Mollifier, and non-finite numbers, are refused by name."""
    domain, schedule, mollifier = GridDomain(1, 1), cosine_schedule(10), GaussianMollifier(0.1)
    with pytest.raises(TypeError, match="domain"):
        MollifiedDDPM(None, schedule, mollifier)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="schedule"):
        MollifiedDDPM(domain, [1.0, 0.5], mollifier)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mollifier"):
        FunctionalFlowMatching(domain, "gaussian")  # type: ignore[arg-type]
    for bad in (math.nan, math.inf, -0.1):
        with pytest.raises(ValueError, match="inv_snr must be a finite number >= 0"):
            MollifiedDDPM(domain, schedule, mollifier, inv_snr=bad)
        with pytest.raises(ValueError, match="inv_snr must be a finite number >= 0"):
            FunctionalFlowMatching(domain, mollifier, inv_snr=bad)
    for bad in (math.nan, 1.0, -0.1):
        with pytest.raises(ValueError, match="sigma_min must be a number in"):
            FunctionalFlowMatching(domain, mollifier, sigma_min=bad)

