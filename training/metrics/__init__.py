"""Metric library for benefit (treatment-effect) predictions and outcome predictions.

One implementation serves internal-external cross-validation (leave-one-trial-out) and
``lbp-benefit validate`` on a new trial. Conventions: predicted ``benefit`` > 0 means the
intervention is better; ``higher_is_better`` orients observed outcomes the same way; ``treat`` = 1
for the intervention; ``cluster`` (trial id) optional - matching/grouping within cluster, cluster-bootstrap
CIs. Every result is a frozen dataclass with a JSON-able ``to_dict()``. See docs/metrics.md.
"""
from training.metrics.benefit import (
    CForBenefitResult,
    EForBenefitResult,
    MatchedPairs,
    c_for_benefit,
    e_for_benefit,
    match_pairs,
)
from training.metrics.benefit_calibration import (
    BenefitCalibrationResult,
    GroupedCalibrationResult,
    IteCalibrationResult,
    calibration_for_benefit,
    calibration_for_benefit_groups,
    calibration_for_ite,
)
from training.metrics.decision import DecisionCurveResult, net_benefit
from training.metrics.outcome import (
    CalibrationCurveResult,
    OutcomePerformanceResult,
    c_statistic,
    calibration_curve,
    delong_se,
    outcome_performance,
)
from training.metrics.pooling import PooledResult, pool_metric, pool_random_effects
from training.metrics.rate import RateResult, dr_scores, rank_average_treatment_effect

__all__ = [
    "BenefitCalibrationResult", "CForBenefitResult", "CalibrationCurveResult", "DecisionCurveResult",
    "EForBenefitResult", "GroupedCalibrationResult", "IteCalibrationResult", "MatchedPairs",
    "OutcomePerformanceResult", "PooledResult", "RateResult", "c_for_benefit", "c_statistic",
    "calibration_curve", "calibration_for_benefit", "calibration_for_benefit_groups",
    "calibration_for_ite", "delong_se", "dr_scores", "e_for_benefit", "match_pairs",
    "net_benefit", "outcome_performance", "pool_metric", "pool_random_effects",
    "rank_average_treatment_effect",
]
