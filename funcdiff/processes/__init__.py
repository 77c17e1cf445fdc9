"""Diffusion processes (no networks inside): protocols, schedules, the mollified DDPM and functional flow matching;
their samplers live in `funcdiff.sampling`."""

from funcdiff.processes.base import DenoisingProcess, DenseModel, DiffusionProcess, FlowProcess, PointModel, SigmaProcess
from funcdiff.processes.edm import MollifiedEDM
from funcdiff.processes.flow import FlowPrediction, FunctionalFlowMatching
from funcdiff.processes.mollified import MollifiedDDPM, Prediction
from funcdiff.processes.schedules import Schedule, constant_schedule, cosine_schedule, linear_schedule, posterior_coefficients, respace, table_schedule

__all__ = [
    "MollifiedEDM",
    "SigmaProcess",
    "DenoisingProcess", "DenseModel", "DiffusionProcess", "FlowPrediction", "FlowProcess", "FunctionalFlowMatching",
    "MollifiedDDPM", "PointModel", "Prediction", "Schedule", "constant_schedule", "cosine_schedule", "linear_schedule",
    "posterior_coefficients", "respace", "table_schedule",
]
