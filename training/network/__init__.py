"""Network meta-analysis of every comparator of exercise therapy (aggregate, IPD and both).

* ``data``: read arm-level or contrast-level summaries (documented CSV formats) into per-trial
  contrasts with their within-trial covariance.
* ``nma``: contrast-based random-effects NMA by REML; every pairwise estimate with CI and
  prediction interval; league table; P-scores; direct/indirect evidence table.
* ``inconsistency``: design-by-treatment Wald test and node-splitting.
* ``ipd``: one-stage IPD network model (the mixed-model engine with treatment as classes),
  IPD trials reduced to contrasts, and IPD + aggregate-only trials in one network.
* ``report``: figures and HTML/JSON/CSV report (``lbp-benefit network``).
"""
from training.network.data import StudyContrasts, load_aggregate
from training.network.inconsistency import design_by_treatment, node_split
from training.network.nma import NMAResult, direct_evidence, fit_nma

__all__ = ["StudyContrasts", "load_aggregate", "fit_nma", "NMAResult", "direct_evidence", "design_by_treatment",
           "node_split"]
