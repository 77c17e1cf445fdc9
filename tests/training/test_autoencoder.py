"""Training a diffusion autoencoder (docs/math.md §9): joint training, the encoder's own points, separate clipping, EMA of
both networks, checkpoints holding both, exact resume, samples that decode training latents, and the latent model
fitted to the trained latents."""

from typing import Any

import pytest
import torch
from torch import nn

from funcdiff.factory import TrainConfig, build_dataset
from funcdiff.operators import DiffusionAutoencoder, InftyDiffOperator, LatentMLP, LatentMLPConfig, SparseEncoder, preset_config
from funcdiff.points import Points, flat_index
from funcdiff.tasks import extract_latents
from funcdiff.training import load_trained, sample_latents, train_latent
from funcdiff.training import trainer as trainer_module
from funcdiff.training.estimate import estimate_sampling, estimate_training_step
from tests.training.conftest import replace, trainer_for


@pytest.fixture
def ae_config(tiny_config: TrainConfig) -> TrainConfig:
    """The tiny config as a diffusion autoencoder with 8-dimensional latents."""
    return replace(tiny_config, autoencoder=True, z_dim=8)


def test_the_config_builds_a_decoder_conditioned_on_the_encoders_latent(ae_config: TrainConfig) -> None:
    """--autoencoder builds a DiffusionAutoencoder whose decoder takes z of --z-dim and whose encoder makes it."""
    trainer = trainer_for(ae_config, progress=False)
    model = trainer.model
    assert isinstance(model, DiffusionAutoencoder) and model.decoder.config.z_dim == 8 and model.encoder.config.z_dim == 8
    assert model.encode(torch.zeros(3, 1, 16, 16)).shape == (3, 8)
    trainer.lock.release()


def test_joint_training_lowers_the_loss_and_trains_both_networks_and_their_ema(ae_config: TrainConfig) -> None:
    """Over 40 steps the mean loss of the last 10 is below that of the first 10; every encoder and decoder weight
    tensor that gets a gradient moves, and the EMA of each follows (moves, but differs from the live weights)."""
    trainer = trainer_for(replace(ae_config, steps=40, lr=3e-3), progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.run()
    losses = [row["loss"] for row in map(__import__("json").loads, (trainer.out_dir / "metrics.jsonl").read_text().splitlines())]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    for part in ("decoder", "encoder"):
        live, ema = getattr(result.model, part), getattr(result.ema, part)
        moved = [n for n, p in live.named_parameters() if not torch.equal(p, before[f"{part}.{n}"])]
        assert len(moved) > 0.8 * len(list(live.parameters())), part
        assert any(not torch.equal(e, before[f"{part}.{n}"]) for n, e in ema.named_parameters())
        assert any(not torch.equal(e, p) for e, p in zip(ema.parameters(), live.parameters()))


def test_the_encoder_sees_the_clean_data_at_its_own_draw_of_points(ae_config: TrainConfig, monkeypatch) -> None:
    """Each step the encoder gets as many points as the decoder, at other positions, with the clean values there."""
    trainer = trainer_for(replace(ae_config, steps=1, points=0.25), progress=False)
    seen: dict[str, list[Points]] = {"decoder": [], "encoder": []}
    for part in seen:
        network = getattr(trainer.model, part)

        def spy(points: Points, *args: Any, _forward=network.forward, _seen=seen[part]) -> torch.Tensor:
            _seen.append(points)
            return _forward(points, *args)

        monkeypatch.setattr(network, "forward", spy)
    trainer.run()
    (decoded,), (encoded,) = seen["decoder"], seen["encoder"]
    where = {part: flat_index(p.index, p.shape) for part, p in (("decoder", decoded), ("encoder", encoded))}
    assert where["decoder"].shape == where["encoder"].shape == (8, 64)
    assert not torch.equal(where["decoder"].sort(dim=1).values, where["encoder"].sort(dim=1).values)
    examples = torch.stack([trainer.dataset[i] for i in range(len(trainer.dataset))]).flatten(1)
    for values, index in zip(encoded.values, where["encoder"]):
        assert (examples[:, index] == values[:, 0]).all(dim=1).any()


def test_decoder_and_encoder_gradients_are_clipped_separately(ae_config: TrainConfig, monkeypatch) -> None:
    """Each step clips two groups: exactly the decoder's parameters, then exactly the encoder's."""
    calls = []
    original = nn.utils.clip_grad_norm_

    def recording(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        calls.append({id(p) for p in parameters})
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", recording)
    trainer = trainer_for(replace(ae_config, steps=2), progress=False)
    trainer.run()
    decoder = {id(p) for p in trainer.model.decoder.parameters()}
    encoder = {id(p) for p in trainer.model.encoder.parameters()}
    assert calls == [decoder, encoder, decoder, encoder]


def test_the_checkpoint_holds_both_networks_and_resume_is_exact(ae_config: TrainConfig, tmp_path) -> None:
    """load_trained rebuilds the autoencoder with the EMA of both networks; 3 steps + resume to 6 equals 6 in one go."""
    whole = trainer_for(replace(ae_config, out_dir=str(tmp_path / "whole")), progress=False).run()
    trainer_for(replace(ae_config, steps=3, out_dir=str(tmp_path / "split")), progress=False).run()
    resumed = trainer_for(replace(ae_config, out_dir=str(tmp_path / "split")), resume=True, progress=False).run()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    loaded, _, config = load_trained(tmp_path / "split" / "checkpoint")
    assert config["operator"]["kind"] == "diffusion_autoencoder" and config["operator"]["encoder"]["kind"] == "sparse_encoder"
    for (name, a), b in zip(loaded.state_dict().items(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(name.startswith("encoder.") for name in loaded.state_dict())


def test_training_samples_decode_the_latents_of_training_examples(ae_config: TrainConfig, monkeypatch) -> None:
    """The samples written during training decode the EMA encoder's latents of the first examples, shown beside them."""
    trainer = trainer_for(replace(ae_config, steps=2), progress=False)
    trainer.run()
    conds = []
    real = trainer_module.sample
    monkeypatch.setattr(trainer_module, "sample", lambda *a, **k: conds.append(k["cond"]) or real(*a, **k))
    paths = trainer.write_samples()
    with torch.no_grad():
        expected = trainer.ema.encode(torch.stack([trainer.dataset[i] for i in range(ae_config.sample_count)]))
    assert len(conds) == 3 and all(torch.equal(c, expected) for c in conds)
    assert [p.name for p in paths] == ["step0000002_16px.png", "step0000002_32px.png", "step0000002_64px.png"]
    assert (trainer.out_dir / "samples" / "inputs_16px.png").is_file()


def test_an_autoencoder_needs_a_latent_for_dense_calls_and_one_condition_for_point_calls() -> None:
    """forward_dense without z, and forward with both or neither of z and source, are errors that say what to pass."""
    config = preset_config("tiny", channels=1, resolution=8, z_dim=4)
    model = DiffusionAutoencoder(InftyDiffOperator(config), SparseEncoder(config))
    x, t = torch.zeros(1, 1, 8, 8), torch.zeros(1)
    with pytest.raises(ValueError, match="needs cond"):
        model.forward_dense(x, t)
    points = Points.from_dense(x)
    with pytest.raises(ValueError, match="exactly one of cond"):
        model(points, t)
    with pytest.raises(ValueError, match="exactly one of cond"):
        model(points, t, torch.zeros(1, 4), source=points)
    assert model(points, t, source=points).shape == (1, 64, 1)
    with pytest.raises(TypeError, match="encoder"):
        DiffusionAutoencoder(InftyDiffOperator(config), nn.Linear(2, 2))


def test_time_and_memory_estimates_cover_the_encoder(ae_config: TrainConfig) -> None:
    """The estimates that the command line prints before big runs work for an autoencoder (whose decoder needs z)."""
    trainer = trainer_for(ae_config, progress=False)
    step = estimate_training_step(trainer.model, trainer.process, trainer.data_shape, batch=2, points=0.25)
    sampling = estimate_sampling(trainer.model, trainer.process, (64, 64), batch=1, evaluations=2)
    assert step.seconds > 0 and sampling.seconds > 0 and sampling.peak_bytes > 0
    trainer.lock.release()


def test_the_latent_model_of_trained_latents_lowers_its_loss_and_samples_latents_of_their_size(ae_config: TrainConfig) -> None:
    """After joint training, the latent DDPM fitted to the EMA encoder's latents has a lower L1 noise-prediction loss
    on them than its untrained network (same noise and times), and DDIM draws finite latents of the encoder's size."""
    result = trainer_for(replace(ae_config, steps=10), progress=False).run()
    latents = extract_latents(result.ema, _examples(ae_config))
    config = LatentMLPConfig(z_dim=8, hidden=32, layers=3)
    trained = train_latent(latents, steps=300, config=config, batch_size=32, lr=2e-3, ema_decay=0.9, ema_every=1)
    torch.manual_seed(0)
    untrained = LatentMLP(config).eval()
    z0 = trained.normalizer.normalize(latents)
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(1, 1001, (z0.shape[0],), generator=gen)
    eps = torch.randn(z0.shape, generator=gen)
    a = trained.schedule.alpha_bar[t].float()[:, None]
    noisy, time = a.sqrt() * z0 + (1 - a).sqrt() * eps, t.float() / 1000
    with torch.no_grad():
        assert (trained.net(noisy, time) - eps).abs().mean() < 0.8 * (untrained(noisy, time) - eps).abs().mean()
    drawn = sample_latents(trained, 5, steps=10, generator=torch.Generator().manual_seed(2))
    assert drawn.shape == (5, 8) and bool(drawn.isfinite().all())


def _examples(config: TrainConfig) -> list[torch.Tensor]:
    """The training examples of ``config``."""
    data = build_dataset(config)
    return [data[i] for i in range(len(data))]
