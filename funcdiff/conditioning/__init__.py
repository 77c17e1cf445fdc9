"""Conditioning: what an operator conditioned on its own data provides (`EncodedConditioning`); the diffusion
autoencoder (`funcdiff.operators.DiffusionAutoencoder`) implements it."""

from funcdiff.conditioning.base import EncodedConditioning

__all__ = ["EncodedConditioning"]
