"""Mollifiers: linear smoothing operators T that make diffusion states continuous functions."""

from funcdiff.mollifiers.base import Mollifier
from funcdiff.mollifiers.dct import dct, idct
from funcdiff.mollifiers.gaussian import GaussianMollifier, IdentityMollifier

__all__ = ["GaussianMollifier", "IdentityMollifier", "Mollifier", "dct", "idct"]
