"""Super-resolution from pixels: the box-average guidance in closed form and by finite differences, consistency of
guided samples with their input, shapes and refusals (docs/math.md §10)."""

import pytest
import torch

from funcdiff import GaussianMollifier, IdentityMollifier, GridDomain, MollifiedDDPM, cosine_schedule
from funcdiff.domains import box_average
from funcdiff.operators import operator_preset
from funcdiff.processes import FunctionalFlowMatching
from funcdiff.tasks.superres import DownsamplingGuidance, superres


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """An untrained tiny operator at 16 px: the guidance acts through the estimate, whatever the network has learnt."""
    torch.manual_seed(0)
    return operator_preset("tiny", channels=1, resolution=16).eval()


def process(prediction: str = "mollified_eps", mollifier=None) -> MollifiedDDPM:
    """A 100-step cosine process on the unit square, Gaussian ``T`` by default."""
    return MollifiedDDPM(GridDomain(2, 1), cosine_schedule(100), mollifier or GaussianMollifier(0.06), prediction)


def image(size: int) -> torch.Tensor:
    """A smooth test picture ``(1, size, size)`` in [-0.8, 0.8]."""
    u = (torch.arange(size) + 0.5) / size
    return 0.8 * torch.sin(2 * torch.pi * u)[None, :, None] * torch.cos(2 * torch.pi * u)[None, None, :]


def consistency_rmse(model: torch.nn.Module, low: torch.Tensor, scale: int, weight: float, mollifier=None) -> float:
    """RMS distance of four guided samples (clipped at every step: the mollified-eps estimate of an untrained
    network is unbounded), box-averaged back, from ``low``."""
    out = superres(model, process(mollifier=mollifier), low, scale=scale, weight=weight, steps=10, num=4, clip=True, generator=torch.Generator().manual_seed(0))
    return float((box_average(out, scale) - low).square().mean().sqrt())


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``A``: the mean over each ``factor x factor`` block (pooling, not the code's `box_average`)."""
    return torch.nn.functional.avg_pool2d(x, factor)


def block_repeat(r: torch.Tensor, factor: int) -> torch.Tensor:
    """``f^d A^T``: each coarse value repeated over its block."""
    return r.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def test_guidance_closed_form() -> None:
    """The docstring's ``T xhat0' = T xhat0 - w a_t f^d J^T A^T (A(T xhat0) - T_low x_low)``, with ``T_low x_low``
    mollified here by the mollifier itself: for ``T xhat0 = y_t / a_t`` (``J = I / a_t``) the correction is ``-w``
    times the residual repeated over its blocks, so ``w = 1`` makes ``A(T xhat0') = T_low x_low`` exactly, and a zero
    residual gives no correction."""
    torch.manual_seed(1)
    low, mollifier, factor = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 2 - 1, GaussianMollifier(0.1), 2
    target = mollifier.mollify(low)  # T_low x_low: sigma is in domain units, so the same T on the coarse grid
    signal = torch.full((2,), 0.3, dtype=torch.float64).sqrt()  # a_t = sqrt(abar_t)
    a = signal.view(2, 1, 1, 1)
    for weight in (0.5, 1.0):
        guidance = DownsamplingGuidance(low, factor, mollifier, weight)
        y = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
        tx0 = y / a
        residual = block_mean(tx0, factor) - target
        expected = tx0 - weight * a / a * block_repeat(residual, factor)  # w a_t J^T (f^d A^T) residual, J^T = I / a_t
        corrected = guidance(y, tx0, signal)
        torch.testing.assert_close(corrected, expected)
    torch.testing.assert_close(block_mean(corrected, factor), target)
    y = (a * block_repeat(target, factor)).requires_grad_(True)
    tx0 = y / a
    torch.testing.assert_close(guidance(y, tx0, signal), tx0, atol=1e-12, rtol=0)


def test_guidance_matches_finite_differences() -> None:
    """The correction equals ``-(w a_t / 2)`` times a central-difference gradient of the docstring's loss
    ``f^d || A(T xhat0) - T_low x_low ||^2`` (written here, with ``T_low x_low`` mollified here) through a nonlinear
    estimate (float64, step 1e-6, agreement to 1e-6)."""
    torch.manual_seed(2)
    low, mollifier, factor = torch.rand(1, 1, 3, 3, dtype=torch.float64) * 2 - 1, GaussianMollifier(0.1), 3
    guidance = DownsamplingGuidance(low, factor, mollifier, 2.0)
    target = mollifier.mollify(low)
    mix = torch.randn(81, 81, dtype=torch.float64) / 9
    signal = torch.tensor([0.6], dtype=torch.float64).sqrt()

    def estimate(y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(mix @ y.reshape(81)).reshape(1, 1, 9, 9)

    def loss(tx0: torch.Tensor) -> torch.Tensor:
        return factor**2 * (block_mean(tx0, factor) - target).square().sum()

    y = torch.randn(1, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    tx0 = estimate(y)
    correction = (guidance(y, tx0, signal) - tx0).detach()
    grad = torch.zeros(81, dtype=torch.float64)
    with torch.no_grad():
        for i in range(81):
            step = torch.zeros(81, dtype=torch.float64)
            step[i] = 1e-6
            up, down = (loss(estimate(y + s.reshape(y.shape))) for s in (step, -step))
            grad[i] = (up - down) / 2e-6
    torch.testing.assert_close(correction, -(2.0 * signal / 2) * grad.reshape(y.shape), atol=1e-6, rtol=1e-6)


def test_guided_samples_box_average_back_to_the_input(model: torch.nn.Module) -> None:
    """With an untrained network, weight 1 brings the 2x output's box-average to under half the unguided RMS
    distance from the input (measured: 0.35 against 0.82). The Gaussian ``T``'s Wiener filter amplifies the random
    network's high frequencies in the reported sample; with ``T = I`` a strong weight (2) reaches 0.05 RMS
    (measured: 0.026, unguided 0.74)."""
    low = image(8)
    unguided, guided = (consistency_rmse(model, low, 2, w) for w in (0.0, 1.0))
    assert guided < unguided / 2, (guided, unguided)
    unguided, strong = (consistency_rmse(model, low, 2, w, IdentityMollifier()) for w in (0.0, 2.0))
    assert strong < 0.05 < unguided, (strong, unguided)


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes(model: torch.nn.Module, scale: int) -> None:
    """``num`` samples at ``scale`` times the input's side, in [-1, 1], for both predictions."""
    for prediction in ("mollified_eps", "x0"):
        out = superres(model, process(prediction), image(4), scale=scale, steps=2, num=2, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 4 * scale, 4 * scale)
        assert out.abs().max() <= 1


def test_refusals(model: torch.nn.Module) -> None:
    """Clear ValueErrors for a sampler that does not run the process, the image's channels and range, the scale, the
    weight and the counts."""
    low = image(8)
    flow = FunctionalFlowMatching(GridDomain(2, 1), GaussianMollifier(0.06))
    cases = [
        (dict(process=flow, sampler="ddim"), "DenoisingProcess"),
        (dict(low=image(8).expand(3, 8, 8)), "channels"),
        (dict(low=2 * low), r"\[-1, 1\]"),
        (dict(scale=1), "scale"),
        (dict(weight=-1.0), "weight"),
        (dict(num=0), "num"),
    ]
    for change, message in cases:
        kwargs = dict(process=process(), low=low, scale=2, weight=1.0, num=1) | change
        with pytest.raises(ValueError, match=message):
            superres(model, kwargs.pop("process"), kwargs.pop("low"), steps=2, **kwargs)
    with pytest.raises(ValueError, match="factor"):
        DownsamplingGuidance(low[None], 0, GaussianMollifier(0.06))
