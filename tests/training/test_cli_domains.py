"""The same commands for every domain: train and sample clips of recorded notes (WAV files at the asked rates,
spectrograms) and volumes of shapes (slice pictures), and the demo's per-data-set defaults."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from funcdiff.domains import read_png, read_wav
from tests.training.test_cli_and_examples import ROOT, run

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(),
    reason="rendering notes needs FluidSynth and its soundfont: apt-get install -y fluidsynth fluid-soundfont-gm",
)
SMALL = ["--preset", "tiny", "--batch-size", "4", "--diffusion-steps", "50", "--sample-count", "2", "--sample-steps", "2",
         "--log-every", "1"]


@needs_fluidsynth
def test_train_and_sample_notes_at_twice_and_four_times_the_rate(tmp_path: Path, monkeypatch) -> None:
    """A tiny model trained on 8 notes at 1 kHz writes WAVs at 1, 2 and 4 kHz, spectrograms and a rate comparison."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path / "cache"))
    run("-m", "funcdiff", "train", "--data", "notes", "--data-limit", "8", "--resolution", "1000", "--steps", "3",
        *SMALL, "--out-dir", "run", cwd=tmp_path)
    written = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert written == [f"step0000003_{r}Hz{suffix}" for r in (1000, 2000, 4000) for suffix in (".png", "_waveforms.png")]
    config = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert config["process"]["domain"]["kind"] == "audio" and config["operator"]["reference_shape"] == [1000]
    out = run("-m", "funcdiff", "sample", "--checkpoint", "run/checkpoint", "--resolutions", "1000", "2000", "--num", "2",
              "--sample-steps", "2", "--out-dir", "s", cwd=tmp_path).stdout
    assert "2000Hz: s/2000Hz.png" in out and "compare: s/rates.png" in out
    for rate in (1000, 2000):
        signal, got = read_wav(tmp_path / "s" / f"{rate}Hz" / "0001.wav")
        assert got == rate and signal.shape == (1, rate)
    assert read_png(tmp_path / "s" / "rates.png").shape[0] == 3


def test_volumes_train_and_sample_with_slice_pictures(tmp_path: Path) -> None:
    """A tiny 3-D model on shapes at 8^3 writes slice pictures at 8^3 and 16^3 (not 32^3) during training, and
    `sample` writes the volumes as tensors with pictures."""
    run("-m", "funcdiff", "train", "--data", "shapes", "--data-limit", "8", "--resolution", "8", "--steps", "2", *SMALL,
        "--out-dir", "run", cwd=tmp_path)
    written = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert written == ["step0000002_16px.png", "step0000002_16px.safetensors", "step0000002_8px.png", "step0000002_8px.safetensors"]
    run("-m", "funcdiff", "sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "--num", "2", "--sample-steps", "2",
        "--out-dir", "s", cwd=tmp_path)
    assert (tmp_path / "s" / "16px.safetensors").exists() and read_png(tmp_path / "s" / "16px.png", channels=1).shape[0] == 1


def test_the_demo_takes_each_data_sets_defaults_and_the_users_flags(tmp_path: Path) -> None:
    """``demo --data notes`` is the audio demo (4 kHz, the FNO of audio-small's size conditioned on instrument and
    pitch, eight minutes); flags the user gives win."""
    notes = json.loads(run("-m", "funcdiff", "demo", "--data", "notes", "--dry-run", cwd=tmp_path).stdout)
    assert (notes["resolution"], notes["preset"], notes["operator"], notes["conditional"], notes["time_budget"], notes["out_dir"]) == \
        (4000, "audio-small", "fno", True, 480.0, "runs/demo-notes")
    digits = json.loads(run("-m", "funcdiff", "demo", "--data", "digits", "--no-conditional", "--dry-run", cwd=tmp_path).stdout)
    assert digits["conditional"] is False and digits["operator"] == "fno"
    changed = json.loads(run("-m", "funcdiff", "demo", "--data", "shapes", "--lr", "0.002", "--dry-run", cwd=tmp_path).stdout)
    assert (changed["resolution"], changed["preset"], changed["lr"]) == (16, "tiny", 0.002)
    # a flag that repeats the icons demo's value is still the user's choice
    same = json.loads(run("-m", "funcdiff", "demo", "--data=notes", "--preset", "cpu-small", "--dry-run", cwd=tmp_path).stdout)
    assert (same["preset"], same["resolution"]) == ("cpu-small", 4000)
    off = json.loads(run("-m", "funcdiff", "demo", "--data", "shapes", "--no-ema-warmup", "--dry-run", cwd=tmp_path).stdout)
    assert off["ema_warmup"] is False and off["preset"] == "tiny"
    assert (notes["process"], digits["process"], off["process"], off["p_mean"]) == ("ddpm", "ddpm", "ddpm", None)  # only the icons demo is EDM
    assert os.listdir(tmp_path) == []


@needs_fluidsynth
def test_the_python_audio_example_runs(tmp_path: Path, monkeypatch) -> None:
    """examples/audio/train_notes.py composes the components in Python and writes WAVs at 1x, 2x and 4x the rate."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path / "cache"))
    run(str(ROOT / "examples" / "audio" / "train_notes.py"), "--rate", "1000", "--preset", "tiny", "--data-limit", "8",
        "--steps", "3", "--time-budget", "0", "--sample-count", "2", "--sample-steps", "2", "--out-dir", "notes", cwd=tmp_path)
    for rate in (1000, 2000, 4000):
        assert read_wav(tmp_path / "notes" / "samples" / f"{rate}Hz" / "0001.wav")[1] == rate
    assert (tmp_path / "notes" / "samples" / "rates.png").exists()


@needs_fluidsynth
def test_eval_scores_an_audio_checkpoint_at_twice_the_rate(tmp_path: Path, monkeypatch) -> None:
    """`funcdiff eval --resolution-study` on a notes checkpoint scores 1, 2 and 4 kHz against held-out notes and writes
    the audio report."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path / "cache"))
    run("-m", "funcdiff", "train", "--data", "notes", "--data-limit", "8", "--resolution", "1000", "--steps", "2",
        *SMALL, "--out-dir", "run", cwd=tmp_path)
    out = run("-m", "funcdiff", "eval", "--checkpoint", "run/checkpoint", "--resolution-study", "--num", "4",
              "--sample-steps", "2", "--data-limit", "8", "--out-dir", "e", cwd=tmp_path).stdout
    scores = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert [row["rate"] for row in scores["rows"]] == [1000, 2000, 4000], scores
    assert "report: e/report.md" in out and (tmp_path / "e" / "spectrograms.png").exists()


def test_the_fourier_neural_operator_trains_samples_and_resumes_from_the_command_line(tmp_path: Path) -> None:
    """``--operator fno`` builds the FNO of the preset's size (tiny -> fno-tiny) and records it; sample and resume
    rebuild it from the checkpoint; the refusal of an unknown combination names the setting."""
    run("-m", "funcdiff", "train", "--data", "icons", "--data-limit", "8", "--resolution", "16", "--operator", "fno",
        "--steps", "2", *SMALL, "--out-dir", "run", cwd=tmp_path)
    config = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert config["operator"]["kind"] == "fno" and config["operator"]["modes"] == [8, 8]
    run("-m", "funcdiff", "sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "32", "--num", "2",
        "--sample-steps", "2", "--out-dir", "s", cwd=tmp_path)
    assert read_png(tmp_path / "s" / "32px.png").shape[-1] > 0
    run("-m", "funcdiff", "train", "--data", "icons", "--data-limit", "8", "--resolution", "16", "--operator", "fno",
        "--steps", "3", *SMALL, "--out-dir", "run", "--resume", cwd=tmp_path)
    assert json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["step"] == 3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refused = subprocess.run([sys.executable, "-m", "funcdiff", "train", "--preset", "paper-256", "--operator", "fno", "--dry-run"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "operator" in refused.stdout + refused.stderr


def test_a_label_conditional_model_trains_on_class_folders_and_samples_the_classes_asked_for(tmp_path: Path) -> None:
    """``--conditional`` on a folder with one subfolder per class records the classes; ``sample --class`` with
    ``--guidance-scale`` draws them, ``eval`` records both; an unknown class, guidance for a plain model and labels of unlabelled data are
    refused in one line naming the problem."""
    from tests.data.files import save_random_image

    for i in range(40):
        save_random_image(tmp_path / "shapes" / ("disc" if i % 2 else "stripe") / f"{i}.png", (16, 16), mode="L", seed=i)
    common = ["--resolution", "16", "--channels", "1", "--steps", "2", *SMALL]
    run("-m", "funcdiff", "train", "--data", "./shapes", "--conditional", *common, "--out-dir", "run", cwd=tmp_path)
    config = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert config["operator"]["kind"] == "label_conditional" and config["operator"]["vocabulary"] == {"class": ["disc", "stripe"]}
    run("-m", "funcdiff", "sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "32", "--num", "2", "--class", "Disc",
        "--class", "1", "--guidance-scale", "3", "--sample-steps", "2", "--out-dir", "s", cwd=tmp_path)
    assert read_png(tmp_path / "s" / "32px.png").shape[-1] > 0
    run("-m", "funcdiff", "eval", "--checkpoint", "run/checkpoint", "--num", "2", "--sample-steps", "2", "--guidance-scale", "2",
        "--class", "disc", "--out-dir", "ev", cwd=tmp_path)
    details = json.loads((tmp_path / "ev" / "scores.json").read_text())["details"]
    assert (details["classes"], details["guidance"]) == ("disc", 2.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run("-m", "funcdiff", "train", "--data", "./shapes", *common, "--out-dir", "plain", cwd=tmp_path)
    for args, message in ((["sample", "--checkpoint", "run/checkpoint", "--class", "square"], "no class 'square' of 'class'"),
                          (["sample", "--checkpoint", "plain/checkpoint", "--guidance-scale", "2"], "label-conditional checkpoints"),
                          (["train", "--data", "icons", "--conditional", "--dry-run", "--data-limit", "2"], None),
                          (["train", "--data", "icons", "--conditional", "--data-limit", "2", "--resolution", "16", "--steps", "1",
                            "--out-dir", "icons"], "no labels to condition on")):
        done = subprocess.run([sys.executable, "-m", "funcdiff", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        if message is None:
            assert done.returncode == 0, done.stderr
        else:
            assert done.returncode != 0 and message in done.stderr, done.stderr
            assert len([line for line in done.stderr.splitlines() if "error" in line]) == 1, done.stderr


def test_the_edm_family_and_ot_coupled_flows_train_and_sample_from_the_command_line(tmp_path: Path) -> None:
    """``--process edm`` records a mollified EDM and samples with Heun (``auto``) or the DDIM step; ``--coupling ot``
    records the flow's coupling; OT for a DDPM is refused naming the setting."""
    common = ["--data", "icons", "--data-limit", "8", "--resolution", "16", "--steps", "2", *SMALL]
    run("-m", "funcdiff", "train", *common, "--process", "edm", "--sigma-data", "0.6", "--p-mean", "0.1", "--p-std", "1.6",
        "--out-dir", "edm", cwd=tmp_path)
    process = json.loads((tmp_path / "edm" / "checkpoint" / "config.json").read_text())["process"]
    assert process["kind"] == "mollified_edm" and (process["sigma_data"], process["p_mean"], process["p_std"]) == (0.6, 0.1, 1.6)
    for sampler in ("auto", "edm_ddim"):
        run("-m", "funcdiff", "sample", "--checkpoint", "edm/checkpoint", "--resolutions", "16", "32", "--num", "2", "--sample-steps", "3",
            "--sampler", sampler, "--out-dir", f"s-{sampler}", cwd=tmp_path)
        assert read_png(tmp_path / f"s-{sampler}" / "32px.png").shape[-1] > 0
    run("-m", "funcdiff", "train", *common, "--process", "flow", "--coupling", "ot", "--out-dir", "ot", cwd=tmp_path)
    assert json.loads((tmp_path / "ot" / "checkpoint" / "config.json").read_text())["process"]["coupling"] == "ot"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refused = subprocess.run([sys.executable, "-m", "funcdiff", "train", "--coupling", "ot", "--dry-run"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "coupling" in refused.stderr
    for flag, args in (("--p-mean", ["--p-mean", "0.1"]), ("--p-std", ["--process", "edm", "--p-std", "0"])):  # for a DDPM; not positive
        refused = subprocess.run([sys.executable, "-m", "funcdiff", "train", *args, "--dry-run"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True)
        assert refused.returncode != 0 and flag in refused.stderr
