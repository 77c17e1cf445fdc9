"""Tasks built on trained operators: conditional sampling from Python (super-resolution, inpainting) and what a
diffusion autoencoder does (latents, reconstruction, interpolation)."""

from funcdiff.tasks.autoencoding import cached_latents, extract_latents, interpolate, invert, lift_prior, reconstruct
from funcdiff.tasks.inpainting import MASK_KINDS, ReplacementGuidance, inpaint, make_mask, read_mask
from funcdiff.tasks.superres import DownsamplingGuidance, superres

__all__ = [
    "MASK_KINDS", "DownsamplingGuidance", "ReplacementGuidance", "cached_latents", "extract_latents", "inpaint", "interpolate",
    "invert", "lift_prior", "make_mask", "read_mask", "reconstruct", "superres",
]
