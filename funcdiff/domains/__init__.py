"""Domains: where functions live, how they are discretised, read and written."""

from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.domains.grid import GridDomain, box_average, resolve_count, white_noise
from funcdiff.domains.io import read_png, read_wav, write_png, write_wav

__all__ = ["Domain", "GridDomain", "SubsampleScheme", "box_average", "read_png", "read_wav", "resolve_count", "white_noise", "write_png", "write_wav"]
