"""Diffusion processes (no networks inside): protocols, schedules, the mollified DDPM, functional flow matching,
their samplers and guidance."""

from funcdiff.processes.base import DenoisingProcess, DenseModel, DiffusionProcess, FlowProcess, PointModel
from funcdiff.processes.flow import FlowPrediction, FunctionalFlowMatching
from funcdiff.processes.flow_samplers import sample_euler, sample_heun
from funcdiff.processes.guidance import Guidance, InpaintingGuidance
from funcdiff.processes.mollified import MollifiedDDPM, Prediction
from funcdiff.processes.samplers import encode_ddim, sample_ddim, sample_ddpm, sample_dpmpp
from funcdiff.processes.schedules import Schedule, constant_schedule, cosine_schedule, linear_schedule, posterior_coefficients, respace, table_schedule

__all__ = [
    "DenoisingProcess", "DenseModel", "DiffusionProcess", "FlowPrediction", "FlowProcess", "FunctionalFlowMatching", "Guidance",
    "InpaintingGuidance", "MollifiedDDPM", "PointModel", "Prediction", "Schedule", "constant_schedule", "cosine_schedule",
    "encode_ddim", "linear_schedule", "posterior_coefficients", "respace", "sample_ddim", "sample_ddpm", "sample_dpmpp",
    "sample_euler", "sample_heun", "table_schedule",
]
