"""A trained diffusion autoencoder's tasks (docs/math.md §2, §6, §9): latents in eval mode, cached with provenance and
normalised by their true mean; DDIM inversion that the decoding undoes; the lifted prior; reconstruction and
interpolation at any resolution; super-resolution and inpainting conditioned on the input's latent."""

from typing import Any

import pytest
import torch
from torch import nn

from funcdiff import GaussianMollifier, GridDomain, IdentityMollifier, MollifiedDDPM, cosine_schedule
from funcdiff.domains import box_average
from funcdiff.operators import DiffusionAutoencoder, InftyDiffOperator, SparseEncoder, preset_config
from funcdiff.points import Points
from funcdiff.tasks import autoencoding
from funcdiff.tasks.autoencoding import cached_latents, extract_latents, interpolate, lift_prior, reconstruct
from funcdiff.tasks.inpainting import inpaint, make_mask
from funcdiff.tasks.superres import DownsamplingGuidance, superres
from funcdiff.training import LatentNormalizer


class PatternDecoder(nn.Module):
    """A fake denoiser whose output depends on the time and the latent only, never on the state: DDIM steps with it
    are exactly invertible, so inversion followed by decoding must give back the input. It records each ``cond``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.reference_shape = (size, size)
        self.scale = nn.Parameter(torch.tensor(0.3))
        self.conds: list[torch.Tensor] = []

    def _pattern(self, shape: tuple[int, ...], t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        u = [(torch.arange(n) + 0.5) / n for n in shape]
        wave = torch.sin(3 * u[0])[:, None] * torch.cos(5 * u[1])[None, :]
        return self.scale * (1 + cond[:, :1, None, None]) * torch.cos(7 * t)[:, None, None, None] * wave

    def forward(self, points: Points, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("the tasks call the dense path")

    def forward_dense(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, *, chunk_points: int | None = None) -> torch.Tensor:
        self.conds.append(cond)
        return self._pattern(tuple(x.shape[2:]), t, cond).expand_as(x)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "pattern"}


class MeanEncoder(nn.Module):
    """A fake encoder: the mean and the spread of the values it sees; it records how many points it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[int] = []

    def forward(self, points: Points) -> torch.Tensor:
        self.counts.append(points.values.shape[1])
        return torch.stack([points.values.mean((1, 2)), points.values.std((1, 2))], dim=1)

    def forward_dense(self, x: torch.Tensor, *, chunk_points: int | None = None) -> torch.Tensor:
        return self.forward(Points.from_dense(x))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "mean"}


def fake(size: int = 8) -> DiffusionAutoencoder:
    """The fake autoencoder at ``size`` px."""
    return DiffusionAutoencoder(PatternDecoder(size), MeanEncoder())


def eps_process(mollifier=None) -> MollifiedDDPM:
    """A 100-step mollified-eps process on the unit square (identity T by default)."""
    return MollifiedDDPM(GridDomain(2, 1), cosine_schedule(100), mollifier or IdentityMollifier(), "mollified_eps")


def pictures(count: int, size: int) -> torch.Tensor:
    """``count`` different smooth pictures ``(count, 1, size, size)`` in [-0.9, 0.9]."""
    u = (torch.arange(size) + 0.5) / size
    return torch.stack([0.9 * torch.sin(2 * torch.pi * (k + 1) * u)[None, :, None] * torch.cos(torch.pi * u)[None, None, :]
                        for k in range(count)])


def test_reconstruction_at_its_own_resolution_undoes_the_ddim_inversion() -> None:
    """With a state-independent network DDIM decoding is the exact inverse of the inversion: the input comes back."""
    x = pictures(3, 8)
    out = reconstruct(fake(), eps_process(), x, steps=20)
    assert torch.allclose(out, x, atol=1e-4)


def test_the_decoder_is_conditioned_on_the_encoders_latent_of_the_input() -> None:
    """Every decoder call receives the encoder's latent of the input (mean and spread per picture)."""
    model, x = fake(), pictures(2, 8)
    reconstruct(model, eps_process(), x, steps=4)
    expected = torch.stack([x.mean((1, 2, 3)), x.flatten(1).std(1)], dim=1)
    assert len(model.decoder.conds) == 8 and all(torch.allclose(c, expected) for c in model.decoder.conds)


def test_stochastic_reconstruction_starts_from_fresh_noise() -> None:
    """With ``stochastic`` the result depends on the seed and is not the input."""
    x = pictures(1, 8)
    a, b = (reconstruct(fake(), eps_process(), x, steps=10, stochastic=True, generator=torch.Generator().manual_seed(s)) for s in (0, 1))
    assert not torch.allclose(a, b) and not torch.allclose(a, x, atol=1e-2)


def test_lifted_prior_keeps_the_coarse_noise_as_its_box_average_and_has_white_noise_variance() -> None:
    """With T = I, the lifted noise box-averages exactly to the coarse noise, and its per-point variance is that of
    white noise on the finer grid (4x the coarse one's for factor 2 in 2-D), within 3 %."""
    process = eps_process()
    coarse = process.domain.white_noise(64, (1, 16, 16), (16, 16), generator=torch.Generator().manual_seed(0))
    fine = lift_prior(process, coarse, 2, (16, 16), generator=torch.Generator().manual_seed(1))
    assert fine.shape == (64, 1, 32, 32)
    assert torch.allclose(box_average(fine, 2), coarse, atol=1e-5)
    assert abs(float(fine.var()) / 4 - 1) < 0.03
    assert lift_prior(process, coarse, 1, (16, 16)) is coarse


@pytest.mark.parametrize("sigma_pixels", [0.5, 1.0, 2.0])
def test_lifting_the_prior_of_box_averaged_noise_gives_the_prior_of_the_fine_noise(sigma_pixels: float) -> None:
    """Nested noise is the oracle (docs/math.md §2): for fine white noise ``e``, lifting ``T A e`` with fresh noise ``e``
    itself gives ``T e`` on the fine grid (``U A e + e - U A e = e``), to 1e-3 of its RMS (the Wiener inverse of the
    coarse ``T`` is exact except where its gain is below ``inv_snr``)."""
    process = eps_process(GaussianMollifier(sigma_pixels / 16))
    fine = process.domain.white_noise(8, (1, 32, 32), (16, 16), generator=torch.Generator().manual_seed(1))
    lifted = lift_prior(process, process.mollifier.mollify(box_average(fine, 2)), 2, (16, 16), generator=torch.Generator().manual_seed(1))
    truth = process.mollifier.mollify(fine)
    assert float((lifted - truth).square().mean().sqrt()) < 1e-3 * float(truth.square().mean().sqrt())


def test_reconstruction_at_twice_the_resolution_has_the_finer_shape_and_the_latent() -> None:
    """A 2x reconstruction is on the finer grid, decoded with the input's latent; a non-multiple is refused."""
    model, x = fake(), pictures(2, 8)
    out = reconstruct(model, eps_process(), x, resolution=16, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 16, 16) and bool(out.isfinite().all())
    with pytest.raises(ValueError, match="integer multiple"):
        reconstruct(model, eps_process(), x, resolution=12, steps=5)


def test_finer_reconstructions_are_guided_toward_the_input_pixels(monkeypatch) -> None:
    """At 2x the decoding carries a `DownsamplingGuidance` toward the input with the given weight (none at weight 0,
    and none at the input's own resolution, where the inversion already reproduces it)."""
    seen = []
    real = autoencoding.sample
    monkeypatch.setattr(autoencoding, "sample", lambda *a, **k: seen.append(k.get("guidance")) or real(*a, **k))
    x = pictures(2, 8)
    for resolution, weight in ((16, 0.7), (16, 0.0), (8, 0.7)):
        reconstruct(fake(), eps_process(), x, resolution=resolution, steps=3, weight=weight)
    guided, unguided, own = seen
    assert isinstance(guided, DownsamplingGuidance) and guided.weight == 0.7 and guided.factor == 2
    assert torch.equal(guided.target, x) and unguided is None and own is None


def test_interpolation_ends_reconstruct_the_two_inputs() -> None:
    """The first and last pictures of the path are the two inputs (of different latents); the middle ones are neither."""
    a, b = 0.5 * pictures(2, 8) + torch.tensor([0.3, -0.3]).view(2, 1, 1, 1)
    path = interpolate(fake(), eps_process(), a, b, count=5, steps=20)
    assert path.shape == (5, 1, 8, 8)
    assert torch.allclose(path[0], a, atol=1e-4) and torch.allclose(path[-1], b, atol=1e-4)
    assert not torch.allclose(path[2], a, atol=1e-2) and not torch.allclose(path[2], b, atol=1e-2)


def test_tasks_refuse_a_plain_operator() -> None:
    """Reconstruction needs an operator that encodes its condition (a diffusion autoencoder) and says so."""
    plain = InftyDiffOperator(preset_config("tiny", channels=1, resolution=8))
    with pytest.raises(TypeError, match="EncodedConditioning"):
        reconstruct(plain, eps_process(), pictures(1, 8))


@pytest.fixture
def tiny_autoencoder() -> DiffusionAutoencoder:
    """An untrained tiny autoencoder at 8 px with 4-dimensional latents; its U-Nets have dropout."""
    torch.manual_seed(0)
    config = preset_config("tiny", channels=1, resolution=8, z_dim=4)
    return DiffusionAutoencoder(InftyDiffOperator(config), SparseEncoder(config))


def test_latents_are_extracted_in_eval_mode_with_mirrored_copies(tiny_autoencoder: DiffusionAutoencoder) -> None:
    """A model left in train mode (dropout on) gives the same latents twice, equal to eval mode's, and is left in
    train mode; with ``flip`` the second half encodes the mirrored examples."""
    data = list(pictures(5, 8))
    tiny_autoencoder.train()
    first = extract_latents(tiny_autoencoder, data, batch_size=2, flip=True)
    assert tiny_autoencoder.training
    assert torch.equal(first, extract_latents(tiny_autoencoder, data, batch_size=2, flip=True))
    assert torch.allclose(first, extract_latents(tiny_autoencoder, data, batch_size=3, flip=True), atol=1e-6)
    with torch.no_grad():
        tiny_autoencoder.eval()
        x = torch.stack(data)
        assert torch.allclose(first[:5], tiny_autoencoder.encode(x), atol=1e-6)
        assert torch.allclose(first[5:], tiny_autoencoder.encode(x.flip(-1)), atol=1e-6)


def test_latents_are_normalised_by_their_true_nonzero_mean(tiny_autoencoder: DiffusionAutoencoder) -> None:
    """Latents of data with a non-zero mean have a non-zero mean; the normaliser stores it (computed here in NumPy)
    and its output has mean 0 and std 1 per dimension."""
    data = [0.5 + 0.3 * p for p in pictures(12, 8)]
    latents = extract_latents(tiny_autoencoder, data)
    mean = latents.double().numpy().mean(axis=0)
    assert abs(mean).max() > 1e-3
    normalizer = LatentNormalizer.fit(latents)
    assert torch.allclose(normalizer.mean.double(), torch.from_numpy(mean), atol=1e-6)
    z = normalizer.normalize(latents).double()
    assert torch.allclose(z.mean(0), torch.zeros(4, dtype=torch.double), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(4, dtype=torch.double), atol=1e-4)


def test_cached_latents_are_reused_only_for_the_same_provenance(tiny_autoencoder: DiffusionAutoencoder, tmp_path, monkeypatch) -> None:
    """The second call with the same provenance reads the file; another checkpoint or flip extracts again."""
    data, path = list(pictures(3, 8)), tmp_path / "latents.safetensors"
    first = cached_latents(tiny_autoencoder, data, path, {"checkpoint": "a", "step": 1})
    calls = []
    real = autoencoding.extract_latents
    monkeypatch.setattr(autoencoding, "extract_latents", lambda *a, **k: calls.append(k) or real(*a, **k))
    assert torch.equal(cached_latents(tiny_autoencoder, data, path, {"checkpoint": "a", "step": 1}), first)
    assert calls == []
    cached_latents(tiny_autoencoder, data, path, {"checkpoint": "b", "step": 1})
    assert cached_latents(tiny_autoencoder, data, path, {"checkpoint": "b", "step": 1}, flip=True).shape == (6, 4)
    assert len(calls) == 2


def test_superres_with_an_autoencoder_decodes_the_latent_of_the_low_resolution_input() -> None:
    """Every decoder call of an autoencoder's super-resolution gets the encoder's latent of the low-resolution image."""
    model, low = fake(8), pictures(1, 4)[0]
    superres(model, eps_process(GaussianMollifier(0.02)), low, scale=2, weight=0.0, steps=3, num=2)
    expected = torch.stack([low.mean(), low.std()]).expand(2, 2)
    assert model.decoder.conds and all(torch.allclose(c, expected) for c in model.decoder.conds)


def test_inpainting_with_an_autoencoder_encodes_only_the_known_pixels() -> None:
    """The encoder sees exactly the known pixels (3/4 of them for a box hole of half the side)."""
    model, image = fake(8), pictures(1, 8)[0]
    mask = make_mask("box", (8, 8))
    inpaint(model, eps_process(GaussianMollifier(0.02)), image, mask, steps=3, num=1)
    assert model.encoder.counts == [int(mask.sum())] == [48]


def test_reconstruction_runs_in_eval_mode_and_restores_the_mode(tiny_autoencoder: DiffusionAutoencoder) -> None:
    """A model in train mode (dropout on) reconstructs the same twice, and is left in train mode."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(100), GaussianMollifier(1 / 8), "x0")
    x = pictures(2, 8)
    tiny_autoencoder.train()
    first = reconstruct(tiny_autoencoder, process, x, steps=3)
    assert torch.equal(first, reconstruct(tiny_autoencoder, process, x, steps=3)) and tiny_autoencoder.training


def test_bad_inputs_are_clear_errors() -> None:
    """Ends of different shapes, and an autoencoder's inpainting mask with no pixel above 0.5, say what is wrong."""
    a, b = pictures(1, 8)[0], pictures(1, 16)[0]
    with pytest.raises(ValueError, match="one shape"):
        interpolate(fake(), eps_process(), a, b)
    with pytest.raises(ValueError, match="marks none"):
        inpaint(fake(), eps_process(GaussianMollifier(0.02)), a, torch.full((1, 1, 8, 8), 0.4), steps=2)
