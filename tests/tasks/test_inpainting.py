"""Inpainting from Python: masks, the replacement baseline, guidance toward the known region, refusals (docs/math.md §10)."""

import numpy as np
import pytest
import torch
from PIL import Image

from funcdiff import GaussianMollifier, GridDomain, IdentityMollifier, MollifiedDDPM, cosine_schedule, sample_ddim
from funcdiff.operators import operator_preset
from funcdiff.processes import FunctionalFlowMatching
from funcdiff.tasks.inpainting import ReplacementGuidance, inpaint, make_mask, read_mask
from tests.helpers import grid_of


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """An untrained tiny operator at 16 px: guidance acts through the estimate, whatever the network has learnt."""
    torch.manual_seed(0)
    return operator_preset("tiny", channels=1, resolution=16).eval()


def process(mollifier=None, prediction: str = "mollified_eps") -> MollifiedDDPM:
    """A 100-step cosine process on the unit square, Gaussian ``T`` by default."""
    return MollifiedDDPM(GridDomain(2, 1), cosine_schedule(100), mollifier or GaussianMollifier(0.06), prediction)


def image(size: int = 16) -> torch.Tensor:
    """A smooth test picture ``(1, size, size)`` in [-0.8, 0.8]."""
    u = (torch.arange(size) + 0.5) / size
    return 0.8 * torch.sin(2 * torch.pi * u)[None, :, None] * torch.cos(2 * torch.pi * u)[None, None, :]


def known_rmse(samples: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """RMS error of ``samples`` against ``truth`` over the known cells of ``mask``."""
    return float((((samples - truth) * mask).square().sum() / (mask.sum() * samples.shape[0])).sqrt())


@pytest.mark.parametrize("shape", [(16, 16), (12, 20)])
def test_box_and_half_masks(shape: tuple[int, int]) -> None:
    """Box: a centred hole of half the side (a quarter of the area); half: the right half unknown; values 0 or 1."""
    h, w = shape
    box, half = make_mask("box", shape), make_mask("half", shape)
    assert box.shape == half.shape == (1, 1, h, w)
    assert float(box.mean()) == 0.75 and float(half.mean()) == 0.5
    assert box[0, 0, h // 2, w // 2] == 0 and box[0, 0, 0, 0] == 1 and box[0, 0, -1, -1] == 1
    assert bool((half[..., : w // 2] == 1).all()) and bool((half[..., w // 2 :] == 0).all())


def test_strokes_are_seeded_and_cover_a_fifth_to_two_fifths() -> None:
    """The same seed gives the same strokes, another seed others; the hole covers 20-40 % at several shapes."""
    seeded = lambda s, shape=(32, 32): make_mask("strokes", shape, generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(seeded(1), seeded(1)) and not torch.equal(seeded(1), seeded(2))
    for shape in [(16, 16), (32, 32), (64, 64), (24, 40)]:
        for seed in range(5):
            mask = seeded(seed, shape)
            assert mask.shape == (1, 1, *shape) and set(mask.unique().tolist()) <= {0.0, 1.0}
            assert 0.2 <= 1 - float(mask.mean()) <= 0.4


def test_read_mask_is_white_known_and_resized_nearest(tmp_path) -> None:
    """A PNG with its left half white reads as the ``half`` mask at another size."""
    pixels = np.zeros((10, 10), dtype=np.uint8)
    pixels[:, :5] = 255
    Image.fromarray(pixels).save(tmp_path / "mask.png")
    assert torch.equal(read_mask(tmp_path / "mask.png", (16, 16)), make_mask("half", (16, 16)))


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_replacement_keeps_the_known_region_exactly_without_blur(model, prediction: str) -> None:
    """With ``T = I`` the reported sample equals the image where the mask is 1 (to float rounding, 1e-5)."""
    x, mask = image(), make_mask("box", (16, 16))
    out = inpaint(model, process(IdentityMollifier(), prediction), x, mask, method="replace", steps=5, num=2,
                  generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 16, 16)
    assert known_rmse(out, x, mask) < 1e-5


def test_replacement_keeps_the_known_region_in_mollified_space(model) -> None:
    """With a Gaussian ``T`` the replaced estimate ``T xhat0`` equals ``T x_a`` on the known cells to float32 rounding.

    The sampler adds the change to the unguided estimate, so the rounding is relative to it: ~1e-4 at the first step,
    where ``T xhat0 ~ y_T / sqrt(abar_T)`` is large, below 1e-6 after. The reported ``xhat0 = W(T xhat0)`` is only
    close there: ``W`` inverts ``T`` with regularisation and mixes in the hole.
    """
    p, x, mask = process(), image()[None], make_mask("half", (16, 16))
    guidance = ReplacementGuidance(x, mask, p.mollifier)
    residuals = []
    callback = lambda t, y, tx0: residuals.append(float(((tx0 - guidance.target) * mask).abs().max()))  # noqa: E731
    y_T = p.prior(1, (1, 16, 16), (16, 16), generator=torch.Generator().manual_seed(0))
    sample_ddim(lambda y, t, c: model.forward_dense(y, t, c), y_T, grid_of(p, 5), process=p, reference_shape=(16, 16), guidance=guidance, callback=callback)
    assert len(residuals) == 5 and residuals[0] < 1e-3 and max(residuals[1:]) < 1e-6


def test_guidance_brings_the_known_region_closer(model) -> None:
    """Guided samples (weight 1) are at least 1/0.6 times closer to the image on the known region than unguided ones.

    Measured 0.45 against 0.97. Mollified-eps prediction: its ``T xhat0`` holds ``y_t / sqrt(abar_t)``, so the guidance
    gradient does not rest on what the untrained network has learnt (under x0-prediction it would).
    """
    x, mask, p = image(), make_mask("box", (16, 16)), process()
    errors = {w: known_rmse(inpaint(model, p, x, mask, weight=w, steps=10, num=4, generator=torch.Generator().manual_seed(0)), x, mask)
              for w in (0, 1)}
    assert errors[1] < 0.6 * errors[0], errors


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_guidance_brings_a_flows_known_region_closer(model, sampler: str) -> None:
    """The same guidance through a flow's samplers (docs/math.md §13): guided samples of a velocity-predicting flow are
    closer to the image on the known region than unguided ones (its data estimate ``(1 - sigma_min) y + sigma_s v``
    holds ``y`` itself, so the gradient does not rest on the untrained network). Measured 0.38 against 0.89."""
    x, mask = image(), make_mask("box", (16, 16))
    flow = FunctionalFlowMatching(GridDomain(2, 1), GaussianMollifier(0.06), prediction="velocity")
    errors = {w: known_rmse(inpaint(model, flow, x, mask, weight=w, steps=10, num=4, sampler=sampler,
                                    generator=torch.Generator().manual_seed(0)), x, mask) for w in (0, 1)}
    assert errors[1] < 0.6 * errors[0], errors


def test_inpainting_at_another_resolution(model) -> None:
    """A 16 px image and a 32 px mask sample at 24 px; with ``T = I`` replacement keeps the resized image's known half."""
    x, mask = image(16), make_mask("half", (32, 32))
    p = process(IdentityMollifier())
    out = inpaint(model, p, x, mask, resolution=24, method="replace", steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 24, 24) and bool(torch.isfinite(out).all()) and out.abs().max() <= 1
    assert known_rmse(out, image(24), make_mask("half", (24, 24))) < 0.05  # bicubic resizing of a smooth picture


def test_refusals(model) -> None:
    """Bad inputs raise ValueErrors that name the argument."""
    x, mask, p = image(), make_mask("box", (16, 16)), process()
    flow = FunctionalFlowMatching(GridDomain(2, 1), GaussianMollifier(0.06))
    cases = [
        (dict(process=flow, sampler="ddim"), "needs a DenoisingProcess"),
        (dict(sampler="heun"), "needs a FlowProcess"),
        (dict(image=torch.zeros(3, 16, 16)), "channels"),
        (dict(image=2 * x), r"image must hold values in \[-1"),
        (dict(mask=2 * mask), "mask must hold values"),
        (dict(mask=torch.zeros_like(mask)), "mask must mark"),
        (dict(method="paint"), "method"),
        (dict(weight=-1.0), "weight"),
        (dict(steps=0), "steps"),
        (dict(num=0), "num"),
    ]
    for change, message in cases:
        args = dict(process=p, image=x, mask=mask, steps=2) | change
        with pytest.raises(ValueError, match=message):
            inpaint(model, args.pop("process"), args.pop("image"), args.pop("mask"), **args)
    with pytest.raises(ValueError, match="kind"):
        make_mask("circle", (16, 16))
    with pytest.raises(ValueError, match="shape"):
        make_mask("box", (1, 16))
