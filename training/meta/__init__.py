"""One-stage IPD meta-analysis: overall treatment effects and treatment–covariate interactions."""
from training.meta.design import ModelSpec, build_design
from training.meta.fit import fit_model

__all__ = ["ModelSpec", "build_design", "fit_model"]
