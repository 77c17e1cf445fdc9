"""Sparse-convolution kernels and their backends: the lattice hash, kernel maps, PyTorch gather/dense, C++ and Triton."""
