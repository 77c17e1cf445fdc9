"""funcdiff: diffusion models in function space (Bond-Taylor & Willcocks 2024, ∞-Diff).

Data are functions on ``[0, 1]^d`` seen at some coordinates; a neural operator trained on random subsets of
coordinates samples at any resolution. The protocols (`Domain`, `Mollifier`, `DiffusionProcess`,
`NeuralOperator`) are the plug points: a user's class that implements one trains, samples and reloads through
the same code once it is registered with `register`.
"""

from funcdiff.domains import AudioDomain, Domain, GridDomain
from funcdiff.mollifiers import GaussianMollifier, IdentityMollifier, Mollifier
from funcdiff.operators import InftyDiffOperator, LatentMLP, NeuralOperator, OperatorConfig, SparseDepthwiseConv, SparseEncoder, operator_preset
from funcdiff.points import Points
from funcdiff.processes import (
    DenoisingProcess,
    DiffusionProcess,
    FlowProcess,
    FunctionalFlowMatching,
    MollifiedDDPM,
    MollifiedEDM,
    SigmaProcess,
    constant_schedule,
    cosine_schedule,
    linear_schedule,
)
from funcdiff.registry import build, register
from funcdiff.sampling import (
    InpaintingGuidance,
    encode_ddim,
    karras,
    sample,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp,
    sample_edm_ddim,
    sample_edm_heun,
    sample_euler,
    sample_heun,
    uniform_logsnr,
    uniform_t,
)

__version__ = "0.1.0"

__all__ = [
    "AudioDomain",
    "DenoisingProcess",
    "DiffusionProcess",
    "Domain",
    "FlowProcess",
    "FunctionalFlowMatching",
    "GaussianMollifier",
    "GridDomain",
    "IdentityMollifier",
    "InftyDiffOperator",
    "InpaintingGuidance",
    "LatentMLP",
    "MollifiedDDPM",
    "MollifiedEDM",
    "Mollifier",
    "NeuralOperator",
    "OperatorConfig",
    "Points",
    "SparseDepthwiseConv",
    "SigmaProcess",
    "SparseEncoder",
    "__version__",
    "build",
    "constant_schedule",
    "cosine_schedule",
    "encode_ddim",
    "karras",
    "linear_schedule",
    "operator_preset",
    "register",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp",
    "sample_edm_ddim",
    "sample_edm_heun",
    "sample_euler",
    "sample_heun",
    "uniform_logsnr",
    "uniform_t",
]
