"""The component registry: registering again is idempotent for the same class (a notebook cell run twice, a script
run as ``__main__`` and also imported) and refused for another; `check_round_trip` finds, where a component is
made, what would only fail when its checkpoint loads."""

import importlib
import runpy
import sys
from pathlib import Path

import pytest
import torch

import funcdiff
from funcdiff import registry
from funcdiff.mollifiers import Mollifier
from funcdiff.registry import check_round_trip, lookup

CELL = '''
import funcdiff

@funcdiff.register("test-cell-box")
class Box:
    """A component a notebook cell defines and registers."""

    def __init__(self, width=0.1):
        self.width = width

    def to_dict(self):
        return {"kind": "test-cell-box", "width": self.width}
'''


@pytest.fixture(autouse=True)
def private_registry(monkeypatch) -> None:
    """Registrations (and round trips checked) in a test are forgotten after it."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(registry, "_ROUND_TRIPPED", set())


def run_cell(source: str, module: str = "__main__") -> dict:
    """Execute ``source`` as a notebook executes a cell: in a namespace whose module is ``module``."""
    namespace = {"__name__": module}
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


def test_a_notebook_cell_run_twice_registers_again_and_the_latest_wins() -> None:
    """A new class object of the same module and qualified name replaces the old one without an error."""
    first, second = run_cell(CELL)["Box"], run_cell(CELL)["Box"]
    assert first is not second and lookup("test-cell-box") is second


def test_a_script_run_as_main_and_imported_registers_once(tmp_path: Path, monkeypatch) -> None:
    """``python mymodule.py`` registers ``__main__.Box``; importing the same file as ``mymodule`` (a data loader
    worker, a loading helper) registers ``mymodule.Box``: the same class from the same file, so it is no error."""
    (tmp_path / "funcdiff_test_script.py").write_text(CELL)
    runpy.run_path(str(tmp_path / "funcdiff_test_script.py"), run_name="__main__")
    assert lookup("test-cell-box").__module__ == "__main__"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "funcdiff_test_script", raising=False)
    module = importlib.import_module("funcdiff_test_script")
    monkeypatch.delitem(sys.modules, "funcdiff_test_script")
    assert lookup("test-cell-box") is module.Box


def test_another_class_under_a_taken_kind_is_refused_naming_both() -> None:
    """Another qualified name under a taken kind is an error that names the registered class and the new one."""
    run_cell(CELL)
    with pytest.raises(ValueError, match=r"'test-cell-box'.*__main__\.Box.*__main__\.Crate"):
        run_cell(CELL.replace("class Box", "class Crate"))


def test_the_same_name_from_another_file_is_refused(tmp_path: Path) -> None:
    """Two scripts that both run as ``__main__`` and define ``Box`` under one kind are two classes: refused, with
    both files named."""
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "script.py").write_text(CELL)
    runpy.run_path(str(tmp_path / "one" / "script.py"), run_name="__main__")
    with pytest.raises(ValueError, match=r"'test-cell-box'.*one.script\.py.*two.script\.py"):
        runpy.run_path(str(tmp_path / "two" / "script.py"), run_name="__main__")


def test_another_module_with_the_same_class_name_is_refused() -> None:
    """``Box`` of one module and ``Box`` of another (no source files) are two classes."""
    run_cell(CELL, module="funcdiff_test_a")
    with pytest.raises(ValueError, match=r"funcdiff_test_a\.Box.*funcdiff_test_b\.Box"):
        run_cell(CELL, module="funcdiff_test_b")


class FlatMollifier(Mollifier):
    """The identity as a user mollifier; ``scale`` is a setting that ``to_dict`` writes."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def mollify(self, x):
        return x

    def unmollify(self, y, inv_snr=0.05):
        return y

    def to_dict(self):
        return {"kind": "test-flat", "scale": self.scale}


def process_with(mollifier: Mollifier) -> funcdiff.MollifiedDDPM:
    """A built-in process around a user's mollifier."""
    return funcdiff.MollifiedDDPM(funcdiff.GridDomain(2, 1), funcdiff.cosine_schedule(10), mollifier)


def test_built_in_components_round_trip_and_leave_the_random_state_alone() -> None:
    """Processes, mollifiers and an operator pass, and rebuilding the operator draws no random numbers of the caller's."""
    operator = funcdiff.operator_preset("tiny", channels=1, resolution=16)
    state = torch.get_rng_state()
    check_round_trip(process_with(funcdiff.GaussianMollifier(0.05)), "process")
    check_round_trip(funcdiff.FunctionalFlowMatching(funcdiff.GridDomain(2, 1), funcdiff.IdentityMollifier()), "process")
    check_round_trip(operator, "operator")
    assert torch.equal(torch.get_rng_state(), state)


def test_an_unregistered_kind_is_named_with_the_registered_ones() -> None:
    """A nested component whose kind no module registered: the error names it, its kind and the known kinds."""
    with pytest.raises(ValueError, match=r"^the process's mollifier: its kind 'test-flat' is not registered.*'gaussian'") as caught:
        check_round_trip(process_with(FlatMollifier()), "process")
    assert "\n" not in str(caught.value)


def test_a_nested_component_without_a_kind_is_refused() -> None:
    """A mollifier whose ``to_dict`` forgets the kind would reload as a plain dict: refused, naming it."""

    class Forgetful(FlatMollifier):
        def to_dict(self):
            return {"scale": self.scale}

    funcdiff.register("test-flat")(Forgetful)
    with pytest.raises(ValueError, match=r"^the process's mollifier: its to_dict\(\) has no 'kind'"):
        check_round_trip(process_with(Forgetful()), "process")
    with pytest.raises(ValueError, match=r"^the mollifier: its to_dict\(\) has no 'kind'"):
        check_round_trip(Forgetful(), "mollifier")


def test_a_renamed_constructor_argument_is_refused() -> None:
    """``to_dict`` writes ``scale`` but ``__init__`` takes ``size``: the class's own TypeError, on one line."""

    class Renamed(FlatMollifier):
        def __init__(self, size: float = 1.0) -> None:
            super().__init__(size)

    funcdiff.register("test-flat")(Renamed)
    with pytest.raises(ValueError, match=r"^the process's mollifier: .*Renamed \(kind 'test-flat'\) cannot be rebuilt .*'scale'"):
        check_round_trip(process_with(Renamed(2.0)), "process")


def test_a_rebuilt_component_with_another_to_dict_is_refused() -> None:
    """``to_dict`` writes twice the setting it was given: the rebuilt component writes another value."""

    class Doubling(FlatMollifier):
        def to_dict(self):
            return {"kind": "test-flat", "scale": 2 * self.scale}

    funcdiff.register("test-flat")(Doubling)
    with pytest.raises(ValueError, match=r"^the process's mollifier: rebuilt from its to_dict\(\), it writes scale 4\.0 instead of 2\.0"):
        check_round_trip(process_with(Doubling(1.0)), "process")


def test_a_to_dict_that_is_not_json_is_refused() -> None:
    """A tensor in ``to_dict`` cannot go into config.json."""

    class Tensorial(FlatMollifier):
        def to_dict(self):
            return {"kind": "test-flat", "scale": torch.tensor(self.scale)}

    funcdiff.register("test-flat")(Tensorial)
    with pytest.raises(ValueError, match=r"^the mollifier: its to_dict\(\) is not JSON"):
        check_round_trip(Tensorial(), "mollifier")


def test_a_stored_config_is_checked_too() -> None:
    """The dict a checkpoint stores (no object at hand) is rebuilt and compared the same way."""
    funcdiff.register("test-flat")(FlatMollifier)
    check_round_trip(FlatMollifier(3.0).to_dict(), "mollifier")
    with pytest.raises(ValueError, match=r"^the process: its kind 'test-nothing' is not registered"):
        check_round_trip({"kind": "test-nothing"}, "process")


def test_a_config_is_rebuilt_once_until_a_class_is_registered() -> None:
    """The trainer checks its components and every checkpoint save checks them again: one rebuild serves them all
    (an operator's rebuild allocates all its weights), until a registration may change what a kind builds."""
    built = []

    class Counted(FlatMollifier):
        def __init__(self, scale: float = 1.0) -> None:
            built.append(scale)
            super().__init__(scale)

    funcdiff.register("test-flat")(Counted)
    component = Counted(2.0)
    check_round_trip(component, "mollifier")
    check_round_trip(component.to_dict(), "mollifier")
    assert built == [2.0, 2.0]
    funcdiff.register("test-other")(FlatMollifier)
    check_round_trip(component, "mollifier")
    assert built == [2.0, 2.0, 2.0]
