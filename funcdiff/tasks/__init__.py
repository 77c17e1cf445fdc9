"""Tasks built on trained operators: conditional sampling from Python (super-resolution, inpainting)."""

from funcdiff.tasks.inpainting import MASK_KINDS, ReplacementGuidance, inpaint, make_mask, read_mask
from funcdiff.tasks.superres import DownsamplingGuidance, superres

__all__ = ["MASK_KINDS", "DownsamplingGuidance", "ReplacementGuidance", "inpaint", "make_mask", "read_mask", "superres"]
