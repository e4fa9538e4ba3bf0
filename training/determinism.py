"""One model from one data set, on every x86_64 machine.

Why the default model differed between machines of the same kind: LightGBM was already
deterministic here (one thread, ``deterministic=True``, row-wise histograms), and thread counts do
not change the model, but **OpenBLAS picks its kernels by CPU** (``SkylakeX`` with AVX-512,
``Haswell`` with AVX2, ``Zen``, ...) and different kernels round matrix products differently. The
differences (around 1e-16) reach the penalised fits, the selection and the boosters' inputs, so
the model files, and the model id, changed with the CPU: training the small test model with the
kernels forced to SkylakeX, Haswell and Prescott gave three different model ids on one machine;
threads (OMP/OPENBLAS_NUM_THREADS=1) and numba's target CPU did not change it. (Unpinned package
versions were the other cause: requirements.lock fixes those.)

``lbp_benefit.blas.pin_blas_kernels`` therefore asks OpenBLAS (numpy's and scipy's) for one kernel family,
``Haswell`` (AVX2 + FMA: every x86_64 server CPU since 2013, Intel and AMD). It must run before
numpy is loaded: ``lbp_benefit`` (the command line) and the tests call it first. A process that
loaded numpy earlier keeps the CPU's own kernels; :func:`blas_record` tells which kernels a run
used (``run.json`` and the artifact's ``training_environment``), so a model card can say which build
it describes. On CPUs without AVX2 (or other architectures) the kernels stay the CPU's own and
models may differ in the last bits from a Haswell-kernel build.
"""
from __future__ import annotations

import os
import platform
import sys

ENV = "OPENBLAS_CORETYPE"


def blas_record() -> list[dict]:
    """The BLAS libraries training computes with (threadpoolctl): library, version, kernel architecture
    (not the thread count: it does not change the model, and it differs between the processes of one
    run). numpy's and scipy's are loaded first and the list is sorted, so the record does not depend on
    what else the process happened to import before (it did: the card of one run differed by test order)."""
    import numpy  # noqa: F401  (each bundles its own OpenBLAS)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "prefix", "version", "architecture", "threading_layer")
    rows = {tuple((k, str(info.get(k))) for k in keep): {k: info.get(k) for k in keep}
            for info in threadpool_info() if info.get("user_api") == "blas"}
    return [rows[k] for k in sorted(rows)]


def training_environment() -> dict:
    """What a training run ran on: Python, platform, CPU, exact versions of the packages that
    compute the model, the BLAS kernels used and whether they were the pinned ones."""
    from importlib.metadata import PackageNotFoundError, version

    pk = {}
    for name in ("numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "statsmodels", "numba", "threadpoolctl"):
        try:
            pk[name] = version(name)
        except PackageNotFoundError:
            pk[name] = None
    blas = blas_record()
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(terse=True), "machine": platform.machine(), "packages": pk,
            "blas": blas, "blas_kernels_pinned": _pinned(blas)}


def _pinned(blas: list[dict]) -> bool:
    """Whether every OpenBLAS library ran the kernels that ``OPENBLAS_CORETYPE`` asked for."""
    asked = os.environ.get(ENV, "").lower()
    openblas = [b for b in blas if b.get("internal_api") == "openblas"]
    return bool(asked) and bool(openblas) and all(str(b.get("architecture", "")).lower() == asked for b in openblas)
