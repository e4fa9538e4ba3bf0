"""Mixed-model fitting engine for one-stage IPD meta-analysis (numpy/scipy, per-group algebra).

- :func:`fit_lmm` — linear mixed model, REML/ML, unstructured or diagonal G, common or
  group-specific residual variances.
- :func:`fit_glmm_binomial` — logistic GLMM by maximum likelihood (Laplace or adaptive
  Gauss-Hermite quadrature).

Both return a :class:`MixedResult`.
"""
from .glmm import fit_glmm_binomial
from .lmm import fit_lmm
from .results import MixedResult

__all__ = ["fit_lmm", "fit_glmm_binomial", "MixedResult"]
