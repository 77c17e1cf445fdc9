"""Whole models built from the layers: the ∞-Diff denoiser, its encoder, the diffusion autoencoder, the latent MLP and
their configurations and presets."""
