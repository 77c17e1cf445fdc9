"""Run files: JSON and TOML files naming components by registered kind (funcdiff's or a plugin's) build a run that
trains and reloads from its checkpoint; a kind in the wrong slot, an unknown key and data that do not fit the domain
are one-line errors; the guide's plugin and run file (docs/extending.md, "Your module on the command line") train."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from beartype import beartype
from PIL import Image
from torch.utils.data import Dataset

from funcdiff import registry
from funcdiff.factory import TrainConfig, build_process
from funcdiff.operators import operator_preset
from funcdiff.plugins import load_plugins
from funcdiff.run_file import build_from_run_file, read_run_file, run_file_template
from funcdiff.training import Trainer, TrainSettings, load_trained

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"

WAVES_PLUGIN = '''
import math

import torch
from torch.utils.data import Dataset

import funcdiff


@funcdiff.register("test-run-file-waves")
class Waves(Dataset):
    """Plane waves with {channels} channel(s), the same functions at every resolution."""

    def __init__(self, *, resolution, split="train", count=8):
        self.params = torch.rand(count, 3, generator=torch.Generator().manual_seed(int(split == "test"))) * 3
        self.u = (torch.arange(resolution) + 0.5) / resolution

    def __len__(self):
        return len(self.params)

    def __getitem__(self, index):
        f, g, phase = self.params[index].tolist()
        wave = torch.sin(2 * math.pi * (f * self.u[:, None] + g * self.u[None, :]) + phase)
        return wave.expand({channels}, -1, -1).clone()
'''


@pytest.fixture(autouse=True)
def private_cache_and_registry(tmp_path_factory, monkeypatch) -> None:
    """Icons render into a per-session cache; registrations made by a test are forgotten after it."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("FUNCDIFF_PLUGINS", raising=False)
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))


def quick(template: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``template`` made cheap: 8 icons at 16 px, the tiny preset, 2 steps of batches of 4, checkpoints only at the end."""
    config = copy.deepcopy(template)
    config["data"].update(resolution=16, limit=8)
    config["operator"] = {"preset": "tiny"}
    config["settings"].update(steps=2, batch_size=4, log_every=1, sample_every=0, checkpoint_every=0, out_dir=str(out_dir))
    return config


def to_toml(table: dict[str, Any], name: str = "") -> str:
    """A TOML document of ``table`` (strings, numbers, booleans, lists of them, nested tables); JSON writes those
    values as TOML does."""
    lines = [f"[{name}]"] if name else []
    lines += [f"{json.dumps(key)} = {json.dumps(value)}" for key, value in table.items() if not isinstance(value, dict)]
    return "\n".join(lines + [to_toml(value, f"{name}.{key}" if name else key)
                              for key, value in table.items() if isinstance(value, dict)]) + "\n"


def written(tmp_path: Path, config: dict[str, Any], suffix: str) -> Path:
    """``config`` written as a run file ``run<suffix>`` (JSON or TOML)."""
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps(config, indent=2) if suffix == ".json" else to_toml(config))
    return path


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_run_file_of_the_template_trains_and_its_checkpoint_reloads(suffix, tmp_path) -> None:
    """The template's components, written as JSON or TOML and read back unchanged, train 2 steps; the checkpoint
    rebuilds the same operator and process."""
    config = quick(run_file_template(), tmp_path / "run")
    path = written(tmp_path, config, suffix)
    assert read_run_file(path) == json.loads(json.dumps(config))
    model, process, data, settings = build_from_run_file(read_run_file(path))
    assert len(data) == 8 and tuple(data[0].shape) == (1, 16, 16) and settings.steps == 2
    result = Trainer(model, process, data, settings, progress=False, run_config=config).run()
    assert result.step == 2
    reloaded_model, reloaded_process, saved = load_trained(tmp_path / "run" / "checkpoint")
    assert reloaded_model.to_dict() == model.to_dict() == operator_preset("tiny", channels=1, resolution=16).to_dict()
    assert reloaded_process.to_dict() == process.to_dict() == config["process"]
    assert saved["run"] == config


def test_the_template_is_the_train_commands_defaults() -> None:
    """Every slot of the template is `funcdiff train`'s default (`TrainConfig`), every setting written (None has no TOML)."""
    template = run_file_template()
    demo = TrainConfig()
    assert template["data"] == {"kind": "icons", "resolution": demo.resolution}
    assert template["process"] == build_process(demo, (1, demo.resolution, demo.resolution)).to_dict()
    assert template["operator"] == {"preset": "cpu-small"}
    assert TrainSettings.from_dict(template["settings"]) == demo.settings()
    assert set(template["settings"]) == {k for k, v in demo.settings().to_dict().items() if v is not None}


def test_the_operator_is_initialised_from_the_settings_seed(tmp_path) -> None:
    """The same run file builds the same weights; another seed other weights."""
    config = quick(run_file_template(), tmp_path)
    first, second = build_from_run_file(config)[0], build_from_run_file(config)[0]
    config["settings"]["seed"] = 1
    third = build_from_run_file(config)[0]
    weights = [torch.cat([p.flatten() for p in model.parameters()]) for model in (first, second, third)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_a_run_file_naming_a_plugins_kind_trains(tmp_path) -> None:
    """A data set registered by a plugin file fills the data slot, with its own arguments, and trains."""
    plugin = tmp_path / "waves_plugin.py"
    plugin.write_text(WAVES_PLUGIN.format(channels=1))
    load_plugins([str(plugin)])
    config = quick(run_file_template(), tmp_path / "run")
    config["data"] = {"kind": "test-run-file-waves", "resolution": 16, "count": 4}
    model, process, data, settings = build_from_run_file(config)
    assert type(data).__name__ == "Waves" and len(data) == 4
    assert Trainer(model, process, data, settings, progress=False).run().step == 2


def test_a_folder_of_images_fills_the_data_slot(tmp_path) -> None:
    """``{"folder": ..., "resolution": ...}`` reads a folder of images with the folder data set's options."""
    (tmp_path / "images").mkdir()
    for index in range(3):
        Image.new("L", (20, 24), color=40 * index).save(tmp_path / "images" / f"{index}.png")
    config = quick(run_file_template(), tmp_path / "run")
    config["data"] = {"folder": str(tmp_path / "images"), "resolution": 16, "channels": 1, "cache": False}
    data = build_from_run_file(config)[2]
    assert len(data) == 3 and tuple(data[0].shape) == (1, 16, 16)


def refused(config: dict[str, Any], pattern: str) -> None:
    """Assert that ``config`` is refused with a one-line ``ValueError`` matching ``pattern``."""
    with pytest.raises(ValueError, match=pattern) as raised:
        build_from_run_file(config)
    assert "\n" not in str(raised.value)


def test_a_kind_in_the_wrong_slot_is_refused(tmp_path) -> None:
    """Each slot must build its protocol: an operator in the process slot, a data set in the operator slot and a
    mollifier in the data slot are refused naming the slot, the kind and what it built."""
    config = quick(run_file_template(), tmp_path)
    operator = operator_preset("tiny", channels=1, resolution=16).to_dict()
    refused({**config, "process": operator},
            r"^the process slot: kind 'infty_diff' built InftyDiffOperator, which is not a DiffusionProcess$")
    refused({**config, "operator": {"kind": "icons", "resolution": 16, "limit": 2}},
            r"^the operator slot: kind 'icons' built IconDataset, which is not a NeuralOperator \(an nn.Module\)$")
    refused({**config, "data": {"kind": "gaussian", "sigma": 0.1}},
            r"^the data slot: kind 'gaussian' built GaussianMollifier, which is not a torch.utils.data.Dataset$")


@beartype
class Typed(Dataset):
    """A data set whose arguments beartype checks."""

    def __init__(self, *, resolution: int, split: str = "train") -> None:
        self.resolution = resolution


def test_a_component_that_refuses_its_arguments_or_an_unknown_kind_is_a_one_line_error(tmp_path) -> None:
    """A constructor's error (beartype's too), a nested component's and an unregistered kind come with the slot they
    are in."""
    registry.register("test-run-file-typed")(Typed)
    config = quick(run_file_template(), tmp_path)
    refused({**config, "process": {**config["process"], "domain": {"kind": "grid", "ndim": 2}}},
            r"^the process slot: funcdiff\.processes\.mollified\.MollifiedDDPM \(kind 'mollified_ddpm'\) cannot be built "
            r"from the arguments \['domain', 'inv_snr', 'mollifier', 'prediction', 'schedule'\]: .*channels")
    refused({**config, "data": {"kind": "icons", "resolution": 16, "colour": "red"}},
            r"^the data slot: funcdiff\.data\.icons\.IconDataset \(kind 'icons'\) cannot be built .*colour")
    refused({**config, "data": {"kind": "test-run-file-typed", "resolution": "16"}},
            r"^the data slot: tests\.test_run_file\.Typed \(kind 'test-run-file-typed'\) cannot be built .*'resolution'")
    refused({**config, "process": {**config["process"], "mollifier": {"kind": "test-unregistered-box", "width": 0.1}}},
            r"^the process slot: .*unknown component kind 'test-unregistered-box'")
    refused({**config, "operator": {"kind": "not-registered-anywhere"}},
            r"^the operator slot: unknown component kind 'not-registered-anywhere'")
    refused({**config, "operator": {"preset": "huge"}}, r"^the operator slot: preset 'huge': name must be one of")
    refused({**config, "process": {"domain": config["process"]["domain"]}}, r"^the process slot needs a 'kind'")


def test_unknown_keys_and_missing_slots_are_refused(tmp_path) -> None:
    """The top level has exactly the four slots; settings are `TrainSettings` fields, whose values it checks."""
    config = quick(run_file_template(), tmp_path)
    refused({**config, "model": {}},
            r"^a run file has the keys \['data', 'process', 'operator', 'settings'\]: unknown \['model'\]$")
    refused({k: v for k, v in config.items() if k != "settings"}, r": missing \['settings'\]$")
    refused({**config, "settings": {**config["settings"], "stepz": 3}},
            r"^the settings slot: unknown field\(s\) \['stepz'\]; allowed: \['points', .*'steps'")
    refused({**config, "settings": {"steps": 0}}, r"^the settings slot: invalid training settings: steps=0$")
    refused({**config, "settings": {"steps": "ten"}}, r"^the settings slot: .*steps.*'ten'")
    refused({**config, "operator": {"preset": "tiny", "width": 8}},
            r"^the operator slot: a 'preset' takes no other keys, got \['width'\]")
    refused({**config, "data": {"kind": "icons", "folder": "x", "resolution": 16}},
            r"^the data slot names a 'kind' \('icons'\) and a 'folder'")
    refused({**config, "data": {"folder": str(tmp_path / "none"), "resolution": 16}},
            r"^the data slot: folder '.*none' cannot be read")
    refused({**config, "data": ["icons"]}, r"^the data slot must be an object \(a table\), got \['icons'\]$")


def test_data_that_do_not_fit_the_domain_are_refused(tmp_path) -> None:
    """Three-channel data under a one-channel domain, and 2-D data under a 1-D domain, are refused saying both; so is
    an empty data set."""
    plugin = tmp_path / "waves_plugin.py"
    plugin.write_text(WAVES_PLUGIN.format(channels=3))
    load_plugins([str(plugin)])
    config = quick(run_file_template(), tmp_path)
    refused({**config, "data": {"kind": "test-run-file-waves", "resolution": 16}},
            r"^the data slot's examples have shape \(3, 16, 16\): 3 channel\(s\) on a 2-D grid, but the process's domain has "
            r"1 channel\(s\) on a 2-D grid: set the domain's 'channels' and 'ndim' to fit the data$")
    config["process"]["domain"].update(ndim=1, channels=3)
    refused({**config, "data": {"kind": "test-run-file-waves", "resolution": 16}}, r"3 channel\(s\) on a 1-D grid")
    refused({**config, "data": {"kind": "test-run-file-waves", "resolution": 16, "count": 0}},
            r"^the data slot: Waves has no examples$")


def test_read_run_file_refuses_what_is_not_a_run_file(tmp_path) -> None:
    """Another suffix, a missing file, a file that does not parse and one that is not an object are one-line errors."""
    (tmp_path / "bad.json").write_text('{"data": ')
    (tmp_path / "bad.toml").write_text("[data\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "run.yaml").write_text("data: {}")
    for name, pattern in [("run.yaml", r"must end in \.json or \.toml"), ("gone.json", r"cannot be read: No such file"),
                          ("bad.json", r"is not valid JSON: Expecting value: line 1"), ("bad.toml", r"is not valid TOML: "),
                          ("list.json", r"must hold an object with the keys \[.*\], got a list")]:
        with pytest.raises(ValueError, match=pattern) as raised:
            read_run_file(tmp_path / name)
        assert "\n" not in str(raised.value) and name in str(raised.value)


def guide_section_files() -> dict[str, str]:
    """The files that the guide's section "Your module on the command line" shows, by the name in their block's title."""
    section = GUIDE.read_text().split("## Your module on the command line", 1)[1]
    return dict(re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', section, flags=re.DOTALL))


def test_the_guides_plugin_and_run_file_train(tmp_path, monkeypatch) -> None:
    """The guide's plugin file loads by path, its run file (JSON and TOML alike) names the plugin's kind and, made
    cheap (16 px, the tiny preset, 2 steps), trains; its pyproject table declares the entry point."""
    files = guide_section_files()
    assert {"my_plugin.py", "run.json", "run.toml", "pyproject.toml"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    assert load_plugins(["my_plugin.py"]) == ["my_plugin.py"]
    config = read_run_file("run.json")
    assert read_run_file("run.toml") == config
    assert '[project.entry-points."funcdiff.plugins"]' in files["pyproject.toml"]
    config["data"].update(resolution=16, count=8)
    config["operator"] = {"preset": "tiny"}
    config["settings"].update(steps=2, batch_size=4, out_dir=str(tmp_path / "run"))
    model, process, data, settings = build_from_run_file(config)
    assert Trainer(model, process, data, settings, progress=False).run().step == 2


def test_the_deeper_icons_example_is_a_deeper_cpu_small() -> None:
    """examples/images/deeper_icons.json (the README's deeper recipe row) builds: cpu-small with three sparse blocks and
    two U-Net blocks per level on a 32 px reference grid, trained at 32, 64 and 128 px from icons loaded at 128 px."""
    config = read_run_file(Path(__file__).parents[1] / "examples" / "images" / "deeper_icons.json")
    config["data"]["limit"] = 4  # the same slot on a few icons
    operator, process, data, settings = build_from_run_file(config)
    small = operator_preset("cpu-small", channels=1, resolution=(32, 32))
    assert (operator.config.sparse_blocks, operator.config.unet_blocks) == (3, 2)
    assert operator.config.reference_shape == small.config.reference_shape == (32, 32)
    assert sum(p.numel() for p in operator.parameters()) > sum(p.numel() for p in small.parameters())
    assert data[0].shape == (1, 128, 128) and settings.downscales == (4, 2, 1) and settings.points == 256
    assert process.to_dict() == build_process(TrainConfig(), (1, 32, 32)).to_dict()
