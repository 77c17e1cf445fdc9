"""Conditioning: the two ways an operator is conditioned. `EncodedConditioning`: on a code of its own data (the diffusion
autoencoder, `funcdiff.operators.DiffusionAutoencoder`). `LabelConditioning`: on class labels, with classifier-free
guidance at sampling (`funcdiff.operators.LabelConditional`)."""

from funcdiff.conditioning.base import EncodedConditioning
from funcdiff.conditioning.labels import UNSPECIFIED, LabelConditioning, check_labels, parse_labels, unspecified_like

__all__ = ["EncodedConditioning", "LabelConditioning", "UNSPECIFIED", "check_labels", "parse_labels", "unspecified_like"]
