"""Recovery's structural missing-input allowance: the spread of a derived binary outcome's benefit
over a patient's missing inputs, taken from the outcome's own definition through the continuous
outcomes' models (issue 23; measured in BENCHMARKS.md, session 10 i23b and session 11 i23r).

Why: recovery (1 = recovered) is defined from follow-up pain and/or function (per criterion o:
improvement >= max(relative x baseline, min_points); ``combine`` "any" or "all"). Its own learner is
additive on the log-odds scale and shrunk, so its prediction varies little over the conditional
draws of a missing input (on the simulator's strong-modification design 0.12 on the risk
difference where the truth given the observed inputs varies by ~0.19), and its 95% intervals
covered 0.80-0.87 of their estimands. The continuous pain and function models, mapped through the
definition, spread more (0.15) and are not attenuated by the binary coding.

The export field (``structural_missing`` on the recovery task's learner export, written by
``training.recovery_structure``)::

    {"version": 1, "combine": "any" | "all",
     "criteria": [{"outcome": "pain", "baseline": "baseline_pain", "relative": 0.3,
                   "min_points": 20.0, "sigma": residual SD, "comparators": [...],
                   "linear": the continuous effect model's linear part (identity link)}, ...]}

At scoring, per patient with a missing input and per arm k, over the *same* conditional draws of
the missing features that give the learner's own missing-data variance
(``predict.uncertainty.missing_draws``: the stored standard-normal matrix, no sampling):

    P_o(k) = Phi((b_o - max(relative b_o, min_points) - mu_o(k)) / sigma_o)
    P(k)   = 1 - prod_o (1 - P_o(k))   ("any"; the criteria independent given the inputs)
             prod_o P_o(k)             ("all")

with mu_o(k) the continuous model's expected follow-up under arm k and b_o the (drawn or observed)
baseline. v_ref = the variance over the draws of P(active) - P(comparator) (and of each arm's P).
The benefit's CI and PI use max(v_own, v_ref) in place of v_own, the learner's own draw variance
(= v_own + max(0, v_ref - v_own), the allowance); the per-arm intervals likewise per arm. Point
predictions are unchanged. Patients with every input given get no allowance (both variances are
0): the allowance is for what the missing inputs hide; a complete patient's interval is what it
was. Assumptions: normal residuals of the continuous outcomes, the criteria independent given the
inputs (a positive correlation makes the composite's true spread smaller: conservative), missing at
random given the observed inputs and the trial. Artifacts without the field score exactly as before;
a field of another version is refused when the model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from predict.linear import Linear, linear_eta
from predict.uncertainty import missing_draws

KEY = "structural_missing"
VERSION = 1
COMBINES = ("any", "all")


class StructuralFieldError(ValueError):
    """The export's ``structural_missing`` field cannot be used by this runtime."""


@dataclass(frozen=True)
class Criterion:
    outcome: str
    baseline: int  # column of the baseline in the feature matrix
    relative: float
    min_points: float
    sigma: float
    comparators: tuple[str, ...]
    linear: Linear


@dataclass(frozen=True)
class Structural:
    combine: str
    criteria: tuple[Criterion, ...]


def parse(exp: dict, where: str = "learner export") -> Structural | None:
    """The typed field of a learner export, or None when it has none (scored as before). Raises
    :class:`StructuralFieldError` naming the problem for an unknown version, combine rule, baseline
    or a malformed criterion."""
    f = exp.get(KEY) if isinstance(exp, dict) else None
    if f is None:
        return None
    if not isinstance(f, dict) or f.get("version") != VERSION:
        v = f.get("version") if isinstance(f, dict) else f
        raise StructuralFieldError(f"{where}: {KEY} version {v!r} is not known to this version of lbp-benefit "
                                   f"(it reads version {VERSION}); score it with the lbp-benefit that built it")
    if f.get("combine") not in COMBINES:
        raise StructuralFieldError(f"{where}: {KEY}.combine {f.get('combine')!r} is not one of {COMBINES}")
    names = list(exp["features"]["names"])
    crits = []
    for i, c in enumerate(f.get("criteria") or ()):
        try:
            if c["baseline"] not in names:
                raise StructuralFieldError(f"{where}: {KEY}.criteria[{i}].baseline {c['baseline']!r} is not a "
                                           "feature of the model")
            comps = tuple(c["comparators"])
            lin = Linear.of(c["linear"], len(comps))
            if lin.link != "identity":
                raise StructuralFieldError(f"{where}: {KEY}.criteria[{i}].linear must have the identity link")
            sigma = float(c["sigma"])
            if not sigma > 0:
                raise StructuralFieldError(f"{where}: {KEY}.criteria[{i}].sigma must be > 0, not {sigma}")
            crits.append(Criterion(str(c["outcome"]), names.index(c["baseline"]), float(c["relative"]),
                                   float(c["min_points"]), sigma, comps, lin))
        except (KeyError, TypeError) as exc:
            raise StructuralFieldError(f"{where}: {KEY}.criteria[{i}] lacks or mistypes {exc}") from None
    if not crits:
        raise StructuralFieldError(f"{where}: {KEY} has no criteria")
    return Structural(f["combine"], tuple(crits))


def recovery_probability(s: Structural, D: np.ndarray, arm: str, active: str = "__active__") -> np.ndarray:
    """P(recovered | arm, inputs) per row of the complete feature matrix D by the definition through
    the continuous models (module docstring); ``arm`` "__active__" or a comparator every criterion has."""
    q = []
    for c in s.criteria:
        mu = linear_eta(c.linear, list(c.comparators), D)[arm]
        b = D[:, c.baseline]
        cut = b - np.maximum(c.relative * b, c.min_points)
        q.append(ndtr((cut - mu) / c.sigma))
    if s.combine == "any":
        return 1.0 - np.prod([1.0 - p for p in q], axis=0)
    return np.prod(q, axis=0)


def structural_variance(L, s: Structural | None, F: np.ndarray, comparator: str):
    """(v benefit, v exercise arm, v comparator arm) over the learner ``L``'s conditional draws of
    the missing features of F's rows (0 for complete rows, for a comparator some criterion's model
    lacks, and without the field)."""
    n = F.shape[0]
    vb, va, vc = np.zeros(n), np.zeros(n), np.zeros(n)
    if s is None or any(comparator not in c.comparators for c in s.criteria):
        return vb, va, vc
    rows, flat, M, m = missing_draws(L, F)
    if flat is None or M < 2:
        return vb, va, vc
    pa = recovery_probability(s, flat, "__active__").reshape(M, m)
    pc = recovery_probability(s, flat, comparator).reshape(M, m)
    vb[rows], va[rows], vc[rows] = (pa - pc).var(axis=0, ddof=1), pa.var(axis=0, ddof=1), pc.var(axis=0, ddof=1)
    return vb, va, vc


def widened(v_own: np.ndarray, v_ref: np.ndarray) -> np.ndarray:
    """The missing-data variance the intervals use: v_own + max(0, v_ref - v_own)."""
    return np.maximum(np.asarray(v_own, float), v_ref)
