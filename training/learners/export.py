"""Exported learner state -> predictions: re-exported from :mod:`predict.runtime`.

The pure numpy + lightgbm prediction functions of an export dict (format
``lbp-benefit-learner`` v1; layout in :mod:`predict.runtime`'s docstring) live in the runtime
package ``predict``, which must not import ``training``. This module keeps every name importable
from ``training.learners.export`` for the learners and their tests.
"""
from __future__ import annotations

from predict.runtime import (  # noqa: F401 - re-exports
    _BOOSTER_CACHE,
    _BOOSTER_LOCK,
    _Z975,
    _basis_compiled,
    _compile_basis,
    _delta_se,
    _theta_split,
    FORMAT,
    VERSION,
    _benefit_from_expected,
    _benefit_h,
    _block_by_feature,
    _bound,
    _expected,
    _explain,
    _linear_terms,
    _mean_fn,
    _patterns,
    _tree_input,
    basis,
    benefit_only,
    block_matrix,
    booster,
    booster_contrib,
    booster_raw,
    estimation_se,
    expit,
    explain_from_export,
    feature_matrix,
    impute_draws,
    impute_mean,
    linear_eta,
    linear_parts,
    missing_variance,
    missing_variance_fast,
    norm_ppf,
    point,
    predict_from_export,
    prepare_export,
    rcs,
    varmodel_design,
)
