"""The runtime's typed learners: one immutable structure per learner, built once from a verified
learner export (:func:`build`), that the numpy reference and the compiled program compute with.

A learner export (:mod:`predict.model_format`: a dict with a ``kind`` discriminator) becomes one
of four classes, and this is the one place a ``kind`` string chooses the code that scores it:

- :class:`LinearLearner` (``constant``, ``effect_model``, ``risk_model``): a linear part;
- :class:`TLearner` (``t_learner``): a linear part plus one LightGBM booster per arm;
- :class:`EffectTreeLearner` (``x_learner``, ``dr_learner``): an embedded T-learner (the expected
  outcome under the active class) and boosters of the benefit, weighted (X: ``e`` and ``1 - e``;
  DR: one booster, weight 1), plus a class benefit per comparator;
- :class:`StackedLearner` (``stacked``): members (any of the above) and their weights.

What each kind computes is chosen by the learner's class (each job module keys its per-kind
functions on these classes: :mod:`predict.evaluate`, :mod:`predict.explain`,
:mod:`predict.uncertainty`, :mod:`predict.arm_intervals`, :mod:`predict.program`). Every number is
an array or float fixed at construction (numpy arrays read-only); the linear blocks carry their
basis plans (:class:`predict.linear.Block`), the imputer its own pattern cache
(:class:`predict.impute.PatternCache`), so nothing is ever written into an export.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

import numpy as np

from predict.impute import Imputer
from predict.linear import Linear
from predict.numeric import frozen_array


# How a stack's members' disagreement enters its benefit's variance (``interval.between``):
# "mixture" = the model-averaging variance (law of total variance for a mixture; Buckland, Burnham &
# Augustin 1997; Hoeting et al. 1999): sum_k v_k (b_k - sum_j v_j b_j)^2 over the members' point
# benefits b_k, v = the weights normalised to sum 1, added to the within-member variance
# (predict.uncertainty.between_variance). Stacks exported from 2026-12-07 state it.
BETWEEN_MIXTURE = "mixture"
BETWEEN_RULES = (BETWEEN_MIXTURE,)


def member_corr_of(iv: dict) -> Mapping[str, np.ndarray] | None:
    """The interval's ``member_corr`` (stacks only): {comparator: symmetric correlation matrix with
    unit diagonal and entries in [-1, 1]}; anything else is refused at load (its size is checked
    against the members by :func:`build`)."""
    mc = iv.get("member_corr")
    if mc is None:
        return None
    if iv.get("method") != "stack" or not isinstance(mc, dict):
        raise ValueError("interval.member_corr is for stacks only and maps each comparator to a matrix")
    out = {}
    for c, R in mc.items():
        A = np.asarray(R, float)
        if (A.ndim != 2 or A.shape[0] != A.shape[1] or not np.all(np.isfinite(A)) or not np.allclose(A, A.T)
                or not np.allclose(np.diag(A), 1.0) or np.any(np.abs(A) > 1 + 1e-12)):
            raise ValueError(f"interval.member_corr[{c!r}] is not a correlation matrix")
        out[str(c)] = frozen_array(A)
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class Interval:
    """Estimation uncertainty of a learner (see :mod:`predict.uncertainty`): ``method`` "delta"
    (``theta_cov``), "varmodel" (``varmodel`` per comparator and ``arm_varmodel`` per arm, on the
    design standardised by ``design_loc``/``design_scale``) or "stack"; ``tau``: between-trial SD
    per comparator; ``between`` (stacks): how the members' disagreement enters the benefit's
    variance, :data:`BETWEEN_RULES` (None: not at all, the rule of artifacts before 2026-12-07,
    which are scored as they were); ``member_corr`` (stacks, from 2026-12-08, optional): per comparator
    the K x K correlation of the members' estimation errors, the within-member SE being
    sqrt(s' R s) with s_k = w_k SE_k (absent, or for a comparator without one: R = all ones, i.e.
    sum_k w_k SE_k, as stacks were scored before)."""

    method: str
    tau: Mapping[str, float]
    theta_cov: np.ndarray | None = None
    varmodel: Mapping[str, np.ndarray] | None = None
    arm_varmodel: Mapping[str, np.ndarray] | None = None
    design_loc: np.ndarray | None = None
    design_scale: np.ndarray | None = None
    modifier_blocks: tuple | None = None  # delta method: (theta_cov[mod, 1 + i] per comparator i, theta_cov[mod, mod])
    between: str | None = None
    member_corr: Mapping[str, np.ndarray] | None = None

    @classmethod
    def of(cls, iv: dict | None, linear: Linear | None = None) -> "Interval | None":
        """The interval of an export; with the learner's ``linear`` part, the delta method's blocks of
        ``theta_cov`` for the modifier coefficients are cut once here (:func:`predict.uncertainty.delta_se`)."""
        if not isinstance(iv, dict):
            return None

        def per(d):
            return None if not isinstance(d, dict) else MappingProxyType({k: frozen_array(v) for k, v in d.items()})

        des = iv.get("design") if isinstance(iv.get("design"), dict) else {}
        V = None if iv.get("theta_cov") is None else frozen_array(iv["theta_cov"])
        blocks = None
        K = 0 if linear is None else linear.theta.size
        if V is not None and linear is not None and linear.n_mod and V.shape == (K, K):
            mod = np.arange(K - linear.n_mod, K)
            blocks = (tuple(frozen_array(V[mod, 1 + j]) for j in range(linear.n_classes)),
                      frozen_array(V[np.ix_(mod, mod)]))
        between = iv.get("between")
        if between is not None and (between not in BETWEEN_RULES or iv.get("method") != "stack"):
            raise ValueError(f"interval rule between={between!r} is not known to this version of lbp-benefit "
                             f"(known, for stacks only: {', '.join(BETWEEN_RULES)}); the artifact is newer than "
                             "the scorer or corrupt")
        return cls(iv.get("method"), MappingProxyType(dict(iv.get("tau") or {})), V, per(iv.get("varmodel")),
                   per(iv.get("arm_varmodel")), None if "loc" not in des else frozen_array(des["loc"]),
                   None if "scale" not in des else frozen_array(des["scale"]), blocks, between,
                   member_corr_of(iv))

    def tau_of(self, comparator: str) -> float:
        return float(self.tau.get(comparator, 0.0))


_ONE = frozen_array([1.0])


@dataclass(frozen=True, eq=False)
class Learner:
    """What every learner has: its kind (the export's word, for display), outcome type, active
    class, comparators (with estimates) and unavailable classes, feature layout (the export's
    ``features``), imputer, interval, training support (:mod:`predict.support`) and meta."""

    kind: str
    outcome_type: str
    active: str
    comparators: tuple[str, ...]
    unavailable: tuple[str, ...]
    features: Mapping[str, Any]
    imputer: Imputer
    interval: Interval | None
    support: Mapping[str, Any] | None
    meta: Mapping[str, Any]
    has_trees: ClassVar[bool] = False  # LightGBM boosters enter its predictions

    @property
    def continuous(self) -> bool:
        return self.outcome_type == "continuous"

    @property
    def parts(self) -> tuple["Learner", ...]:
        """The learners embedded in this one (an X/DR nuisance, a stack's members)."""
        return ()

    @property
    def stack(self) -> tuple[np.ndarray, tuple["Learner", ...]]:
        """(weights, members): a stack's own; a single learner is a stack of one, (1,), (itself,)."""
        return _ONE, (self,)


@dataclass(frozen=True, eq=False)
class LinearLearner(Learner):
    linear: Linear


@dataclass(frozen=True, eq=False)
class TLearner(LinearLearner):
    """A linear base plus one booster per arm ("active", "control"), raw scores added to the
    linear predictor; ``tree_missing``: the boosters see NaN ("native") or the imputed matrix."""

    boosters: Mapping[str, Any]
    tree_missing: str
    has_trees: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class EffectTreeLearner(Learner):
    """X- and DR-learners: the expected outcome under the active class from the embedded
    T-learner ``nuisance``; the benefit = the comparator's class benefit + the weighted sum of the
    benefit boosters' raw scores (``tau``: (booster name, weight) pairs; X: tau0 with e, tau1 with
    1 - e; DR: tau with 1)."""

    nuisance: TLearner
    boosters: Mapping[str, Any]
    tree_missing: str
    tau: tuple[tuple[str, float], ...]
    class_benefit: Mapping[str, float]
    has_trees: ClassVar[bool] = True

    @property
    def parts(self) -> tuple[Learner, ...]:
        return (self.nuisance,)


@dataclass(frozen=True, eq=False)
class StackedLearner(Learner):
    members: tuple[Learner, ...]
    weights: np.ndarray
    names: tuple[str, ...]

    @property
    def parts(self) -> tuple[Learner, ...]:
        return self.members

    @property
    def stack(self) -> tuple[np.ndarray, tuple[Learner, ...]]:
        return self.weights, self.members

    @property
    def weights_normalised(self) -> np.ndarray:
        """The weights scaled to sum 1 (equal weights if they sum to 0): the active arm's average."""
        w = self.weights
        return w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)


def _common(exp: dict, cache: bool, linear: Linear | None = None) -> dict:
    return dict(kind=exp["kind"], outcome_type=exp["outcome_type"], active=exp.get("active", "exercise"),
                comparators=tuple(exp["comparators"]), unavailable=tuple(exp.get("unavailable") or ()),
                features=MappingProxyType(dict(exp["features"])), imputer=Imputer.of(exp["imputer"], cache=cache),
                interval=Interval.of(exp.get("interval"), linear), support=exp.get("support"),
                meta=MappingProxyType(dict(exp.get("meta") or {})))


def _linear(exp: dict, cache: bool) -> LinearLearner:
    lin = Linear.of(exp["linear"], len(exp["comparators"]))
    return LinearLearner(**_common(exp, cache, lin), linear=lin)


def _t(exp: dict, cache: bool) -> TLearner:
    lin = Linear.of(exp["linear"], len(exp["comparators"]))
    return TLearner(**_common(exp, cache, lin), linear=lin, boosters=MappingProxyType(dict(exp["boosters"])),
                    tree_missing=exp.get("tree_missing", "native"))


def _effect_trees(exp: dict, cache: bool, tau: tuple) -> EffectTreeLearner:
    nu = build(exp["nuisance"], cache=cache)
    if not isinstance(nu, TLearner):
        raise ValueError(f"the nuisance of a {exp['kind']} must be a T-learner, not {nu.kind}")
    return EffectTreeLearner(**_common(exp, cache), nuisance=nu, boosters=MappingProxyType(dict(exp["boosters"])),
                             tree_missing=exp.get("tree_missing", "native"), tau=tau,
                             class_benefit=MappingProxyType({c: float(v) for c, v in
                                                             exp["combine"]["class_benefit"].items()}))


def _x(exp: dict, cache: bool) -> EffectTreeLearner:
    e = float(exp["combine"]["e"])
    return _effect_trees(exp, cache, (("tau0", e), ("tau1", 1 - e)))


def _dr(exp: dict, cache: bool) -> EffectTreeLearner:
    return _effect_trees(exp, cache, (("tau", 1.0),))


def _stacked(exp: dict, cache: bool) -> StackedLearner:
    mem = exp["members"]
    common = _common(exp, cache)
    K = len(mem["exports"])
    for c, R in (common["interval"].member_corr or {}).items() if common["interval"] is not None else ():
        if R.shape != (K, K):
            raise ValueError(f"interval.member_corr[{c!r}] is {R.shape[0]} x {R.shape[1]} for a stack of {K} members")
    return StackedLearner(**common, members=tuple(build(e, cache=cache) for e in mem["exports"]),
                          weights=frozen_array(mem["weights"]), names=tuple(mem.get("names") or ()))


_BUILD = {"constant": _linear, "effect_model": _linear, "risk_model": _linear, "t_learner": _t,
          "x_learner": _x, "dr_learner": _dr, "stacked": _stacked}


def build(exp: dict, cache: bool = True) -> Learner:
    """The typed learner of a learner export (dict; boosters as LightGBM model strings or loaded
    boosters). ``cache``: give each imputer a pattern cache (a loaded model scored many times)."""
    try:
        make = _BUILD[exp["kind"]]
    except KeyError:
        raise ValueError(f"unknown learner kind {exp.get('kind')!r}") from None
    return make(exp, cache)


def as_learner(exp: "Learner | dict") -> Learner:
    """``exp`` if it is a typed learner, else :func:`build` of the export dict without pattern
    caches (the public functions of the numpy reference take either; training calls them on
    export dicts)."""
    return exp if isinstance(exp, Learner) else build(exp, cache=False)
