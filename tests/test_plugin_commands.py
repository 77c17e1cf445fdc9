"""A user's module on the command line: ``--plugin`` registers a mollifier kind, ``train --config`` trains a run file
that names it, and ``sample`` and ``eval`` load the checkpoint with the same plugin (and refuse it without)."""

import json
from pathlib import Path

import pytest

from funcdiff.commands import main
from funcdiff.run_file import run_file_template

PLUGIN = '''
import math
import torch
import funcdiff
from funcdiff.mollifiers import Mollifier


@funcdiff.register("test-cli-scaled-mollifier")
class ScaledMollifier(Mollifier):
    """Multiplies by a constant gain (a stand-in for a user's mollifier)."""

    def __init__(self, gain: float) -> None:
        self.gain = float(gain)

    def mollify(self, x):
        return self.gain * x

    def unmollify(self, y, inv_snr):
        return y * self.gain / (self.gain**2 + inv_snr**2)

    def to_dict(self):
        return {"kind": "test-cli-scaled-mollifier", "gain": self.gain}
'''


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    """Render icons into a per-session temporary cache, never into ~/.cache."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_plugin_run_file_train_sample_eval(tmp_path: Path, capsys) -> None:
    """The run file names the plugin's kind; every command that loads the checkpoint takes the plugin too."""
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(PLUGIN)
    spec = run_file_template()
    spec["data"] = {"kind": "icons", "resolution": 16, "limit": 16}
    spec["process"]["mollifier"] = {"kind": "test-cli-scaled-mollifier", "gain": 0.9}
    spec["process"]["schedule"]["num_steps"] = 50
    spec["operator"] = {"preset": "tiny"}
    spec["settings"].update(steps=2, batch_size=4, checkpoint_every=0, sample_count=2, sample_steps=2, out_dir=str(tmp_path / "run"))
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(spec))
    assert main(["train", "--config", str(run_file)]) == 1  # the kind is unknown without the plugin
    assert "test-cli-scaled-mollifier" in capsys.readouterr().err
    assert main(["train", "--plugin", str(plugin), "--config", str(run_file), "--steps", "3"]) == 1
    assert "--config names the whole run" in capsys.readouterr().err
    assert main(["train", "--plugin", str(plugin), "--config", str(run_file)]) == 0
    checkpoint = tmp_path / "run" / "checkpoint"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["process"]["mollifier"] == {"kind": "test-cli-scaled-mollifier", "gain": 0.9}
    capsys.readouterr()
    assert main(["sample", "--plugin", str(plugin), "--checkpoint", str(checkpoint), "--resolutions", "16", "32", "--num", "2",
                 "--sample-steps", "2", "--out-dir", str(tmp_path / "samples")]) == 0
    assert (tmp_path / "samples" / "resolutions.png").is_file()
    assert main(["eval", "--plugin", str(plugin), "--checkpoint", str(checkpoint), "--num", "4", "--sample-steps", "2",
                 "--data-limit", "8", "--out-dir", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "report.md").is_file() and "report:" in capsys.readouterr().out
    assert main(["sample", "--plugin", str(tmp_path / "missing.py"), "--checkpoint", str(checkpoint)]) == 1
    assert "missing.py" in capsys.readouterr().err
