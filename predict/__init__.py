"""lbp-benefit runtime: feature schema, model artifacts, scoring and explanations.

This package is the small runtime that clinical tools embed. It depends on neither
``training`` nor ``serving``.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("lbp-benefit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from predict.errors import LbpError, Problem, ValidationFailed  # noqa: E402
from predict.schema import CovariateSpec, FeatureSchema  # noqa: E402
from predict.scorer import Scorer  # noqa: E402

__all__ = ["__version__", "LbpError", "Problem", "ValidationFailed", "CovariateSpec", "FeatureSchema", "Scorer"]
