"""Fuzzing the processes' public entries: schedules, constructors, losses and samplers either return a right
result or refuse with a clear error (a FloatingPointError naming the step when the model produces NaN or Inf), and a
valid call is never refused."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import (
    FunctionalFlowMatching,
    GaussianMollifier,
    GridDomain,
    IdentityMollifier,
    MollifiedDDPM,
    Points,
    constant_schedule,
    cosine_schedule,
    encode_ddim,
    linear_schedule,
    sample_ddim,
    sample_ddpm,
    sample_euler,
    sample_heun,
)
from funcdiff.processes import Schedule, respace, table_schedule
from tests.helpers import grid_of
from tests.strategies import fields, finite, fuzz, is_count, numbers, outcome, sizes, wrong_types

STEPS = 12



def is_step_list(value: object, steps: int) -> bool:
    """Whether ``value`` is a non-empty, strictly decreasing list of steps in ``[1, steps]``."""
    return isinstance(value, list) and bool(value) and all(1 <= s <= steps for s in value) and value == sorted(set(value))[::-1]


def assert_schedule(schedule, steps: int) -> None:
    """A valid table: float64, length T + 1, starts at 1, finite, strictly decreasing and > 0."""
    a = schedule.alpha_bar
    assert a.dtype == torch.float64 and a.shape == (steps + 1,) and a[0] == 1 and finite(a)
    assert bool((a[1:] > 0).all()) and bool((a[1:] < a[:-1]).all())


@fuzz
@given(kind=st.sampled_from(["cosine", "linear", "constant"]), steps=st.one_of(sizes, st.integers(1, 3000)), a=numbers, b=numbers)
def test_schedules(kind: str, steps, a, b) -> None:
    """The schedule builders return a valid table or refuse (a bad step count, betas outside (0, 1), NaN settings)."""
    make = {
        "cosine": lambda: cosine_schedule(steps, offset=a, max_beta=b),
        "linear": lambda: linear_schedule(steps, beta_start=a, beta_end=b),
        "constant": lambda: constant_schedule(steps, beta=a),
    }[kind]
    schedule = outcome(make)
    if schedule is not None:
        assert_schedule(schedule, steps)


@fuzz
@given(kind=st.sampled_from(["cosine", "linear", "constant"]), steps=st.integers(1, 3000))
def test_default_schedules_are_valid(kind: str, steps: int) -> None:
    """Every step count gets a valid default schedule."""
    assert_schedule({"cosine": cosine_schedule, "linear": linear_schedule, "constant": constant_schedule}[kind](steps), steps)


@fuzz
@given(table=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1.0)), max_size=6))
def test_table_schedule(table: list[float]) -> None:
    """A hand-made table is accepted exactly when it starts at 1 and decreases strictly while staying > 0."""
    schedule = outcome(lambda: table_schedule(table))
    valid = len(table) >= 2 and table[0] == 1 and all(x > 0 for x in table[1:]) and all(x > y for x, y in zip(table, table[1:]))
    assert (schedule is not None) == valid


@fuzz
@given(steps=st.integers(1, 50), timesteps=st.one_of(sizes, st.lists(st.integers(-1, 52), max_size=5), wrong_types))
def test_respace(steps: int, timesteps) -> None:
    """respace gives k evenly spaced steps from T down to 1 (k <= T), or checks an explicit strictly decreasing list."""
    out = outcome(lambda: respace(steps, timesteps))
    if is_count(timesteps) and timesteps <= steps:
        assert out is not None and len(out) == timesteps and out[0] == steps and (timesteps == 1 or out[-1] == 1)
    if is_step_list(timesteps, steps):
        assert out == timesteps
    if out is not None:
        assert all(1 <= s <= steps for s in out) and all(x > y for x, y in zip(out, out[1:]))


components = st.sampled_from([GridDomain(1, 1), GaussianMollifier(0.1), cosine_schedule(5), None, "grid", 1.0])


@fuzz
@given(
    domain=components, schedule=components, mollifier=components, prediction=st.sampled_from(["mollified_eps", "x0", "eps"]),
    sigma_min=st.one_of(numbers, wrong_types), inv_snr=st.one_of(numbers, wrong_types),
)
def test_process_constructors(domain, schedule, mollifier, prediction, sigma_min, inv_snr) -> None:
    """Both processes are built from the right components and settings, and refuse anything else (an int where a
    float is annotated is refused by the test-time checker only)."""
    ddpm = outcome(lambda: MollifiedDDPM(domain, schedule, mollifier, prediction, inv_snr))
    flow = outcome(lambda: FunctionalFlowMatching(domain, mollifier, sigma_min, "velocity", inv_snr))
    parts = isinstance(domain, GridDomain) and isinstance(mollifier, GaussianMollifier)
    snr = isinstance(inv_snr, (int, float)) and not isinstance(inv_snr, bool) and 0 <= inv_snr < math.inf
    ddpm_ok = parts and snr and isinstance(schedule, Schedule) and prediction in ("mollified_eps", "x0")
    flow_ok = parts and snr and isinstance(sigma_min, (int, float)) and not isinstance(sigma_min, bool) and 0 <= sigma_min < 1
    floats = isinstance(inv_snr, float)
    assert ddpm is None if not ddpm_ok else ddpm is not None or not floats
    assert flow is None if not flow_ok else flow is not None or not (floats and isinstance(sigma_min, float))


def processes():
    """One of each process and prediction, on a 1-D two-channel domain."""
    domain = GridDomain(1, 2)
    return st.sampled_from([
        MollifiedDDPM(domain, cosine_schedule(STEPS), GaussianMollifier(0.1), "mollified_eps"),
        MollifiedDDPM(domain, cosine_schedule(STEPS), IdentityMollifier(), "x0"),
        FunctionalFlowMatching(domain, GaussianMollifier(0.1), prediction="velocity"),
        FunctionalFlowMatching(domain, IdentityMollifier(), sigma_min=0.1, prediction="x1"),
    ])


# What the fuzzed model returns: the right thing, something that broadcasts, something else, or NaN from a given call.
BEHAVIOURS = ["right", "broadcasts", "list", "nan-first", "nan-later"]


def make_model(behaviour: str, calls: list[int] | None = None):
    """A model (points or dense) that behaves as named, counting its calls in ``calls``."""
    calls = [] if calls is None else calls

    def model(x, t: torch.Tensor, cond):
        values = x.values if isinstance(x, Points) else x
        calls.append(1)
        if behaviour == "broadcasts":
            return 0.5 * values[:1]
        if behaviour == "list":
            return values.tolist()
        if behaviour == "nan-first" or (behaviour == "nan-later" and len(calls) == 2):
            return values * math.nan
        return 0.5 * values

    return model


@fuzz
@given(process=processes(), x0=fields(1, 2), behaviour=st.sampled_from(BEHAVIOURS),
       points=st.one_of(st.integers(-1, 7), st.floats(-0.5, 1.5), st.sampled_from([math.nan, 0.0]), wrong_types))
def test_loss(process, x0: torch.Tensor, behaviour: str, points) -> None:
    """The loss is a finite scalar for finite data, points in range and a right-shaped model output; wrong shapes,
    empty or foreign data and bad point counts are refused; NaN from the model or the data is the trainer's to see."""
    loss = outcome(lambda: process.loss(make_model(behaviour), x0, points=points, generator=torch.Generator().manual_seed(0)))
    behaviour = "right" if behaviour == "broadcasts" and x0.shape[0] == 1 else behaviour  # a batch of one is the right shape
    good_field = x0.ndim == 3 and x0.shape[1] == 2 and 0 not in x0.shape
    total = x0.shape[-1] if x0.ndim == 3 else 0
    good_points = (isinstance(points, float) and 0 < points <= 1) or (is_count(points) and points <= total)
    if good_field and good_points and behaviour not in ("broadcasts", "list"):
        assert loss is not None
    if loss is None:
        return
    assert good_field and good_points and behaviour not in ("broadcasts", "list")
    assert loss.shape == () and loss.dtype == x0.dtype
    if finite(x0) and behaviour == "right":
        assert finite(loss) and loss >= 0


def run_sampler(name: str, model, y: torch.Tensor, steps, eta):
    """Run one of the samplers of the matching process on ``y``."""
    ddpm = MollifiedDDPM(GridDomain(1, 2), cosine_schedule(STEPS), GaussianMollifier(0.1), "mollified_eps")
    flow = FunctionalFlowMatching(GridDomain(1, 2), GaussianMollifier(0.1))
    gen = torch.Generator().manual_seed(0)
    return {
        "ddpm": lambda: sample_ddpm(model, y, grid_of(ddpm, steps), process=ddpm, reference_shape=(4,), generator=gen),
        "ddim": lambda: sample_ddim(model, y, grid_of(ddpm, steps), process=ddpm, reference_shape=(4,), eta=eta, generator=gen),
        "encode": lambda: encode_ddim(model, y, grid_of(ddpm, steps), process=ddpm),
        "euler": lambda: sample_euler(model, y, grid_of(flow, steps), process=flow),
        "heun": lambda: sample_heun(model, y, grid_of(flow, steps), process=flow),
    }[name]()


@fuzz
@given(name=st.sampled_from(["ddpm", "ddim", "encode", "euler", "heun"]), y=fields(1, 2), behaviour=st.sampled_from(BEHAVIOURS),
       steps=st.one_of(st.integers(-1, STEPS + 1), st.lists(st.integers(0, STEPS + 1), max_size=3), wrong_types),
       eta=st.one_of(st.floats(0, 1), numbers))
def test_samplers(name: str, y: torch.Tensor, behaviour: str, steps, eta) -> None:
    """A sampler returns finite samples of the start's shape and dtype, refuses bad starts, steps, eta and model
    outputs with a clear error, and stops with a FloatingPointError when the start or the model holds NaN or Inf."""
    flow = name in ("euler", "heun")
    right = behaviour == "right" or behaviour == "broadcasts" and y.ndim > 0 and y.shape[0] == 1  # a batch of one fits
    good_start = y.ndim == 3 and y.shape[1] == 2 and 0 not in y.shape
    if flow:
        good_steps = is_count(steps)
    else:
        good_steps = (is_count(steps) and steps <= STEPS) or steps is None or is_step_list(steps, STEPS)  # None: every step
    good_eta = name != "ddim" or (isinstance(eta, float) and 0 <= eta <= 1)
    calls: list[int] = []
    try:
        out = outcome(lambda: run_sampler(name, make_model(behaviour, calls), y, steps, eta))
    except FloatingPointError as error:
        assert good_start and (not finite(y) or behaviour.startswith("nan")), error
        assert "NaN or Inf" in str(error)
        return
    if good_start and good_steps and good_eta and finite(y) and right:
        assert out is not None
    if out is None:
        return
    assert good_start and good_steps and good_eta and finite(y)
    assert right or behaviour == "nan-later" and len(calls) == 1
    assert out.shape == y.shape and out.dtype == y.dtype and finite(out)
