"""The scorer's view of one task (outcome x follow-up) and of its computed numbers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predict.learner_model import Learner
from predict.recovery_structure import Structural


@dataclass(frozen=True)
class Task:
    """One task of a loaded model: its learner (``model``: the typed, immutable learner every
    number is computed with, :mod:`predict.learner_model`; ``exp``: the verified learner export it
    was built from, as read, never written) and network model, if any."""

    task: str
    outcome: str
    follow_up: str
    outcome_type: str
    learner: str
    exp: dict
    model: Learner
    prefix: str  # flat-name stem (predict/outcome_text.score_prefix): the outcome, or "recovery"
    baseline: str | None  # the baseline input of the same scale (continuous outcomes)
    net: dict | None = None  # the task's one-stage IPD network model (predict/network.py), if any
    arm: str = "intervention"  # the intervention's word in flat names (predict/outcome_text.arm_word)
    # a derived binary outcome's structural missing-input allowance (predict/recovery_structure.py), if exported
    structural: Structural | None = None


@dataclass
class Computed:
    """Per requested task: arrays over patients (NaN where the comparator has no prediction)."""

    task: Task
    available: bool
    exercise: np.ndarray  # the intervention (active class) arm
    comparator: np.ndarray
    benefit: np.ndarray
    ci: tuple[np.ndarray, np.ndarray]
    pi: tuple[np.ndarray, np.ndarray]
    learner: str | None = None  # the model that produced it when not the task's learner ("ipd_network")
    evidence: dict | None = None  # network comparators: evidence type, trials, participants
