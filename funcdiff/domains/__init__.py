"""Domains: where functions live, how they are discretised, read and written."""

from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.domains.grid import GridDomain, box_average, nested_white_noise, resolve_count, white_noise
from funcdiff.domains.io import image_grid, read_png, read_wav, save_images, save_samples, side_by_side, write_png, write_wav

__all__ = [
    "Domain", "GridDomain", "SubsampleScheme", "box_average", "image_grid", "nested_white_noise", "read_png", "read_wav",
    "resolve_count", "save_images", "save_samples", "side_by_side", "white_noise", "write_png", "write_wav",
]
