"""The latent diffusion model of the diffusion autoencoder: normaliser, training, DDIM sampling, save/load, refusals."""

import json

import jaxtyping
import pytest
import torch

from funcdiff.operators.models.config import LatentMLPConfig
from funcdiff.processes.schedules import constant_schedule
from funcdiff.training.latent import (
    LatentModel,
    LatentNormalizer,
    load_latent_model,
    sample_latents,
    save_latent_model,
    train_latent,
)

Z = 8
MEAN = torch.full((Z,), 3.0)
STD = torch.linspace(0.5, 2.0, Z)
SMALL = LatentMLPConfig(z_dim=Z, hidden=64, layers=3)
FAST = {"steps": 400, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.9, "ema_every": 1}


def gaussian_latents(n: int = 2000, seed: int = 100) -> torch.Tensor:
    """Latents from ``N(3, diag(0.5..2)^2)``: a non-zero mean and an anisotropic spread."""
    return MEAN + STD * torch.randn(n, Z, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    """The training latents shared by the tests."""
    return gaussian_latents()


@pytest.fixture(scope="module")
def trained(data) -> LatentModel:
    """The small model after 400 steps (about 2 s on one CPU thread)."""
    return train_latent(data, config=SMALL, **FAST)


def test_normalizer_recovers_true_mean_and_std(data):
    """The fitted mean is the data's (about 3, not 0 as the official code forces) and normalised latents are
    centred with unit spread; denormalize inverts normalize."""
    norm = LatentNormalizer.fit(data)
    torch.testing.assert_close(norm.mean, data.double().mean(0).float())
    torch.testing.assert_close(norm.std, data.double().std(0).float())
    assert (norm.mean - MEAN).abs().max() < 0.15 and ((norm.std / STD) - 1).abs().max() < 0.1
    x = norm.normalize(data)
    assert x.mean(0).abs().max() < 1e-5 and (x.std(0) - 1).abs().max() < 1e-5  # mean forced to 0 gives 3 / std here
    torch.testing.assert_close(norm.denormalize(x), data)


def test_normalizer_constant_dimension_and_dtype():
    """A dimension with zero spread keeps std 1 and round-trips; float64 input stays float64."""
    data = gaussian_latents(50).double()
    data[:, 2] = 7.0
    norm = LatentNormalizer.fit(data)
    assert norm.std[2] == 1 and norm.mean[2] == 7
    x = norm.normalize(data)
    assert x.dtype == torch.float64 and bool((x[:, 2] == 0).all())
    torch.testing.assert_close(norm.denormalize(x), data, rtol=1e-6, atol=1e-5)


def test_samples_match_data_moments(trained, data):
    """After 400 steps the DDIM samples' per-dimension mean is within 0.3 of the data's and their std within a
    factor 0.75-1.3 (measured over seeds 0-3: mean error <= 0.15, std ratio 0.85-1.05).

    This catches a denormaliser that drops the mean (samples off by ~3). Forcing the mean to 0 in both normalise and
    denormalise, as the official code does, is a consistent change that short training largely survives (measured:
    mean error <= 0.23), so `test_normalizer_recovers_true_mean_and_std` is the test that catches that bug.
    """
    samples = sample_latents(trained, 2000, steps=50, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2000, Z) and samples.dtype == torch.float32
    assert (samples.mean(0) - data.mean(0)).abs().max() < 0.3
    ratio = samples.std(0) / data.std(0)
    assert 0.75 < ratio.min() and ratio.max() < 1.3


def test_training_is_deterministic_and_leaves_global_rng(data):
    """The same seed gives the same weights; another seed other weights; the global generator is untouched."""
    state = torch.get_rng_state()
    a, b = (train_latent(data[:200], config=SMALL, steps=5, batch_size=32, seed=3) for _ in range(2))
    c = train_latent(data[:200], config=SMALL, steps=5, batch_size=32, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb, pc in zip(a.net.parameters(), b.net.parameters(), c.net.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.net.parameters(), c.net.parameters()))
    assert not a.net.training and not any(p.requires_grad for p in a.net.parameters())


def test_sampling_is_in_eval_mode_with_dropout(data):
    """With dropout 0.5 two samplings from the same generator agree exactly (dropout off), though the same network
    in train mode is random; a model whose network is in train mode is refused."""
    model = train_latent(data[:200], config=LatentMLPConfig(z_dim=Z, hidden=32, layers=3, dropout=0.5), steps=5, batch_size=32)
    first, second = (sample_latents(model, 16, steps=10, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(first, second)
    z, t = torch.randn(4, Z), torch.full((4,), 0.5)
    model.net.train()
    assert not torch.equal(model.net(z, t), model.net(z, t))  # dropout is live in train mode
    with pytest.raises(ValueError, match="eval mode"):
        sample_latents(model, 4)
    with pytest.raises(ValueError, match="eval mode"):
        LatentModel(model.net, model.normalizer, model.schedule)
    model.net.eval()


def test_save_load_round_trip(trained, tmp_path):
    """A saved model reloads (no pickle: JSON and safetensors only) and gives identical samples."""
    folder = save_latent_model(trained, tmp_path / "latent")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "normalizer.safetensors"]
    loaded = load_latent_model(folder)
    assert not loaded.net.training and loaded.net.config == SMALL
    assert torch.equal(loaded.schedule.alpha_bar, trained.schedule.alpha_bar)
    same = [sample_latents(m, 64, steps=20, generator=torch.Generator().manual_seed(5)) for m in (trained, loaded)]
    assert torch.equal(*same)
    (folder / "config.json").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(ValueError, match="latent model"):
        load_latent_model(folder)


def test_default_schedule_is_the_reference_one(data):
    """Without a schedule: constant betas 0.008 over T = 1000 (docs/reference-differences.md §4); a given schedule is kept."""
    model = train_latent(data[:100], config=SMALL, steps=1, batch_size=8)
    assert model.schedule.config == {"kind": "constant", "num_steps": 1000, "beta": 0.008}
    other = train_latent(data[:100], config=SMALL, schedule=constant_schedule(50, beta=0.1), steps=1, batch_size=8)
    assert other.schedule.num_steps == 50
    assert sample_latents(other, 3, steps=50).shape == (3, Z)


def test_refusals(data, trained):
    """Too few rows, non-finite latents, a config of another size, bad settings and bad shapes are refused."""
    with pytest.raises(ValueError, match="n >= 2"):
        train_latent(data[:1], config=SMALL, steps=1)
    with pytest.raises(ValueError, match="n >= 2"):
        LatentNormalizer.fit(data[:1])
    bad = data[:10].clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        train_latent(bad, config=SMALL, steps=1)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        LatentNormalizer.fit(bad)
    with pytest.raises(ValueError, match="z_dim=8 but latents have 4"):
        train_latent(data[:10, :4], config=SMALL, steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_latent(data[:10], config=SMALL, steps=0)
    with pytest.raises(ValueError, match="need lr > 0"):
        train_latent(data[:10], config=SMALL, steps=1, lr=0)
    with pytest.raises(ValueError, match="num must be >= 1"):
        sample_latents(trained, 0)
    with pytest.raises(ValueError, match="timesteps"):
        sample_latents(trained, 2, steps=0)
    with pytest.raises(ValueError, match="std must be > 0"):
        LatentNormalizer(torch.zeros(Z), torch.zeros(Z))
    with pytest.raises(jaxtyping.TypeCheckError):
        train_latent(data[:, 0], config=SMALL, steps=1)
    with pytest.raises(jaxtyping.TypeCheckError):
        LatentNormalizer.fit(data[0])
