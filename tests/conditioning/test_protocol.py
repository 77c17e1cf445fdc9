"""`EncodedConditioning` is a real plug point: a user's operator that encodes its condition from the data (not a
`DiffusionAutoencoder`) trains jointly, samples from its training examples' latents and inpaints through it."""

import torch
from torch import nn

import funcdiff
from funcdiff import GaussianMollifier, GridDomain, MollifiedDDPM, NeuralOperator, Points, cosine_schedule
from funcdiff.conditioning import EncodedConditioning
from funcdiff.operators import DiffusionAutoencoder
from funcdiff.tasks import inpaint
from funcdiff.tasks.inpainting import make_mask
from funcdiff.training import TrainSettings, Trainer


@funcdiff.register("test-mean-conditioned")
class MeanConditioned(nn.Module, NeuralOperator, EncodedConditioning):
    """A pointwise denoiser conditioned on a code of the data's mean, with its own encoder."""

    reference_shape = (8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.encoder = nn.Linear(1, 1)
        self.encoded_points = 0

    def forward(self, points, t, cond=None, *, source=None):
        z = self.encode_points(source) if source is not None else cond
        n = points.values.shape[1]
        extra = torch.stack([t[:, None].expand(-1, n), z.expand(-1, n)], -1)
        return self.net(torch.cat([points.values, extra], -1))

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        values = x.flatten(2).transpose(1, 2)
        extra = torch.stack([t[:, None].expand(-1, values.shape[1]), cond.expand(-1, values.shape[1])], -1)
        return self.net(torch.cat([values, extra], -1)).transpose(1, 2).reshape(x.shape)

    def encode(self, x, *, chunk_points=None):
        return self.encoder(x.mean((2, 3)))

    def encode_points(self, points: Points):
        self.encoded_points += 1
        return self.encoder(points.values.mean(1))

    def training_inputs(self, source: Points):
        return {"source": source}

    def parameter_groups(self):
        return [list(self.net.parameters()), list(self.encoder.parameters())]

    def to_dict(self):
        return {"kind": "test-mean-conditioned"}


def test_a_users_conditioned_operator_trains_samples_and_inpaints(tmp_path) -> None:
    """Clip groups come from `parameter_groups`, the encoder learns through `training_inputs`, the periodic samples
    decode the training examples' codes (`encode`), and inpainting encodes the known pixels (`encode_points`)."""
    assert isinstance(DiffusionAutoencoder, type) and issubclass(DiffusionAutoencoder, EncodedConditioning)
    torch.manual_seed(0)
    model = MeanConditioned()
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(20), GaussianMollifier(0.05))
    data = [torch.rand(1, 8, 8) * 2 - 1 for _ in range(8)]
    settings = TrainSettings(steps=3, batch_size=4, lr=1e-2, log_every=1, checkpoint_every=0, sample_count=2, sample_steps=2,
                             out_dir=str(tmp_path / "run"))
    trainer = Trainer(model, process, data, settings, progress=False)
    assert [len(g) for g in trainer.clip_groups] == [2, 2]
    before = model.encoder.weight.detach().clone()
    trainer.run()
    assert not torch.equal(before, model.encoder.weight) and model.encoded_points >= 3
    paths = trainer.write_samples()
    assert paths and (tmp_path / "run" / "samples").is_dir() and any((tmp_path / "run" / "samples").glob("inputs_*"))
    calls = model.encoded_points
    out = inpaint(model.eval(), process, data[0], make_mask("box", (8, 8)), steps=2, num=2)
    assert out.shape == (2, 1, 8, 8) and model.encoded_points == calls + 1
