"""Layers of neural operators: sparse depthwise convolution, residual blocks, points <-> grid interpolation, the grid
U-Net, time embedding and modulation, kernel resampling, chunked evaluation."""
