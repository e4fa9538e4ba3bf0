"""Validate an exported model on a new trial (``lbp-benefit validate``; docs/validate.md).

``validate_model(model, data, out=...)`` loads the artifact (``predict.Scorer``), reads and
harmonises the new trial with its study config, scores every participant against the comparator
they were randomised to, and writes a report folder with four sections: case-mix, outcome
predictions, benefit predictions and decision usefulness (+ an optional recalibration update).
Every metric comes from ``training.metrics``, the implementation IECV uses.
"""
from __future__ import annotations

from pathlib import Path

from training.validate.core import validate_model

__all__ = ["validate_model"]
