"""The samplers by name: which process protocol each needs, its model calls per step, and what ``"auto"`` picks.

Every sampler has the one signature of docs/math.md §14, ``sampler(model, y_start, grid, *, process, cond, guidance,
callback, generator, reference_shape, progress, denoise, **options)``; this table is the only place that knows
their names, so the command line, cost estimates and `funcdiff.sampling.sample` agree. Users add theirs with
`register_sampler`.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from funcdiff.processes.base import DenoisingProcess, DiffusionProcess, FlowProcess, SigmaProcess
from funcdiff.sampling.denoising import sample_ddim, sample_ddpm, sample_dpmpp
from funcdiff.sampling.edm import sample_edm_ddim, sample_edm_dpmpp, sample_edm_heun
from funcdiff.sampling.flow import sample_euler, sample_heun
from funcdiff.sampling.grids import karras, uniform_logsnr, uniform_t

SamplerFunction = Callable[..., Any]
"""A sampler: ``(model, y_start, grid, *, process, ...) -> samples`` (docs/math.md §14)."""

GridFunction = Callable[[DiffusionProcess, int], Any]
"""A time-grid builder: ``(process, steps) -> grid``."""


@dataclass(frozen=True, kw_only=True)
class SamplerEntry:
    """A registered sampler: its function, the process protocol it runs, model calls per step (and in its last step),
    and the keyword options it takes beyond the common signature."""

    name: str
    function: SamplerFunction
    protocol: type
    calls_per_step: int = 1
    calls_last_step: int = 1
    options: tuple[str, ...] = ()

    def model_calls(self, steps: int) -> int:
        """Network evaluations of a run over ``steps`` steps."""
        return self.calls_per_step * (steps - 1) + self.calls_last_step


SAMPLERS: dict[str, SamplerEntry] = {}
"""Sampler names to their entries, built-in and registered."""

AUTO: dict[type, str] = {DenoisingProcess: "ddim", FlowProcess: "heun", SigmaProcess: "edm_heun"}
"""What ``"auto"`` picks for each process protocol (first match)."""

GRIDS: dict[str, GridFunction] = {"uniform_t": uniform_t, "uniform_logsnr": uniform_logsnr, "karras": karras}
"""Time-grid builders by name (docs/math.md §14)."""


def register_sampler(entry: SamplerEntry) -> SamplerEntry:
    """Add ``entry`` to `SAMPLERS` (the same function again under its name is a no-op; another is an error)."""
    known = SAMPLERS.get(entry.name)
    if known is not None and known.function is not entry.function:
        raise ValueError(f"sampler {entry.name!r} is already registered to {known.function.__qualname__}")
    SAMPLERS[entry.name] = entry
    return entry


for _entry in (
    SamplerEntry(name="ddim", function=sample_ddim, protocol=DenoisingProcess, options=("clip", "eta")),
    SamplerEntry(name="ddpm", function=sample_ddpm, protocol=DenoisingProcess, options=("clip",)),
    SamplerEntry(name="dpmpp", function=sample_dpmpp, protocol=DenoisingProcess, options=("clip",)),
    SamplerEntry(name="euler", function=sample_euler, protocol=FlowProcess),
    SamplerEntry(name="heun", function=sample_heun, protocol=FlowProcess, calls_per_step=2),
    SamplerEntry(name="edm_heun", function=sample_edm_heun, protocol=SigmaProcess, calls_per_step=2, calls_last_step=3,
                 options=("churn", "churn_range", "churn_noise")),
    SamplerEntry(name="edm_ddim", function=sample_edm_ddim, protocol=SigmaProcess, calls_last_step=2),
    SamplerEntry(name="edm_dpmpp", function=sample_edm_dpmpp, protocol=SigmaProcess, calls_last_step=2),
):
    register_sampler(_entry)


def sampler_names() -> list[str]:
    """``"auto"`` and every registered sampler's name."""
    return ["auto", *sorted(SAMPLERS)]


def fitting_samplers(process: DiffusionProcess) -> list[str]:
    """The registered samplers that run ``process``."""
    return sorted(name for name, entry in SAMPLERS.items() if isinstance(process, entry.protocol))


def resolve_sampler(name: str, process: DiffusionProcess) -> SamplerEntry:
    """The entry ``name`` names for ``process`` (``"auto"``: `AUTO`'s pick for its protocol).

    Raises:
        ValueError: for an unknown name, or a sampler whose protocol ``process`` does not implement.
    """
    if name == "auto":
        picks = [n for protocol, n in AUTO.items() if isinstance(process, protocol)]
        if not picks:
            raise ValueError(f"no default sampler for {type(process).__name__}: it is not a DenoisingProcess, FlowProcess or "
                             "SigmaProcess; name a registered sampler that runs it")
        name = picks[0]
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sampler_names()}, got {name!r}")
    entry = SAMPLERS[name]
    if not isinstance(process, entry.protocol):
        raise ValueError(f"sampler {name!r} needs a {entry.protocol.__name__}; {type(process).__name__} takes "
                         f"{fitting_samplers(process)}")
    return entry


def taken_options(sampler: str | SamplerFunction, process: DiffusionProcess, **wanted: Any) -> dict[str, Any]:
    """The options in ``wanted`` that the sampler takes (`SamplerEntry.options`; for a sampler function, its keyword
    parameters), e.g. ``clip``, which only the DDPM samplers have."""
    if not isinstance(sampler, str):
        parameters = inspect.signature(sampler).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return wanted
        return {k: v for k, v in wanted.items() if k in parameters}
    entry = resolve_sampler(sampler, process)
    return {k: v for k, v in wanted.items() if k in entry.options}


def resolve_grid(name: str) -> GridFunction:
    """The time-grid builder called ``name``; ``ValueError`` listing the names otherwise."""
    if name not in GRIDS:
        raise ValueError(f"grid must be one of {sorted(GRIDS)}, got {name!r}")
    return GRIDS[name]
