"""The conditional tasks from the command line: ``funcdiff superres`` (and ``inpaint``) on a tiny checkpoint."""

from pathlib import Path

import torch

from funcdiff.domains import read_png, write_png
from tests.training.test_cli_and_examples import TINY, run


def tiny_checkpoint(tmp_path: Path) -> Path:
    """A tiny icons model at 16 px trained for two steps."""
    run("-m", "funcdiff", "train", *TINY, "--steps", "2", "--out-dir", "run", cwd=tmp_path)
    return tmp_path / "run" / "checkpoint"


def test_superres_writes_samples_at_scale_times_the_input_and_reports_consistency(tmp_path: Path) -> None:
    """An 8 px image at scale 2: 16 px samples, a picture of input, bicubic and samples, and a PSNR per sample."""
    tiny_checkpoint(tmp_path)
    write_png(torch.linspace(-1, 1, 64).view(1, 8, 8), tmp_path / "low.png")
    out = run("-m", "funcdiff", "superres", "low.png", "--checkpoint", "run/checkpoint", "--scale", "2", "--num", "2",
              "--sample-steps", "3", "--out-dir", "sr", cwd=tmp_path).stdout
    assert "16 px from 8 px: sr/superres.png" in out and "PSNR against the input (dB): " in out
    assert read_png(tmp_path / "sr" / "samples" / "0001.png", channels=1).shape == (1, 16, 16)
    assert read_png(tmp_path / "sr" / "superres.png", channels=1).shape == (1, 16 + 2, 4 * 17 + 1)


def test_inpaint_with_a_builtin_mask_and_a_mask_file_for_both_methods(tmp_path: Path) -> None:
    """Both methods write samples and one picture row each; a mask PNG works like a built-in mask, at another size."""
    tiny_checkpoint(tmp_path)
    write_png(torch.linspace(-1, 1, 256).view(1, 16, 16), tmp_path / "image.png")
    out = run("-m", "funcdiff", "inpaint", "image.png", "box", "--checkpoint", "run/checkpoint", "--num", "2",
              "--sample-steps", "3", "--out-dir", "ip", cwd=tmp_path).stdout
    assert "guidance: ip/guidance" in out and "replace: ip/replace" in out and "picture: ip/inpaint.png" in out
    assert read_png(tmp_path / "ip" / "inpaint.png", channels=1).shape == (1, 2 * 17 + 1, 4 * 17 + 1)
    mask = torch.ones(1, 8, 8)
    mask[:, :, 4:] = -1
    write_png(mask, tmp_path / "mask.png")
    run("-m", "funcdiff", "inpaint", "image.png", "mask.png", "--checkpoint", "run/checkpoint", "--method", "replace",
        "--resolution", "24", "--num", "1", "--sample-steps", "3", "--out-dir", "ip2", cwd=tmp_path)
    assert read_png(tmp_path / "ip2" / "replace" / "0000.png", channels=1).shape == (1, 24, 24)
