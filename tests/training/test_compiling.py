"""`torch.compile` of the operator's fixed-shape parts: the same values and gradients as eager, copies that keep their own
weights, and training and sampling with ``compile``.

The runtime type checker of the test suite wraps every annotated function, and torch.compile cannot trace those
wrappers (users never have them). So `test_suite_runs_without_the_type_checker` runs this file again in a child
process without the checker, and the compiled tests skip in the parent (they say so).
"""

import copy
import os

import numpy as np
import pytest
import torch
import torch._inductor.config
from PIL import Image
from torch._dynamo.utils import counters

from funcdiff.operators import autoencoder_preset, compile_operator, operator_preset
from funcdiff.operators.layers.blocks import SparseBlock
from funcdiff.operators.layers.unet import GridUNet
from funcdiff.points import Points, grid_index
from funcdiff.training.metrics import read_metrics
from tests.child_run import WITHOUT_TYPE_CHECKER, run_pytest_child
from tests.training.conftest import replace, train_config

pytestmark = [  # what torch.compile itself does while compiling
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning"),
]
CHILD = os.environ.get("FUNCDIFF_COMPILE_TESTS") == "1"
compiled_run = pytest.mark.skipif(not CHILD, reason="torch.compile cannot trace the type checker's wrappers: run by "
                                                    "test_suite_runs_without_the_type_checker")


def test_compile_operator_switches_every_part() -> None:
    """Every sparse block and the U-Net (of the decoder and the encoder) get the mode; None switches them back."""
    model = autoencoder_preset("tiny", channels=1, resolution=16, z_dim=4)
    parts = [m for m in model.modules() if isinstance(m, SparseBlock | GridUNet)]
    assert compile_operator(model) == len(parts) >= 4
    assert all(m.compile_mode == "default" for m in parts)
    assert compile_operator(model, None) == len(parts) and all(m.compile_mode is None for m in parts)
    assert compile_operator(torch.nn.Linear(2, 2)) == 0
    with pytest.raises((ValueError, TypeError), match="fast"):  # the type checker, where it runs, says so first
        compile_operator(model, "fast")


def _inputs(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, Points, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, *shape, generator=gen)
    keep = torch.randperm(shape[0] * shape[1], generator=gen)[: shape[0] * shape[1] // 3]
    index = grid_index(2, shape)[:, keep]
    values = x.flatten(2).transpose(1, 2)[:, keep]
    return x, Points(values, index, shape), torch.rand(2, generator=gen)


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


@compiled_run
def test_compiled_values_equal_eager() -> None:
    """Dense evaluations at two grids and a sparse one equal eager ones to float tolerance (gradients: the training
    test below), and compiled graphs are built only when compiling."""
    torch.manual_seed(0)
    torch._dynamo.reset()  # graphs of earlier tests would be reused
    model = operator_preset("tiny", channels=1, resolution=16).eval()  # eval: dropout draws nothing
    results = []
    for mode in (None, "default"):
        compile_operator(model, mode)
        before = _graphs()
        with torch.no_grad():
            dense = [model.forward_dense(_inputs(shape, 0)[0], _inputs(shape, 0)[2]) for shape in ((16, 16), (24, 40))]
            _, points, t = _inputs((20, 20), 1)
            results.append(dense + [model(points, t)])
        assert (_graphs() > before) == (mode is not None)
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


@compiled_run
def test_a_copy_of_a_compiled_operator_uses_its_own_weights() -> None:
    """A deep copy (as the EMA is made) stays compiled and computes with its own parameters, not the original's."""
    torch.manual_seed(0)
    model = operator_preset("tiny", channels=1, resolution=16).eval()
    compile_operator(model)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.1 * torch.randn_like(p))
        x, _, t = _inputs((16, 16), 2)
        compiled_twin, original = twin.forward_dense(x, t), model.forward_dense(x, t)
        assert all(m.compile_mode == "default" for m in twin.modules() if isinstance(m, SparseBlock | GridUNet))
        compile_operator(twin, None)
        eager_twin = twin.forward_dense(x, t)
    assert all(m.compile_mode == "default" for m in model.modules() if isinstance(m, SparseBlock | GridUNet))
    torch.testing.assert_close(compiled_twin, eager_twin, rtol=1e-5, atol=1e-5)
    assert (compiled_twin - original).abs().max() > 1e-2


@compiled_run
def test_compiled_encoder_gives_the_eager_latents() -> None:
    """An autoencoder's encoder (sparse blocks and the U-Net's down path) runs compiled and gives the eager latents."""
    torch.manual_seed(0)
    model = autoencoder_preset("tiny", channels=1, resolution=16, z_dim=4).eval()
    x = _inputs((16, 16), 3)[0]
    with torch.no_grad():
        eager = model.encode(x)
        compile_operator(model.encoder)
        before = _graphs()
        compiled = model.encode(x)
    assert _graphs() > before
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


@compiled_run
def test_training_with_compile_matches_eager(tiny_config) -> None:
    """A short run with ``compile`` logs the eager run's losses (same seeds; dropout drawn as eager draws it): the
    compiled forward and backward passes agree, or the losses after the first update would not."""
    losses = {}
    for compiled in (False, True):
        config = replace(tiny_config, compile=compiled, out_dir=f"{tiny_config.out_dir}-{compiled}")
        with torch._inductor.config.patch(fallback_random=True):
            result = train_config(config)
        losses[compiled] = [row["loss"] for row in read_metrics(result.out_dir / "metrics.jsonl") if "loss" in row]
        assert all(m.compile_mode == ("default" if compiled else None) for m in result.model.modules() if isinstance(m, SparseBlock))
    assert len(losses[True]) == tiny_config.steps
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-4, atol=1e-5)


@compiled_run
def test_sample_command_with_compile(tiny_config, tmp_path) -> None:
    """``funcdiff sample --compile`` writes the same samples as without, at two resolutions."""
    from funcdiff.commands import main  # noqa: PLC0415 - the CLI only where it is used

    result = train_config(replace(tiny_config, steps=2))
    outputs = {}
    for flag in ((), ("--compile",)):
        out = tmp_path / f"samples{len(flag)}"
        assert main(["sample", "--checkpoint", str(result.out_dir / "checkpoint"), "--resolutions", "16", "32", "--num", "2",
                     "--sample-steps", "3", "--out-dir", str(out), *flag]) == 0
        outputs[flag] = {p.relative_to(out): np.asarray(Image.open(p), dtype=np.int16) for p in out.rglob("*.png")}
    eager, compiled = outputs.values()
    assert len(eager) >= 2 and eager.keys() == compiled.keys()
    assert all(np.abs(eager[name] - compiled[name]).max() <= 1 for name in eager)  # 8-bit pictures of equal values


@pytest.mark.slow
@pytest.mark.skipif(CHILD, reason="this is the child run")
def test_suite_runs_without_the_type_checker() -> None:
    """Every compiled test above passes in a child process without the runtime type checker (none may skip)."""
    env = dict(os.environ, FUNCDIFF_COMPILE_TESTS="1")
    run_pytest_child(__file__, *WITHOUT_TYPE_CHECKER, "-k", "not without_the_type_checker", env=env, at_least=6)
