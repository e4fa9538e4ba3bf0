"""The ``lbp-benefit`` command line: composes ``training`` and ``serving`` (which never import each other)."""
# Before anything loads numpy: one OpenBLAS kernel family on every x86_64 machine, so training
# builds the same model everywhere (training/determinism.py explains why).
from lbp_benefit.blas import pin_blas_kernels

pin_blas_kernels()
