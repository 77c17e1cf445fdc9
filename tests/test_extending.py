"""docs/extending.md runs as written, and the user components it defines (a mollifier, a domain, a process and an
operator, public API only) train through the same Trainer, sample at two resolutions through the generic
samplers, and reload from a checkpoint into equal objects with equal samples."""

import json
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import funcdiff
from funcdiff import FunctionalFlowMatching, sample_ddpm, sample_heun
from funcdiff.operators import LatentEncoder
from funcdiff.training import TrainSettings, Trainer, load_trained, read_checkpoint
from funcdiff.training.checkpoint import CHECKSUM, config_checksum
from funcdiff.sampling import sample
from tests.helpers import grid_of

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def user() -> types.ModuleType:
    """The guide's blocks executed in order as one module, ``user_components``, as a user's own module would be."""
    module = types.ModuleType("user_components")
    sys.modules[module.__name__] = module
    for code in BLOCKS:
        exec(compile(code, str(GUIDE), "exec"), module.__dict__)
    yield module
    del sys.modules[module.__name__]


def smooth_functions(count: int, size: int, seed: int) -> list[torch.Tensor]:
    """Random plane waves on a ``size`` grid: smooth data in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    u = (torch.arange(size) + 0.5) / size
    freqs = torch.rand(count, 2, generator=gen) * 2
    phases = torch.rand(count, generator=gen) * 2 * math.pi
    return [torch.sin(2 * math.pi * (f * u[:, None] + g * u[None, :]) + p)[None] for (f, g), p in zip(freqs.tolist(), phases.tolist())]


def test_the_guide_has_all_four_components(user) -> None:
    """Each protocol has a worked example (an encoder too), and every block ran (the fixture executed them)."""
    assert len(BLOCKS) == 8
    assert isinstance(user.BoxMollifier(0.1), funcdiff.Mollifier)
    assert isinstance(user.StripDomain(2, 1), funcdiff.Domain)
    assert isinstance(user.VelocityDDPM(user.StripDomain(2, 1), user.BoxMollifier(0.1)), funcdiff.DenoisingProcess)
    assert isinstance(user.TwoKernelOperator(1, (8, 8)), funcdiff.NeuralOperator)
    assert isinstance(user.MeanPoolEncoder(1, 4), LatentEncoder) and isinstance(user.trained.encoder, user.MeanPoolEncoder)


def test_box_mollifier_is_a_moving_average(user) -> None:
    """The user mollifier (independent check): a constant stays constant and, away from the borders, a window of
    3 cells of a linear ramp averages to the ramp itself (the mean of a linear function over a symmetric window)."""
    m = user.BoxMollifier(width=3 / 32)
    ramp = torch.linspace(-1, 1, 32, dtype=torch.float64).view(1, 1, 32)
    torch.testing.assert_close(m.mollify(torch.ones(1, 1, 32, dtype=torch.float64)), torch.ones(1, 1, 32, dtype=torch.float64))
    torch.testing.assert_close(m.mollify(ramp)[..., 8:24], ramp[..., 8:24], atol=0.02, rtol=0)


def test_user_components_train_sample_and_reload(user, tmp_path: Path) -> None:
    """Train a few dozen steps through the Trainer, sample at 16 and 32 px, reload into equal objects and samples."""
    domain = user.StripDomain(ndim=2, channels=1)
    process = user.VelocityDDPM(domain, user.BoxMollifier(width=1 / 16), num_steps=100)
    torch.manual_seed(0)
    operator = user.TwoKernelOperator(channels=1, reference_shape=(16, 16))
    settings = TrainSettings(points=0.5, batch_size=8, lr=3e-3, steps=40, log_every=1, checkpoint_every=0, sample_count=2,
                             sample_steps=5, out_dir=str(tmp_path / "run"))
    trainer = Trainer(operator, process, smooth_functions(64, 16, seed=1), settings, progress=False)
    result = trainer.run()
    losses = [json.loads(line)["loss"] for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 40 and sum(losses[-10:]) < sum(losses[:10])
    assert [p.name for p in sorted((result.out_dir / "samples").glob("*.png"))] == []  # run() writes none; train() does
    trainer.write_samples()
    assert len(list((result.out_dir / "samples").glob("*.png"))) == 3

    model, reloaded, config = load_trained(result.out_dir / "checkpoint")
    assert type(model) is user.TwoKernelOperator and type(reloaded) is user.VelocityDDPM
    assert reloaded.to_dict() == process.to_dict() and model.to_dict() == operator.to_dict()
    assert type(reloaded.domain) is user.StripDomain and type(reloaded.mollifier) is user.BoxMollifier
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trainer.ema.state_dict()[name]), name

    for resolution in (16, 32):
        first = sample(trainer.ema, process, resolution, batch=2, steps=10, generator=torch.Generator().manual_seed(3))
        again = sample(model, reloaded, resolution, batch=2, steps=10, generator=torch.Generator().manual_seed(3))
        assert first.shape == (2, 1, resolution, resolution) and bool(first.isfinite().all())
        assert torch.equal(first, again)
    y_T = reloaded.prior(2, (1, 32, 32), (16, 16), generator=torch.Generator().manual_seed(4))
    ancestral = sample_ddpm(lambda y, t, c: model.forward_dense(y, t, c), y_T, grid_of(reloaded, 20), process=reloaded, reference_shape=(16, 16), generator=torch.Generator().manual_seed(5))
    assert ancestral.shape == (2, 1, 32, 32) and bool(ancestral.isfinite().all())


def test_user_domain_and_mollifier_under_the_built_in_flow(user, tmp_path: Path) -> None:
    """Functional flow matching runs on the user's domain, mollifier and operator; samples respect the domain's
    value range (here [0, 1]) and reload equal."""
    domain = user.StripDomain(ndim=2, channels=1, value_range=(0.0, 1.0))
    process = FunctionalFlowMatching(domain, user.BoxMollifier(width=1 / 16))
    torch.manual_seed(0)
    operator = user.TwoKernelOperator(channels=1, reference_shape=(16, 16))
    data = [(x + 1) / 2 for x in smooth_functions(32, 16, seed=2)]
    settings = TrainSettings(points=64, batch_size=8, lr=3e-3, steps=10, log_every=0, checkpoint_every=0, out_dir=str(tmp_path / "flow"))
    result = Trainer(operator, process, data, settings, progress=False).run()
    model, reloaded, _ = load_trained(result.out_dir / "checkpoint")
    assert reloaded.to_dict() == process.to_dict()
    images = sample(model, reloaded, 32, batch=2, steps=4, sampler=sample_heun)
    assert images.shape == (2, 1, 32, 32) and float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_loading_an_unregistered_kind_says_what_to_import(user, tmp_path: Path) -> None:
    """A checkpoint naming a kind no imported module registered is refused with the kinds that are known."""
    operator = user.TwoKernelOperator(channels=1, reference_shape=(8, 8))
    process = user.VelocityDDPM(user.StripDomain(2, 1), user.BoxMollifier(0.1), num_steps=10)
    settings = TrainSettings(steps=1, batch_size=2, checkpoint_every=0, log_every=0, out_dir=str(tmp_path / "r"))
    Trainer(operator, process, smooth_functions(4, 8, seed=0), settings, progress=False).run()
    path = tmp_path / "r" / "checkpoint" / "config.json"
    config = json.loads(path.read_text())
    config["process"]["mollifier"]["kind"] = "not-registered-anywhere"
    path.write_text(json.dumps({**config, CHECKSUM: config_checksum(config)}))  # re-signed: the checksum would catch it first
    with pytest.raises(ValueError, match="import the module that registers it"):
        load_trained(tmp_path / "r" / "checkpoint")
    assert read_checkpoint(tmp_path / "r" / "checkpoint").config["operator"]["kind"] == "two-kernel"
    path.write_text(json.dumps({**config, "format_version": 1}))  # written before components had kinds
    with pytest.raises(ValueError, match="checkpoint format 1"):
        load_trained(tmp_path / "r" / "checkpoint")


def test_trainer_refuses_what_is_not_a_component(user, tmp_path: Path) -> None:
    """An object missing a protocol's methods is refused where it enters (beartype against the protocol)."""
    process = user.VelocityDDPM(user.StripDomain(2, 1), user.BoxMollifier(0.1), num_steps=10)
    settings = TrainSettings(steps=1, out_dir=str(tmp_path / "x"))
    with pytest.raises(Exception, match="NeuralOperator"):
        Trainer(torch.nn.Linear(1, 1), process, smooth_functions(2, 8, seed=0), settings)
    with pytest.raises(Exception, match="DiffusionProcess"):
        Trainer(user.TwoKernelOperator(1, (8, 8)), object(), smooth_functions(2, 8, seed=0), settings)


def test_registering_a_kind_twice_for_different_classes_is_refused() -> None:
    """A kind names one class; re-registering the same class (e.g. a re-run cell) is allowed."""

    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        funcdiff.register("gaussian")(Other)
    funcdiff.register("gaussian")(funcdiff.GaussianMollifier)


def test_components_nested_in_tuples_and_dicts_round_trip() -> None:
    """Settings holding components inside tuples or dicts save to JSON and build back (lists become tuples)."""
    from funcdiff.registry import component_dict

    config = component_dict("test-holder", parts=(funcdiff.GaussianMollifier(0.1), funcdiff.IdentityMollifier()),
                            named={"a": funcdiff.GaussianMollifier(0.2), "sizes": (1, 2)})
    loaded = json.loads(json.dumps(config))

    @funcdiff.register("test-holder")
    class Holder:
        def __init__(self, parts, named):
            self.parts, self.named = parts, named

    held = funcdiff.build(loaded)
    assert [type(p) for p in held.parts] == [funcdiff.GaussianMollifier, funcdiff.IdentityMollifier]
    assert held.named["a"].sigma == 0.2 and held.named["sizes"] == (1, 2)


def test_a_hand_made_schedule_saves_its_table() -> None:
    """A Schedule built from a table rebuilds from its config with the same table."""
    from funcdiff.processes import Schedule

    table = torch.tensor([1.0, 0.9, 0.5, 0.01], dtype=torch.float64)
    process = funcdiff.MollifiedDDPM(funcdiff.GridDomain(1, 1), Schedule(table), funcdiff.IdentityMollifier())
    again = funcdiff.build(json.loads(json.dumps(process.to_dict())))
    assert torch.equal(again.schedule.alpha_bar, table) and again.num_steps == 3


def test_the_audio_walkthrough_trains_a_users_data_set_in_an_audio_domain(user) -> None:
    """The guide's chirps: exact nesting (the master box-averaged), an AudioDomain built from the data set's duration,
    and WAV files at twice the training rate written by the domain."""
    from funcdiff import AudioDomain
    from funcdiff.domains import box_average, read_wav

    torch.testing.assert_close(box_average(user.Chirps(resolution=1000).clips, 2), user.Chirps(resolution=500).clips)
    assert isinstance(user.chirp_process.domain, AudioDomain) and user.chirp_process.domain.duration == 1.0
    assert user.twice.shape == (2, 1, 1000) and torch.isfinite(user.twice).all()
    signal, rate = read_wav(Path(user.chirps_config.out_dir) / "1000Hz" / "0001.wav")
    assert rate == 1000 and signal.shape == (1, 1000) and user.written.name == "1000Hz.png"
