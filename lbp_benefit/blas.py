"""One OpenBLAS kernel family for every ``lbp-benefit`` process, chosen before numpy loads.

OpenBLAS picks its kernels by CPU, and different kernels round matrix products differently, so
the same data trained on two x86_64 machines gave two model ids (``training/determinism.py`` has
the evidence). The command line therefore asks for ``Haswell`` kernels (AVX2 + FMA: every x86_64
server CPU since 2013) unless ``OPENBLAS_CORETYPE`` is already set (a machine that sets it keeps
its own choice) or the CPU lacks AVX2/FMA. Standard library only: importing this module loads
neither numpy nor ``training`` (``lbp-benefit serve`` must not import ``training``).
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BLAS_CORETYPE = "Haswell"
ENV = "OPENBLAS_CORETYPE"


def cpu_has_avx2() -> bool:
    """True when /proc/cpuinfo lists both AVX2 and FMA."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    have = set(flags.split(":", 1)[-1].split())
    return {"avx2", "fma"} <= have


def pin_blas_kernels() -> str | None:
    """Set ``OPENBLAS_CORETYPE=Haswell`` (unless it is set already, or the CPU lacks AVX2/FMA, or
    numpy is loaded: then it would no longer apply). Returns the core type in force, or None."""
    if ENV in os.environ:
        return os.environ[ENV]
    if platform.machine() not in ("x86_64", "AMD64") or "numpy" in sys.modules or not cpu_has_avx2():
        return None
    os.environ[ENV] = BLAS_CORETYPE
    return BLAS_CORETYPE
