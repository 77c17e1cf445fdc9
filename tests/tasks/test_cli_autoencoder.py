"""The diffusion autoencoder from the command line, end to end on a tiny model: train --autoencoder, train-latent,
sample through the latent model, encode, reconstruct, interpolate, and superres / inpaint with the latent."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from funcdiff.commands import main
from funcdiff.domains import read_png, write_png
from funcdiff.training.latent import read_latent_config
from tests.training.test_cli_and_examples import TINY


def funcdiff(capsys, *args: str) -> str:
    """Run ``funcdiff ARGS`` in this process; fail with its output unless it succeeds; return its stdout."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out


@pytest.fixture
def run(tmp_path: Path, capsys, monkeypatch) -> Path:
    """A tiny autoencoder on icons at 16 px, trained for two steps, in ``tmp_path/run``; the working directory."""
    monkeypatch.chdir(tmp_path)
    funcdiff(capsys, "train", *TINY, "--autoencoder", "--z-dim", "4", "--steps", "2", "--out-dir", "run")
    return tmp_path / "run"


def test_sampling_needs_a_latent_model_then_draws_through_it(run: Path, capsys) -> None:
    """Without a latent model, sample says how to make one; train-latent puts one beside the checkpoint, recording
    where its latents came from, and sample (and eval) then decode its latents at every resolution."""
    assert main(["sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "--num", "2", "--sample-steps", "2"]) == 1
    assert "funcdiff train-latent --checkpoint run/checkpoint" in capsys.readouterr().err
    out = funcdiff(capsys, "train-latent", "--checkpoint", "run/checkpoint", "--steps", "5", "--hidden", "16", "--layers", "2",
                   "--batch-size", "8")
    assert "latents: (16, 4) (without mirrored copies)" in out  # as the autoencoder was trained (no --flip)
    provenance = read_latent_config(run / "latent")["provenance"]
    assert provenance["checkpoint"] == str((run / "checkpoint").resolve()) and provenance["step"] == 2 and not provenance["flip"]
    assert load_file(str(run / "latent" / "latents.safetensors"))["latents"].shape == (16, 4)
    out = funcdiff(capsys, "sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "32", "--num", "2",
                   "--sample-steps", "2", "--out-dir", "samples")
    assert "16px: samples/16px.png" in out and "32px: samples/32px.png" in out
    assert read_png(Path("samples/32px/0001.png"), channels=1).shape == (1, 32, 32)
    out = funcdiff(capsys, "eval", "--checkpoint", "run/checkpoint", "--num", "8", "--sample-steps", "2", "--data-limit", "40",
                   "--out-dir", "eval")
    assert "report: eval/report.md" in out


def test_a_latent_model_of_an_older_encoder_is_refused_and_overwrite_removes_it(run: Path, capsys) -> None:
    """After more training the encoder has changed: sample refuses the old latent model and says what to run; a run
    started over with --overwrite does not inherit it."""
    funcdiff(capsys, "train-latent", "--checkpoint", "run/checkpoint", "--steps", "2", "--hidden", "8", "--layers", "2")
    funcdiff(capsys, "train", *TINY, "--autoencoder", "--z-dim", "4", "--steps", "3", "--out-dir", "run", "--resume")
    assert main(["sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "--num", "1", "--sample-steps", "2"]) == 1
    err = capsys.readouterr().err
    assert "at step 2, not to run/checkpoint at step 3" in err and "train-latent --checkpoint run/checkpoint" in err
    funcdiff(capsys, "train", *TINY, "--autoencoder", "--z-dim", "4", "--steps", "1", "--out-dir", "run", "--overwrite")
    assert not (run / "latent").exists()


def test_encode_reconstruct_and_interpolate(run: Path, capsys) -> None:
    """encode writes one latent per image; reconstruct writes each resolution and its PSNR; interpolate a path."""
    u, v = torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 24)
    write_png((u[:, None] * v[None, :]).view(1, 16, 24), Path("a.png"))  # not square: any grid works
    write_png(v.view(1, 1, 24).expand(1, 16, 24), Path("b.png"))
    funcdiff(capsys, "encode", "a.png", "b.png", "--checkpoint", "run/checkpoint", "--out", "z.safetensors")
    assert load_file("z.safetensors")["latents"].shape == (2, 4)
    out = funcdiff(capsys, "reconstruct", "a.png", "b.png", "--checkpoint", "run/checkpoint", "--sample-steps", "2", "--out-dir", "rec")
    assert "16 px: PSNR against the input" in out and "32 px: PSNR against the input, box-averaged to 16 px" in out
    assert read_png(Path("rec/32px/0001.png"), channels=1).shape == (1, 32, 48)
    assert read_png(Path("rec/reconstruct.png"), channels=1).shape == (1, 3 * 33 + 1, 2 * 49 + 1)
    out = funcdiff(capsys, "interpolate", "a.png", "b.png", "--checkpoint", "run/checkpoint", "--count", "3", "--sample-steps", "2",
                   "--out-dir", "path")
    assert "3 pictures at 16 px" in out and read_png(Path("path/interpolate.png"), channels=1).shape == (1, 18, 5 * 25 + 1)


def test_superres_and_inpaint_run_on_an_autoencoder_checkpoint(run: Path, capsys) -> None:
    """The conditional tasks take an autoencoder checkpoint (its decoder conditioned on the input's latent)."""
    write_png(torch.linspace(-1, 1, 64).view(1, 8, 8), Path("low.png"))
    out = funcdiff(capsys, "superres", "low.png", "--checkpoint", "run/checkpoint", "--scale", "2", "--num", "1", "--sample-steps", "2",
                   "--out-dir", "sr")
    assert "16 px from 8 px" in out
    write_png(torch.linspace(-1, 1, 256).view(1, 16, 16), Path("image.png"))
    out = funcdiff(capsys, "inpaint", "image.png", "half", "--checkpoint", "run/checkpoint", "--num", "1", "--sample-steps", "2",
                   "--out-dir", "ip")
    assert "guidance: ip/guidance" in out and "replace: ip/replace" in out


def test_autoencoder_commands_refuse_a_plain_checkpoint(tmp_path: Path, capsys, monkeypatch) -> None:
    """reconstruct on a checkpoint without an encoder is a one-line error that says to train with --autoencoder."""
    monkeypatch.chdir(tmp_path)
    funcdiff(capsys, "train", *TINY, "--steps", "1", "--out-dir", "plain")
    write_png(torch.zeros(1, 16, 16), Path("a.png"))
    assert main(["reconstruct", "a.png", "--checkpoint", "plain/checkpoint"]) == 1
    assert "train with --autoencoder" in capsys.readouterr().err


def test_the_demo_of_an_autoencoder_trains_a_latent_model_and_samples_through_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """demo --autoencoder trains the autoencoder, then its latent model, then samples at 1x, 2x and 4x."""
    monkeypatch.chdir(tmp_path)
    out = funcdiff(capsys, "demo", *TINY, "--autoencoder", "--z-dim", "4", "--steps", "2", "--latent-steps", "3", "--out-dir", "demo")
    assert "trained the latent model (3 steps)" in out and "64px: demo/samples/64px.png" in out
    assert (tmp_path / "demo" / "latent" / "config.json").is_file()
