"""Does the stack earn its heterogeneity? An honest held-out test against the average-effect model.

The convex R-loss stack (``training.learners.stacking.stack_weights``) is fitted on the same
held-out (IECV) predictions it is judged on, so its held-out R-loss is optimistic: with no effect
modification at all it still gives some weight to learners whose held-out predictions happen to
fit the noise (issue 23: predicted spread 0.57 on the no-heterogeneity scenario). This module
judges the stack honestly:

1. **Cross-validated stacking weights.** The held-out trials are split into ``n_groups`` groups
   of whole trials; each group's stacked benefit uses weights fitted on the *other* groups'
   held-out predictions only. The result is a stacked prediction that no weight has seen.
2. **Paired, trial-clustered test.** Per participant the R-loss of the average-effect model
   minus that of the cross-validated stack, ``d_i``; the gain is ``mean(d)`` and its SE the
   cluster-robust (by trial) SE of a mean. The stack is kept only if ``gain > z * SE``
   (default ``z = 1.645``: a one-sided 5% test of "no gain over the average effect"; a stack that
   merely fits noise has an honest gain centred at or below 0. With ``z = 1`` the no-heterogeneity
   scenario's function task kept a stack at 1.3 SE, while the default data's gains were 2.0-2.8 SE).

3. **The primary model as a second chance** (``primary``, default the effect model). The
   cross-validated weights of a stack of six members are noisy, and the held-out gain of the stack
   can fall below that of its main member alone: on the issue-23 curvilinear scenario the stack's
   honest gain was 1.5 / 1.4 SE (seeds 1, 2; rejected, so the average-effect model was selected,
   root PEHE 6.96 against 5.27 for the effect model), while the average-effect model plus the effect
   model alone gained 2.2 / 2.0 SE. If the stack fails, the same test is run on the cross-validated
   stack of the reference and the primary model only; heterogeneity is accepted if either passes
   (the stack is then kept as selected). Under no modification the effect model's own CV usually
   chooses no interactions (prior SD 0), its predictions equal the average-effect model's and its
   gain is exactly 0, so the second test rarely adds false positives (two one-sided 5% tests: at
   most 10%, and much less for two such correlated statistics).

4. **A candidate, measured and not adopted: the stack moved towards the primary model within one SE**
   (:func:`shrink_to_primary`; ``benchmarks/bench_learners.py`` reports it as ``selected_1se_shrink``). The convex weights fitted on 15-20 held-out trials are noisy (trial-cluster bootstrap SD 0.1-0.4
   per member on the hayden2020 design), and a stack that leans on tree learners by chance extrapolates flat
   on a new trial whose case mix lies outside the training trials' (hayden2020 > edge_trial_h seed 6: DR
   0.63 + X 0.19, new-trial bias +8.9 points). On the segment from the stack's weights ``w`` to the primary
   model, ``(1 - lam) w + lam e_primary``, the largest ``lam`` (grid of 0.05) whose held-out R-loss exceeds the
   stack's by at most one trial-clustered SE of the paired difference is deployed: the one-standard-error
   rule (Breiman et al. 1984; Hastie, Tibshirani & Friedman 2009, 7.10) applied to the stack, favouring the
   smooth, regularised primary model where the held-out trials cannot tell the two apart. On the shifted
   trial it helped seed 6 (new-trial root PEHE 9.98 -> 8.93, PI 0.896 -> 0.942) and seed 10's PEHE (5.31 -> 4.61,
   but its PI 0.938 -> 0.887), and it
   cost the fitted participants 2-5% root PEHE wherever a stack helped (curvilinear 5.75 -> 5.92, interaction
   5.65 -> 5.90, hayden2020 4.91 -> 5.01, 2 seeds each) and moved the CI/PI out of 0.90-0.97 on interaction
   seed 1 (BENCHMARKS.md, session 11 i23w), so ``train`` does not use it.

When the stack fails, the caller (``training.train``) deploys the effect model, whose own trial-grouped
CV has shrunk its modification (to none, i.e. the class average effects with zero spread, when it chose
prior SD 0), and the verdict says the data do not show individual differences: a gain that is not
significant is not evidence of no modification, and the average-effect model transported to a shifted
new trial over-predicted its benefit (BENCHMARKS.md, issue 23 session 9).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.learners.stacking import r_loss_parts, stack_weights
from training.orientation import higher_is_better, orient

GATE_Z = 1.645  # one-sided 5%: keep heterogeneity only if "no gain over the average effect" is rejected


def _wide(pred: pd.DataFrame, outcome_type: str):
    wide = pred.pivot_table(index="row", columns="learner", values="benefit", aggfunc="first")
    info = pred.drop_duplicates("row").set_index("row").loc[wide.index]
    B = wide.to_numpy(float)
    ok = np.isfinite(B).all(axis=1)
    g = orient(info["y"].to_numpy(float), higher_is_better(outcome_type))
    return (list(wide.columns), B[ok], g[ok], info["treat"].to_numpy(float)[ok],
            info["trial"].astype(str).to_numpy()[ok], info["e"].to_numpy(float)[ok])


def cv_stack(B: np.ndarray, g: np.ndarray, treat: np.ndarray, trial: np.ndarray, e: np.ndarray,
             n_groups: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-group stacked benefit: rows of each group of whole trials combined with convex
    R-loss weights fitted on the other groups' rows (``stack_weights``)."""
    trials = np.unique(trial)
    rng = np.random.default_rng(seed)
    order = rng.permutation(trials)
    k = max(2, min(n_groups, trials.size))
    out = np.full(B.shape[0], np.nan)
    for i in range(k):
        te = np.isin(trial, order[i::k])
        if not te.any() or te.all():
            continue
        w = stack_weights(B[~te], g[~te], treat[~te], trial[~te], e[~te], None)
        if w is None:
            continue
        out[te] = B[te] @ w
    return out


def clustered_gain(loss_ref: np.ndarray, loss_new: np.ndarray, cluster: np.ndarray) -> tuple[float, float]:
    """Mean of ``loss_ref - loss_new`` and its cluster-robust SE (clusters = trials)."""
    d = loss_ref - loss_new
    n = d.size
    m = float(d.mean())
    sums = pd.Series(d - m).groupby(cluster).sum().to_numpy()
    k = sums.size
    se = float(np.sqrt(np.sum(sums ** 2) * (k / max(k - 1, 1))) / n)
    return m, se


def heterogeneity_gate(pred: pd.DataFrame, outcome_type: str, z: float = GATE_Z, n_groups: int = 5,
                       seed: int = 0, reference: str = "constant", primary: str | None = "effect_model") -> dict:
    """Test the cross-validated stack of the held-out predictions ``pred`` (IECV: learner, row,
    trial, y, treat, e, benefit) against the ``reference`` (average-effect) learner.

    Returns ``{"keep_stack", "gain", "se", "z", "gain_pct", "rule", "tested"}``; ``keep_stack`` is True
    when the reference learner is absent (nothing to fall back to) or the gain of the stack, or else
    of the ``primary`` model alone (module docstring, point 3; ``primary=None``: the stack only),
    clears ``z`` SEs; ``tested`` names which one did ("stack" when neither)."""
    if pred is None or len(pred) == 0 or reference not in set(pred["learner"]):
        return {"keep_stack": True, "gain": np.nan, "se": np.nan, "z": z, "gain_pct": np.nan,
                "rule": f"no held-out predictions of the {reference} model: gate not applied"}
    names, B, g, treat, trial, e = _wide(pred, outcome_type)
    if B.shape[0] < 10 or np.unique(trial).size < 3:
        return {"keep_stack": True, "gain": np.nan, "se": np.nan, "z": z, "gain_pct": np.nan,
                "rule": "fewer than 3 held-out trials: gate not applied"}
    gt, tt, keep = r_loss_parts(g, treat, trial, e, None)
    ref = B[:, names.index(reference)]

    def test(cols):
        b_cv = cv_stack(B[:, cols], g, treat, trial, e, n_groups, seed)
        k = keep & np.isfinite(b_cv)
        l_ref = (gt - tt * ref)[k] ** 2
        gain, se = clustered_gain(l_ref, (gt - tt * b_cv)[k] ** 2, trial[k])
        return gain, se, 100 * gain / max(float(l_ref.mean()), 1e-300)

    gain, se, pct = test(list(range(len(names))))
    keep_stack = bool(gain > z * se)
    rule = (f"cross-validated stack vs the average-effect model on held-out trials: R-loss gain {gain:.4g} "
            f"({pct:.2f}%), trial-clustered SE {se:.4g}; "
            + ("kept (gain above " if keep_stack else "not kept (gain not above ") + f"{z:g} SE)")
    tested = "stack"
    if not keep_stack and primary in names and primary != reference and len(names) > 2:
        g2, se2, pct2 = test([names.index(reference), names.index(primary)])
        if g2 > z * se2:
            keep_stack, tested, gain, se, pct = True, primary, g2, se2, pct2
        rule += (f"; the {primary} alone: gain {g2:.4g} ({pct2:.2f}%), SE {se2:.4g}; "
                 + ("heterogeneity accepted, stack kept" if keep_stack else "not kept either"))
    return {"keep_stack": keep_stack, "gain": gain, "se": se, "z": z, "gain_pct": pct, "rule": rule, "tested": tested}


SHRINK_GRID = np.linspace(0.0, 1.0, 21)


def shrink_to_primary(pred: pd.DataFrame, weights: dict, outcome_type: str, primary: str = "effect_model",
                      grid: np.ndarray = SHRINK_GRID) -> tuple[dict, dict]:
    """The stack's weights moved towards the ``primary`` learner by the one-SE rule (module docstring,
    point 4): ``(weights, info)``; ``info`` has ``lambda`` (share moved), the R-loss increase and its SE
    at that ``lambda`` and a ``rule`` sentence. Unchanged (``lambda`` 0) when the primary learner has no
    held-out predictions, the stack is the primary alone, or fewer than 3 held-out trials."""
    info = {"lambda": 0.0, "primary": primary, "loss_increase": 0.0, "se": np.nan}
    if pred is None or not len(pred) or primary not in set(pred["learner"]) or not weights:
        return dict(weights), {**info, "rule": f"no held-out predictions of the {primary}: weights as fitted"}
    names, B, g, treat, trial, e = _wide(pred, outcome_type)
    missing = [k for k in weights if k not in names]
    if missing or np.unique(trial).size < 3:
        return dict(weights), {**info, "rule": "fewer than 3 held-out trials or a member without held-out "
                                               "predictions: weights as fitted"}
    w0 = np.array([float(weights.get(k, 0.0)) for k in names])
    w0 = w0 / w0.sum()
    j = names.index(primary)
    if w0[j] >= 1.0 - 1e-12:
        return dict(weights), {**info, "rule": f"the stack is the {primary} alone"}
    gt, tt, keep = r_loss_parts(g, treat, trial, e, None)
    l0 = (gt - tt * (B @ w0))[keep] ** 2
    lam, inc, se_at = 0.0, 0.0, np.nan
    for step in grid[1:]:
        w = (1.0 - step) * w0
        w[j] += step
        d_mean, se = clustered_gain((gt - tt * (B @ w))[keep] ** 2, l0, trial[keep])
        if d_mean > se:  # the loss grows along the segment (w0 is the optimum): stop at the first failure
            break
        lam, inc, se_at = float(step), d_mean, se
    w = (1.0 - lam) * w0
    w[j] += lam
    out = {k: float(v) for k, v in zip(names, w) if v > 0}
    rule = (f"one-SE rule towards the {primary}: {lam:.2f} of the weight moved (held-out R-loss +{inc:.4g}, "
            f"trial-clustered SE {se_at:.4g})" if lam > 0 else
            f"one-SE rule towards the {primary}: no move (the smallest step costs more than one SE)")
    return out, {**info, "lambda": lam, "loss_increase": inc, "se": se_at, "rule": rule}
