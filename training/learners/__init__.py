"""Individual-benefit learners for pooled randomised trials (see docs/learners.md).

Every learner: ``fit(X, y)`` with X a DataFrame (``trial``, ``treatment``, features),
``predict`` / ``predict_interval`` / ``explain`` / ``to_export``; predictions are pure functions
of the exported dict (the runtime, :mod:`predict`: numpy + lightgbm only).
"""
from training.learners.effect_model import ConstantEffect, EffectModel
from predict.explain import explain_from_export
from predict.runtime import predict_from_export
from training.learners.boosted import DRLearner, TLearner, XLearner
from training.learners.missing import GaussianImputer
from training.learners.risk_model import RiskModel
from training.learners.stacking import StackedLearner, r_loss, stack_weights

__all__ = [
    "ConstantEffect", "DRLearner", "EffectModel", "GaussianImputer", "RiskModel", "StackedLearner", "TLearner",
    "XLearner", "explain_from_export", "predict_from_export", "r_loss", "stack_weights",
]
