"""Entered versus imputed inputs in what the scorer explains and warns about.

An explanation of a patient's prediction must rest on what the clinician entered: a contribution
of an input that was missing (and replaced by its conditional mean given the entered inputs) is
a property of the imputation model, not of the patient. :func:`split_contributions` separates the
two, so the result's ``top_factors`` come from entered inputs only and the imputed ones are listed
apart (``imputed_factors``). :func:`imputation_warnings` warns when more than a configured share
(:data:`IMPUTED_SHARE_WARN`, or the manifest's ``imputed_share_warning``) of the model's effect
modifiers (its covariates; the baseline scores are required and never imputed) were not entered.
"""
from __future__ import annotations

import numpy as np

IMPUTED_SHARE_WARN = 0.5  # warn when more than this share of the effect modifiers is imputed


def split_contributions(contrib: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entered, imputed): ``contrib`` (patients x features) with the imputed inputs' columns set
    to 0 in the first and the entered inputs' columns set to 0 in the second (``F``: the raw
    features, NaN = not entered)."""
    miss = np.isnan(F)
    return np.where(miss, 0.0, contrib), np.where(miss, contrib, 0.0)


def share_threshold(manifest: dict) -> float:
    v = manifest.get("imputed_share_warning")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 else IMPUTED_SHARE_WARN


IMPUTED_MARK = " effect modifiers were not entered and were imputed"  # identifies the warning's kind


def imputation_warnings(F: np.ndarray, modifier_cols: list[int], share: float) -> list[str | None]:
    """Per patient the warning text when more than ``share`` of the modifier columns are missing
    (None otherwise)."""
    n = F.shape[0]
    k = len(modifier_cols)
    if k == 0 or n == 0:
        return [None] * n
    miss = np.isnan(F[:, modifier_cols]).sum(axis=1).tolist()
    out: list[str | None] = []
    for m in miss:
        if m / k > share:
            out.append(f"{m} of the model's {k}{IMPUTED_MARK} (more than "
                       f"{share:.0%}): the prediction is close to that of an average patient with these baseline "
                       "scores, and its explanation covers the entered inputs only")
        else:
            out.append(None)
    return out
