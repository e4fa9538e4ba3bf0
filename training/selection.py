"""Which learners a task fits and which model it deploys: the selection rules of ``train``.

- :func:`learners_for`: the learners fitted for an outcome type (``effect_pairs`` for continuous ones only, by
  default ``risk_model`` for binary ones only);
- :func:`without_inputs`: the learners that cannot be fitted on a task without a single input (tree learners);
- :func:`selectable`: the learners worth fitting for a task (tree learners only where IECV selects);
- :func:`select_model`: the deployed model from the IECV results — the convex R-loss stack, kept only if it
  passes the heterogeneity gate (``training.learners.stack_gate``), else :func:`gate_fallback`; or the
  lowest held-out R-loss, or the simplest learner within 1 SE; without IECV the effect model.
``s`` is a ``training.train.TrainSettings`` (``select``, ``gate_z``, ``seed``, ``stack_se``: "joint" gives the
stack its members' error correlation from the IECV, ``training.learners.member_corr``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from training.learners.member_corr import submatrix
from training.learners.stacking import StackedLearner

# fitted for continuous outcomes only: on binary outcomes the screened products were fitted noise that took stack
# weight in the default recovery task, at twice its cross-validation cost (BENCHMARKS.md, issue 23 session 9)
# train's default learners (``lbp-benefit train`` without --learner)
DEFAULT_LEARNERS = ("constant", "effect_model", "effect_adaptive", "effect_pairs", "risk_model", "t_learner",
                    "x_learner", "dr_learner")
CONTINUOUS_ONLY = ("effect_pairs",)
# The risk model lets the benefit vary along one prognostic index only (Kent et al. 2020, PATH statement). For a
# binary outcome that is the risk-magnification mechanism of an absolute risk difference; for a continuous one it
# carries whatever modification the index's strongest factor shows onto every prognostic factor, which on data written
# outside the team made it extrapolate the wrong way on a shifted new trial in 3 of 3 seeds (BENCHMARKS.md, session 12,
# s12x / s12a / integrator) while its own CI covered 0.39-0.77: by default it is fitted for binary outcomes only
# (asked for by name, e.g. ``--learner risk_model``, it is fitted for any outcome).
DEFAULT_BINARY_ONLY = ("risk_model",)


def learners_for(learners: Sequence[str], outcome_type: str, *, default: bool = False) -> list:
    """The learners fitted for a task of ``outcome_type``: :data:`CONTINUOUS_ONLY` only for continuous ones;
    with ``default`` (``train``'s default list, not one the user named) :data:`DEFAULT_BINARY_ONLY` only for
    binary ones."""
    drop = CONTINUOUS_ONLY if outcome_type != "continuous" else (DEFAULT_BINARY_ONLY if default else ())
    return [n for n in learners if n not in drop]


def fitted_labels(learners: Sequence[str]) -> list:
    """``learners`` as a run fits them, each learner fitted for one outcome type only labelled with it
    (for the card and reports: 'effect_pairs (continuous outcomes)', 'risk_model (binary outcomes)')."""
    default = tuple(learners) == DEFAULT_LEARNERS
    for_binary = set(learners_for(learners, "binary", default=default))
    for_continuous = set(learners_for(learners, "continuous", default=default))
    return [n if (n in for_binary and n in for_continuous)
            else f"{n} ({'continuous' if n in for_continuous else 'binary'} outcomes)" for n in learners]


# tree learners split on the inputs: a task with none (a study declaring no covariates, an outcome without a
# baseline) has nothing to split on, and LightGBM refuses such a dataset; the linear learners fit the average effect
NEED_INPUTS = ("t_learner", "x_learner", "dr_learner")


def without_inputs(learners: Sequence[str], n_inputs: int) -> list:
    """The learners of ``learners`` that cannot be fitted on a task with ``n_inputs`` candidate modifiers
    (:data:`NEED_INPUTS` when there are none); ``train`` leaves them out and says so."""
    return [n for n in learners if n_inputs == 0 and n in NEED_INPUTS]


def selectable(learners: Sequence[str], selection: bool) -> list:
    """The learners to fit for a task: all of them where IECV selects among them; else (the effect
    model deployed, :func:`select_model`) not the tree learners nor the adaptive effect model (a stack
    candidate only), which nothing would use - the linear
    ones stay (their coefficient summaries are written) and so does every learner when the effect
    model is not among them (then the first fitted one is deployed)."""
    if selection or deployed_without_selection(learners) != "effect_model":
        return list(learners)
    return [n for n in learners if n not in ("t_learner", "x_learner", "dr_learner", "effect_adaptive", "effect_ard",
                                         "effect_pairs")]


def deployed_without_selection(learners: Sequence[str]) -> str:
    """The learner :func:`select_model` deploys for a task without IECV (when it can be fitted)."""
    return "effect_model" if "effect_model" in learners else next(iter(learners))


def select_model(fitted: dict, res, s):
    """Stack (convex R-loss weights from IECV) or pick the lowest held-out R-loss; without
    IECV the effect model (its penalty already chosen by a trial-grouped benefit loss)."""
    if res is None or res.r_loss.empty:
        name = "effect_model" if "effect_model" in fitted else next(iter(fitted))
        return fitted[name], {"model": name, "rule": "no IECV for this task: effect model (penalty by grouped CV)"}
    rl = res.r_loss.set_index("learner")["r_loss"].to_dict()
    best = res.best_learner()
    if best not in fitted:  # the best held-out learner could not be fitted on all the data
        best = min((n for n in rl if n in fitted), key=lambda n: rl[n], default=next(iter(fitted)))
    if s.select == "best1se":
        from training.iecv import select_one_se

        name, _ = select_one_se(res.predictions, fitted[best].export_["outcome_type"])
        return fitted[name], {"model": name, "rule": "simplest learner within 1 SE of the lowest held-out R-loss",
                              "best_single": best, "r_loss": rl}
    if s.select == "stack" and res.stack_weights:
        w = {k: v for k, v in res.stack_weights.items() if v > 1e-6 and k in fitted}
        if any(v > 1e-6 and k not in fitted for k, v in res.stack_weights.items()) and w:
            total = sum(w.values())  # a stacked learner could not be fitted on all the data: renormalise
            w = {k: v / total for k, v in w.items()}
        gate = gate_of(res, fitted, s)
        if gate is not None and not gate["keep_stack"]:
            return gate_fallback(fitted, gate, best, rl, w)
        if w:
            names = list(w)
            corr = submatrix(res.member_corr, names) if getattr(s, "stack_se", "sum") == "joint" else None
            st = StackedLearner.from_fitted([fitted[n] for n in names], [w[n] for n in names], names,
                                            member_corr=corr)
            extra = {} if corr is None else {"member_corr": {c: np.round(R, 4).tolist() for c, R in corr.items()},
                                             "member_corr_folds": res.member_corr["folds"]}
            return st, {"model": "stacked", "weights": w, "rule": "convex R-loss stacking on IECV predictions",
                        "best_single": best, "r_loss": rl, **({"gate": gate} if gate is not None else {}), **extra}
    return fitted[best], {"model": best, "rule": "lowest pooled IECV R-loss", "r_loss": rl}


def gate_fallback(fitted: dict, gate: dict, best: str, rl: dict, w: dict):
    """The model deployed when the stack fails the heterogeneity gate: the effect model (its modification
    shrunk by its own trial-grouped CV, to none when prior SD 0 was chosen), else the average-effect model.

    Why not always the average-effect model: a gain that is not significant on held-out trials is not
    evidence of *no* modification. On the hayden2020 design the gate failed in 3 of 6 seeds; the
    average-effect model then over-predicted a shifted new trial's benefit by up to 5 points and its
    new-setting PI covered 0.46-0.61 of the trial's participants, against 0.96-0.99 for the shrunk effect
    model, which was also closer to the fitted participants' truth (BENCHMARKS.md, issue 23 session 9).
    Under no modification the effect model's CV chooses prior SD 0 and it *is* the average-effect model.
    The verdict still says the data do not show individual differences (``train_warnings.task_verdict``)."""
    name = "effect_model" if "effect_model" in fitted else "constant"
    what = ("the effect model, its modification shrunk by trial-grouped cross-validation (none if prior SD 0 "
            "was chosen)" if name == "effect_model" else "the average effect")
    return fitted[name], {"model": name, "rule": f"{what}: the stack did not beat the average-effect model on "
                          "held-out trials (" + gate["rule"] + ")", "best_single": best, "r_loss": rl,
                          "gate": gate, "stack_weights": w}


def gate_of(res, fitted: dict, s) -> dict | None:
    """The heterogeneity gate (training.learners.stack_gate) on the IECV predictions, or None when
    it does not apply (no gate, or no fitted average-effect model to fall back to)."""
    if s.gate_z is None or "constant" not in fitted or res.predictions is None or not len(res.predictions):
        return None
    from training.learners.stack_gate import heterogeneity_gate

    otype = fitted["constant"].export_["outcome_type"]
    return heterogeneity_gate(res.predictions, otype, z=s.gate_z, seed=s.seed)
