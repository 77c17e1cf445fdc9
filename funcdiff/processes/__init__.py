"""Diffusion processes (no networks inside): schedules, the mollified DDPM, samplers and guidance."""

from funcdiff.processes.base import DenseModel, DiffusionProcess, PointModel
from funcdiff.processes.guidance import Guidance, InpaintingGuidance
from funcdiff.processes.mollified import MollifiedDDPM, Prediction
from funcdiff.processes.samplers import encode_ddim, sample_ddim, sample_ddpm
from funcdiff.processes.schedules import Schedule, constant_schedule, cosine_schedule, linear_schedule, respace, schedule_from_dict

__all__ = [
    "DenseModel", "DiffusionProcess", "Guidance", "InpaintingGuidance", "MollifiedDDPM", "PointModel", "Prediction",
    "Schedule", "constant_schedule", "cosine_schedule", "encode_ddim", "linear_schedule", "respace", "sample_ddim",
    "sample_ddpm", "schedule_from_dict",
]
