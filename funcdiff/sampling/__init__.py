"""Sampling, in one place (docs/math.md §13-14): samplers of one signature for each process protocol, time grids
built outside them, guidance for any process, the sampler table (names, protocols, model calls per step, ``auto``) and
`sample`, which the command line, evaluation, the tasks and the trainer all call."""

from funcdiff.sampling.denoising import Callback, encode_ddim, sample_ddim, sample_ddpm, sample_dpmpp
from funcdiff.sampling.edm import sample_edm_ddim, sample_edm_dpmpp, sample_edm_heun
from funcdiff.sampling.free_guidance import free_guidance
from funcdiff.sampling.flow import data_estimate, sample_euler, sample_heun
from funcdiff.sampling.grids import (
    TimeGrid, check_grid, discrete_steps, flow_times, karras, log_snr_table, step_grid, uniform_logsnr, uniform_t,
)
from funcdiff.sampling.guidance import Guidance, InpaintingGuidance
from funcdiff.sampling.sample import eval_mode, nested_prior, sample, sample_at
from funcdiff.sampling.samplers import (
    AUTO,
    GRIDS,
    SAMPLERS,
    GridFunction,
    SamplerEntry,
    SamplerFunction,
    fitting_samplers,
    register_sampler,
    resolve_grid,
    resolve_sampler,
    sampler_names,
    taken_options,
)

__all__ = [
    "AUTO", "GRIDS", "SAMPLERS", "Callback", "GridFunction", "Guidance", "InpaintingGuidance", "SamplerEntry", "SamplerFunction",
    "TimeGrid", "check_grid", "data_estimate", "discrete_steps", "encode_ddim", "eval_mode", "fitting_samplers", "flow_times", "free_guidance",
    "karras", "log_snr_table", "nested_prior", "register_sampler", "resolve_grid", "resolve_sampler", "sample", "sample_at", "sample_ddim",
    "sample_ddpm", "sample_dpmpp", "sample_edm_ddim", "sample_edm_dpmpp", "sample_edm_heun", "sample_euler", "sample_heun", "sampler_names", "step_grid", "taken_options", "uniform_logsnr", "uniform_t",
]
