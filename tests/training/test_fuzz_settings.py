"""Fuzzing the edge: any values for the training settings and any command line either work or fail with a clear,
one-line error; never a late failure, a raw library exception or a traceback."""

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcdiff.factory import TrainConfig

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5000), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "cpu", "cuda:0", "gpu", "icons", "flow", "x0", "auto", "ddim", "-1", "nan"]),
    st.tuples(st.floats(-1, 2), st.floats(-1, 2)), st.lists(st.integers(0, 3), max_size=3),
)
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), ODD_VALUES, min_size=1, max_size=2))
def test_any_settings_either_validate_or_are_refused_by_name(changes: dict) -> None:
    """TrainConfig accepts a value only if it is usable, else raises ValueError/TypeError naming the field."""
    try:
        config = TrainConfig(**{"steps": 10, **changes})
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in changes) or "steps or time_budget" in str(error)
        return
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert math.isfinite(config.lr) and config.lr > 0 and config.batch_size >= 1
    assert (isinstance(config.points, float) and 0 < config.points <= 1) or (type(config.points) is int and config.points >= 1)


NUMBERS = [f.name for f in dataclasses.fields(TrainConfig) if any(t in str(f.type) for t in ("int", "float"))]


@pytest.mark.parametrize("name", NUMBERS)
@settings(max_examples=30, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6)))
def test_every_number_is_finite_and_in_range_or_refused(name: str, value: float) -> None:
    """Each numeric setting refuses NaN, infinities and out-of-range values by name; what it accepts is finite."""
    try:
        config = TrainConfig(**{"steps": 10, name: value})
    except (ValueError, TypeError) as error:
        related = {"diffusion_steps": "sample_steps"}  # fewer diffusion steps than sampler steps: named by the latter
        assert name in str(error) or related.get(name, name) in str(error)
        return
    accepted = getattr(config, name)
    assert accepted is None or math.isfinite(accepted)


FLAGS = ["--points", "--batch-size", "--lr", "--steps", "--time-budget", "--resolution", "--channels", "--sample-steps",
         "--sample-count", "--diffusion-steps", "--sigma-pixels", "--process", "--prediction", "--sampler", "--device",
         "--autocast", "--seed", "--max-nonfinite-steps", "--checkpoint-every"]
TOKENS = st.sampled_from(["0", "1", "-5", "1.5", "0.25", "1e3", "nan", "inf", "None", "abc", "flow", "x0", "cuda", "bf16", ""])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=st.lists(st.tuples(st.sampled_from(FLAGS), TOKENS), min_size=1, max_size=3))
def test_any_command_line_is_accepted_or_refused_with_a_usage_error(flags: list, capsys) -> None:
    """``funcdiff train --dry-run`` with random flags either prints the config or exits with tyro's usage error (2)."""
    from funcdiff.commands import main

    argv = ["train", "--dry-run", *[token for pair in flags for token in pair]]
    try:
        code = main(argv)
    except SystemExit as exit_:
        assert exit_.code == 2, argv
        assert "Traceback" not in capsys.readouterr().err
        return
    assert code == 0


@pytest.mark.parametrize("flag, value", [("--sample-steps", "0"), ("--sample-count", "0"), ("--points", "1.5"),
                                         ("--points", "0"), ("--lr", "nan"), ("--batch-size", "0")])
def test_sampling_and_loop_settings_fail_before_training(flag: str, value: str, capsys) -> None:
    """Settings that used to fail only after the whole training are usage errors at once."""
    from funcdiff.commands import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"funcdiff: error: invalid value: {flag} ") and err.count("\n") == 1 and "tyro" not in err, err
