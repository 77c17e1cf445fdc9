"""The input checks that every conditional task shares."""

from funcdiff._typing import Float, Tensor
from funcdiff.processes.base import DiffusionProcess
from funcdiff.sampling import SamplerFunction, resolve_sampler


def check_task_inputs(
    process: DiffusionProcess, image: Float[Tensor, "c h w"], *, name: str, num: int, steps: int, sampler: str | SamplerFunction
) -> None:
    """Raise ``ValueError`` unless ``sampler`` runs ``process`` (a name; a function is the caller's choice), the domain is
    2-D and ``image`` (called ``name``) has its channels and values in its range, and ``num`` and ``steps`` are >= 1."""
    if isinstance(sampler, str):
        resolve_sampler(sampler, process)
    domain = process.domain
    low, high = domain.value_range
    if domain.ndim != 2:
        raise ValueError(f"this task needs a 2-D domain, got a {domain.ndim}-D one")
    if image.shape[0] != domain.channels:
        raise ValueError(f"{name} must have the model's {domain.channels} channels, got shape {tuple(image.shape)}")
    if not bool(image.isfinite().all()) or image.min() < low or image.max() > high:
        raise ValueError(f"{name} must hold values in [{low:g}, {high:g}]")
    if num < 1 or steps < 1:
        raise ValueError(f"num and steps must be >= 1, got num={num}, steps={steps}")
