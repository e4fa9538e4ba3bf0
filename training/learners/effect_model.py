"""Effect model (PATH "effect modelling") and the constant-effect model.

Estimand: the benefit of the active class vs comparator class c for a patient with covariates
x in an average trial (see :mod:`training.learners.base`).

Model (identity link for continuous outcomes, logit for binary), one-stage, trial-stratified::

    eta = alpha_trial + a_c + P(x) beta + 1[active] (M(x) - Mbar_trial) gamma

- ``alpha_trial``: trial fixed effects; ``a_c``: average effect of class c vs active (so the
  continuous benefit is a_c - (M(x) - Mbar) gamma);
- ``P``: rich prognostic part, every feature linear + restricted cubic spline (3 knots) for
  continuous features, weakly penalised;
- ``M``: the candidate modifiers (default all features; linear + RCS terms so non-linear
  modification, e.g. BMI, is possible), centred at trial means for fitting (within-trial
  information only; opt-in ``between_sd``: plus a between-trial part, ``training.learners.between``),
  shrunk by a ridge penalty = a N(0, s^2) prior on each standardised
  interaction. s is chosen from a grid *including s = 0 (the constant-effect model)* by grouped
  (by trial) cross-validation of the R-loss (a benefit loss; see ``stacking``), unless given.
- Effect modification is shared across comparator classes (assumption); class effects are
  separate. Missing features: two-level Gaussian imputation (``missing``).

Uncertainty: trial-cluster bootstrap of the coefficients (penalty fixed) -> covariance, plus
the prior-expected covariance of the ridge shrinkage bias (``shrinkage_bias``; without it a
shrunk estimate's interval is centred on a biased value and under-covers), delta method for
each patient's benefit; plus variation over the patient's missing covariates; tau
(between-trial SD of the class effect beyond the model) for a new setting.

``ConstantEffect`` is the same model without modifiers: the class average effects only.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from predict.model_format import LEARNER_FORMAT, LEARNER_VERSION
from predict.numeric import expit
from training.learners import between as btw
from training.learners.base import BenefitLearner, TaskArrays, allocation_share, class_support
from training.learners.intervals import cluster_bootstrap, few_trial_variance, offset_slope, residual_tau, tau_prior
from training.learners.cv_loss import held_out_r_loss, pooled, training_rows
from training.learners.folds import row_folds
from predict.expected_basis import EXPECTED
from training.learners.linear import (StructuredFit, TrialBlocks, design, linear_block, make_basis, prior_lambda,
                                      replicate_counts, replicate_start, theta_path, trial_centre)
from training.learners.missing import GaussianImputer
from training.learners.shared_work import digest, frozen, is_shared_array, shared
from training.learners.stacking import comparator_mix

GAUSSIAN_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # prior SD of a standardised interaction, points
LOGIT_GRID = (0.0, 0.03, 0.06, 0.12, 0.25, 0.5)  # on the log-odds scale
MAIN_SD = {"gaussian": 50.0, "binomial": 3.0}


def family_of(outcome_type: str) -> str:
    return "gaussian" if outcome_type == "continuous" else "binomial"


class LinearData:
    """Design pieces shared by the linear learners for one training set."""

    def __init__(self, learner, X, y):
        spec = learner._spec(X)
        prep = TaskArrays(X, y, spec, learner.active, learner.outcome_type)
        classes = learner.classes if learner.classes is not None else sorted(set(prep.cls))
        comps, unavailable, support = class_support(prep, classes)
        if not comps:
            raise ValueError("no trial compares the active class with a comparator: benefit not estimable")
        keep = np.isin(prep.cls, comps + [prep.active])
        self.spec, self.prep, self.keep = spec, prep, keep
        self.comps, self.unavailable, self.support = comps, unavailable, support
        imp = GaussianImputer(n_draws=learner.n_draws, random_state=learner.random_state)
        imp.fit(prep.F[keep], prep.trial_labels[keep], spec["types"])
        self.imputer = imp
        Fi = imp.transform_train(prep.F, prep.trial_labels)
        self.Fi = Fi[keep]
        self.F = prep.F[keep]
        self.spread = imp.spread_train(self.F, prep.trial_labels[keep])  # the missing values' distribution
        self.y, self.g = prep.y[keep], prep.g[keep]
        self.cls, self.treat = prep.cls[keep], prep.treat[keep]
        self.trial_labels = prep.trial_labels[keep]
        _, self.trial = np.unique(self.trial_labels, return_inverse=True)
        self.e = allocation_share(self.trial, self.treat == 1, self.treat == 0)
        self.has_comp = np.array([np.isfinite(self.e[self.trial == t]).any() for t in range(self.trial.max() + 1)])
        self.family = family_of(learner.outcome_type)
        self.W = comparator_mix(self.trial, self.cls, prep.active, comps)

    def base_export(self, learner, kind: str) -> dict:
        return {
            "format": LEARNER_FORMAT, "version": LEARNER_VERSION, "kind": kind, "outcome_type": learner.outcome_type,
            "active": self.prep.active, "comparators": self.comps, "unavailable": self.unavailable,
            "features": self.spec, "imputer": self.imputer.export(),
            "meta": {"n": int(self.y.size), "trials": int(self.trial.max() + 1), "support": self.support,
                     "trial_labels": sorted(set(self.trial_labels.tolist()))},
        }


_SHARED: list = []  # [(weakref to X, y copy, settings key, LinearData)], most recent last


def shared_linear_data(learner, X, y) -> LinearData:
    """:class:`LinearData` of ``X, y`` for ``learner``, shared with the other learners fitted on the
    *same* ``X`` object (and equal ``y``) with the same settings: the linear and boosted learners of
    one training job or IECV fold then impute and build their design once instead of once each.
    The shared object is only read by the learners (``d.P``, set by the boosted learners, is the
    same basis for each of them)."""
    import weakref

    yv = np.asarray(y, float)
    key = repr((learner.outcome_type, learner.active, learner.classes, learner.features,
                getattr(learner, "n_draws", None), learner.random_state))
    for ref, yy, k, d in _SHARED:
        if ref() is X and k == key and yy.shape == yv.shape and np.array_equal(yy, yv, equal_nan=True):
            return d
    d = LinearData(learner, X, y)
    try:
        _SHARED.append((weakref.ref(X), yv.copy(), key, d))
    except TypeError:  # not weak-referenceable: not shared
        return d
    del _SHARED[:-3]
    return d


class EffectModel(BenefitLearner):
    """Penalised, trial-stratified effect model with spline modifiers (module docstring).

    Parameters: ``outcome_type`` 'continuous' | 'binary'; ``active`` class name; ``classes``
    all treatment classes (default: those in the data); ``features`` names or a feature spec
    dict (default: every non-reserved column); ``modifiers`` candidate modifier names (default
    all features; empty = constant-effect model); ``interaction_sd`` prior SD of standardised
    interactions (None = choose by grouped CV of the R-loss from ``interaction_grid``);
    ``n_boot`` trial-cluster bootstrap replicates; ``n_draws`` imputation draws for scoring;
    ``missing`` 'conditional_mean' (fit on conditional means within trial) or 'mi' (fit on
    ``n_imputations`` multilevel multiple imputations that include outcome and treatment, pooled
    by Rubin's rules: ``training.impute.learner``); ``class_shrinkage`` pulls the class average
    effects towards their comparison set (``class_groups``: lists of classes, e.g. the config's
    comparison sets) by empirical Bayes (``training.learners.shrinkage``); ``adaptive`` gives each
    modifier feature its own prior SD from a stage-1 fit, used only if it lowers the cross-validated
    R-loss (``True``) or always (``"always"``: the adaptive candidate with the lowest CV R-loss; a
    separate member for the stack to weigh) (``training.learners.adaptive``); ``pairs`` adds product
    columns for a few screened pairs of modifiers with their own prior SD chosen by the same CV (0
    included: none) (``training.learners.pairs``; not with ``adaptive``).
    """

    kind = "effect_model"
    modifier_knots = None  # knots of the modifiers' splines (None: n_knots); a subclass parameter (ard)
    n_pairs = None  # pairs kept by the product screen (None: training.learners.pairs.N_PAIRS); a benchmark hook
    # a training row's (and a scored patient's) missing inputs enter the basis as its expectation E[B(X) | observed]
    # (predict.expected_basis; exported as linear.missing = "expected"); False: the basis at the conditional mean
    # (before 2026-12-07; a benchmark hook). Not with multiple imputation (its completed sets are used as they are).
    expected_basis = True
    # within/between-trial interactions (training.learners.between): None (the default) = within-trial only;
    # a number = the between-trial interactions' prior SD as a multiple of the within-trial one, served with
    # ``between_scoring`` ('average' | 'reliability' | 'own'). Opt-in, measured in BENCHMARKS.md (session 12, s12x).
    between_sd = None
    between_scoring = "reliability"

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 modifiers=None, interaction_sd=None, interaction_grid=None, main_sd=None, n_knots: int = 3,
                 splines: bool = True, n_boot: int = 100, n_folds: int = 5, n_draws: int = 20,
                 shrinkage_bias: bool = True, missing: str = "conditional_mean", n_imputations: int = 5,
                 class_shrinkage: bool = False, class_groups=None, adaptive: bool | str = False, pairs: bool = False,
                 random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.modifiers = modifiers
        self.adaptive = adaptive
        self.pairs = pairs
        self.interaction_sd = interaction_sd
        self.interaction_grid = interaction_grid
        self.main_sd = main_sd
        self.n_knots = n_knots
        self.splines = splines
        self.n_boot = n_boot
        self.n_folds = n_folds
        self.n_draws = n_draws
        self.shrinkage_bias = shrinkage_bias
        self.missing = missing
        self.n_imputations = n_imputations
        self.class_shrinkage = class_shrinkage
        self.class_groups = class_groups
        self.random_state = random_state

    # -- design
    def uses_expected(self) -> bool:
        """Whether the fit (and so the export) takes the expected basis of missing inputs."""
        return bool(self.expected_basis) and getattr(self, "missing", "conditional_mean") != "mi"

    def spread_for(self, d: LinearData, F) -> object:
        """``d.spread`` when the basis at ``F`` is to be the expected one (F is the conditional-mean
        matrix ``d.Fi`` and :meth:`uses_expected`); else None."""
        return d.spread if F is d.Fi and self.uses_expected() else None

    def _design(self, d: LinearData, Fi=None):
        """(Pcols, Mcols, P, M): the basis is fixed by the conditional-mean matrix ``d.Fi``; with
        ``Fi`` (a multiply imputed set) P and M are that set's values on the same basis. At ``d.Fi``
        a missing value's columns are their conditional expectations (:meth:`uses_expected`)."""
        F = d.Fi if Fi is None else Fi
        mods = d.spec["names"] if self.modifiers is None else list(self.modifiers)
        mk = self.modifier_knots or self.n_knots
        Pcols, P = self._block(d, F, None, self.n_knots)
        Mcols, M = self._block(d, F, mods, mk) if mods else ([], np.zeros((F.shape[0], 0)))
        return Pcols, Mcols, P, M

    def _block(self, d: LinearData, F, only, n_knots: int):
        """(column specs, basis at F) of the features ``only`` (None: all); at ``d.Fi`` shared by
        every learner fitted on ``d`` with the same settings (training.learners.shared_work)."""
        sp = self.spread_for(d, F)

        def compute():
            cols = make_basis(d.Fi, d.spec, n_knots, self.splines, only=only)
            return frozen(cols, design(cols, F, sp))
        if F is not d.Fi:
            return compute()
        key = ("block", None if only is None else tuple(only), n_knots, self.splines, sp is not None)
        cols, B = shared(d, key, compute)
        return copy.deepcopy(cols), B

    def fit(self, X: pd.DataFrame, y) -> "EffectModel":
        from training.impute.learner import completed_sets, rubin_cov

        d = shared_linear_data(self, X, y)
        sets = completed_sets(self, d)
        Pcols, Mcols, P, M = self._design(d, sets[0])
        Ps, Ms = [P], [M]
        for Fm in sets[1:]:
            _, _, Pm, Mm = self._design(d, Fm)
            Ps.append(Pm)
            Ms.append(Mm)
        fam = d.family
        # penalty, sigma and the CV choice of the interaction SD come from the conditional-mean
        # matrix: multiple imputations use the outcome, so a held-out fold's imputed modifiers would
        # carry its own outcomes into the CV loss (leakage that picked too little shrinkage)
        P0, M0 = (P, M) if len(sets) == 1 else self._design(d)[2:]
        main_sd = self.main_sd if self.main_sd is not None else MAIN_SD[fam]
        const = shared(d, ("const", id(P0), fam, main_sd) if is_shared_array(d, P0) else None,
                       lambda: StructuredFit(fam, prior_lambda(fam, 1.0, main_sd), 1e12).fit(
                           d.y, d.trial, d.cls, d.treat, d.comps, P0, np.zeros((d.y.size, 0))))
        sigma2 = const.sigma2_ if fam == "gaussian" else 1.0
        lam_main = prior_lambda(fam, sigma2, main_sd)
        C = len(d.comps)
        prog = P0 @ const.theta_[1 + C:1 + C + P0.shape[1]]
        sd, w, sigma2_m = self.modifier_prior(d, P0, M0, Mcols, lam_main, sigma2, prog)
        if sigma2_m != sigma2:  # the modifier prior came with its own residual variance (training.learners.ard)
            sigma2 = sigma2_m
            lam_main = prior_lambda(fam, sigma2, main_sd)
        if w is not None:
            # feature-wise prior SDs w * sd, folded into the columns' scale (value = w (v - loc) / scale)
            keep = w > 0
            sd = sd if keep.any() else 0.0
            Mcols = [{**c, "scale": c["scale"] / wj} for c, wj, k in zip(Mcols, w, keep) if k]
            Ms = [m[:, keep] * w[keep] for m in Ms]
        self.pairs_ = None
        if getattr(self, "pairs", False) and self.interaction_sd is None and M.shape[1]:
            if self.adaptive:
                raise ValueError("pairs and adaptive cannot be combined")
            from training.learners.pairs import N_PAIRS, select_pairs

            folds = row_folds(d.trial, d.has_comp, d.cls, self.n_folds, self.random_state)
            pc, ref, keep_main, table, sp = select_pairs(d, P0, M0, [d.spec["names"][c["feature"]] for c in Mcols],
                                                         sd, lam_main, sigma2, prog, folds,
                                                         n_pairs=self.n_pairs or N_PAIRS,
                                                         spread=self.spread_for(d, d.Fi))
            self.pairs_ = {"cv": table, "product_sd": sp, "columns": pc}
            if pc:
                if not keep_main:
                    Mcols, Ms = [], [m[:, :0] for m in Ms]
                Mcols = Mcols + pc
                Ms = [np.hstack([m, design(pc, Fm, self.spread_for(d, Fm))]) for m, Fm in zip(Ms, sets)]
                sd = ref
        self.interaction_sd_ = sd
        lam_int = prior_lambda(fam, sigma2, sd)
        if sd == 0.0:
            Mcols = []
            Ms = [m[:, :0] for m in Ms]
        ratio = self.between_sd if self.between_sd is not None and Mcols else None

        def centred(Mm, codes):  # within-trial interactions (default), or with the between-trial part
            return trial_centre(Mm, codes) if ratio is None else btw.augmented(Mm, codes, ratio)
        fits = [StructuredFit(fam, lam_main, lam_int).fit(d.y, d.trial, d.cls, d.treat, d.comps, Pm, centred(Mm, d.trial))
                for Pm, Mm in zip(Ps, Ms)]
        fit = fits[0]
        theta = np.mean([f.theta_ for f in fits], axis=0)
        Mbar = np.mean([Mm.mean(axis=0) for Mm in Ms], axis=0)
        kind = self.kind if Mcols or self.kind != "effect_model" else "constant"
        exp = d.base_export(self, kind)
        exp["linear"] = {
            "link": "identity" if fam == "gaussian" else "logit",
            "prog": linear_block(Pcols), "modifier": linear_block(Mcols, Mbar) if Mcols else None,
            "theta": theta.tolist(), "n_prog": len(Pcols), "n_mod": len(Mcols),
        }
        if self.uses_expected():
            exp["linear"]["missing"] = EXPECTED
        self.theta_ = theta
        self.alpha_trial_ = dict(zip(sorted(set(d.trial_labels)), np.mean([f.alpha_trial_ for f in fits], axis=0).tolist()))
        # bootstrap covariance (penalties fixed); with MI replicate b uses imputed set b mod M.
        # Gaussian, whole trials resampled: each replicate from per-trial sufficient statistics
        # (TrialBlocks; the same theta as a refit on the replicate's rows)
        use_blocks = fam == "gaussian" and int(d.has_comp.sum()) >= 2 and self.n_boot > 0
        blocks = {}
        thetas, by_set = [], [[] for _ in sets]
        for b, (idx, codes) in enumerate(cluster_bootstrap(d.trial, d.has_comp, self.n_boot, self.random_state, strata=d.cls)):
            if len(set(d.cls[idx]) & set(d.comps)) < len(d.comps):
                continue  # a class lost all its trials: skip (its offset is not identified)
            m = b % len(sets)
            if use_blocks:
                if m not in blocks:
                    blocks[m] = TrialBlocks(d.y, d.trial, d.cls, d.treat, d.comps, Ps[m],
                                            Ms[m] if ratio is None else centred(Ms[m], d.trial), lam_main, lam_int,
                                            centred=ratio is not None)
                th = blocks[m].theta(replicate_counts(d.trial, idx, codes, d.has_comp.size))
            else:
                Pb, Mb = Ps[m][idx], centred(Ms[m][idx], codes)
                th = StructuredFit(fam, lam_main, lam_int).fit(d.y[idx], codes, d.cls[idx], d.treat[idx], d.comps,
                                                               Pb, Mb, start=replicate_start(fits[m], d.trial, idx, codes)).theta_
            thetas.append(th)
            by_set[m].append(th)
        thetas = np.array(thetas)
        mi_summary = None
        if len(sets) > 1:
            cov, mi_summary = rubin_cov(np.array([f.theta_ for f in fits]), [np.array(v) for v in by_set])
        else:
            cov = np.cov(thetas, rowvar=False) if len(thetas) > 2 else np.zeros((fit.theta_.size,) * 2)
        if self.shrinkage_bias:
            cov = np.atleast_2d(cov) + np.mean([f.shrinkage_cov(sigma2) for f in fits], axis=0)
        self.boot_theta_ = thetas
        eta = np.mean([f.eta_ for f in fits], axis=0)
        self.between_ = None
        if ratio is not None:  # fold the between part into the served slopes (training.learners.between)
            theta, cov, eta, self.between_ = btw.fold(d.trial, d.treat, [(f.theta_, f.eta_) for f in fits], Ms, Mbar,
                                                      theta, np.atleast_2d(cov), ratio, self.between_scoring)
            exp["linear"]["theta"] = theta.tolist()
            self.theta_ = theta
        g_hat = -eta if fam == "gaussian" else expit(eta)
        tau = residual_tau(d.g, g_hat, d.trial, d.cls, d.prep.active, d.comps, pooled_prior=tau_prior(fam, g_hat))
        self.few_trial_var_ = None
        if self.class_shrinkage and len(d.comps) > 1:
            from training.learners import shrinkage

            # tau is on the benefit (risk) scale, the offsets on the link scale (log-odds: divide by offset_slope); the
            # few-trial variance tau^2 / k of a class with one or two trials on the scale chosen by
            # intervals.FEW_TRIAL_SCALE; the posterior spreads' prior scale by shrinkage.PRIOR (pooled tau or outcome SD)
            slope = offset_slope(fam, g_hat)
            few = few_trial_variance(tau, d.support, d.comps, slope)
            self.few_trial_var_ = dict(zip(d.comps, few))
            scale = shrinkage.prior_scale(shrinkage.PRIOR, tau["__pooled__"], slope, fam, sigma2)
            theta, cov, exp["meta"]["class_shrinkage"] = shrinkage.shrink_offsets(
                theta, cov, d.comps, self.class_groups, few, limit=shrinkage.LIMIT, spread=shrinkage.SPREAD,
                prior_scale=scale, prior=shrinkage.PRIOR)
            exp["linear"]["theta"], self.theta_ = theta.tolist(), theta
        exp["interval"] = {"method": "delta", "theta_cov": np.atleast_2d(cov).tolist(), "tau": tau,
                           "n_boot": int(len(thetas))}
        if self.pairs_ is not None:
            exp["meta"]["pairs"] = {"product_sd": self.pairs_["product_sd"],
                                    "pairs": [[d.spec["names"][c["feature"]], d.spec["names"][c["feature2"]]]
                                              for c in self.pairs_["columns"]]}
        if self.adaptive_ is not None:
            exp["meta"]["adaptive"] = {"used": self.adaptive_weights_ is not None,
                                       "feature_weights": self.adaptive_weights_}
        exp["meta"].update({"interaction_sd": sd, "sigma2": sigma2, "lambda_main": lam_main,
                            "lambda_interaction": lam_int if sd > 0 else None})
        if self.between_ is not None:
            exp["meta"]["between"] = self.between_
        if d.mi_report is not None:
            exp["meta"]["missing"] = {**d.mi_report, "rubin": mi_summary}
        self.export_ = exp
        self.n_features_in_ = len(d.spec["names"])
        self._attach_support(X)
        return self

    def modifier_prior(self, d: LinearData, P, M, Mcols: list, lam_main: float, sigma2: float, prog):
        """(sd, column weights or None, sigma2): the interaction prior - a common prior SD ``sd`` of the
        standardised modifier columns (given, or by grouped CV of the R-loss), times a weight per
        column (None: all 1; 0: column dropped) - and the residual variance the penalties are
        expressed in. Sets ``cv_``, ``adaptive_``, ``adaptive_weights_``. Subclasses give other priors
        (``training.learners.ard``: per-feature variances by marginal likelihood)."""
        fam = d.family
        self.cv_, self.adaptive_, self.adaptive_weights_ = None, None, None
        if M.shape[1] == 0:
            return 0.0, None, sigma2
        if self.interaction_sd is not None:
            return float(self.interaction_sd), None, sigma2
        grid = self.interaction_grid or (GAUSSIAN_GRID if fam == "gaussian" else LOGIT_GRID)
        sd, self.cv_ = self._select_sd(d, P, M, grid, lam_main, sigma2, prog)
        w = None
        if self.adaptive and sd > 0:
            # feature-wise prior SDs (training.learners.adaptive)
            from training.learners.adaptive import adaptive_weights

            folds = row_folds(d.trial, d.has_comp, d.cls, self.n_folds, self.random_state)
            w, sd_a, self.adaptive_ = adaptive_weights(d, P, M, np.array([c["feature"] for c in Mcols]), sd,
                                                       lam_main, sigma2, prog, folds,
                                                       always=self.adaptive == "always")
            if w is not None:
                self.adaptive_weights_ = {d.spec["names"][c["feature"]]: float(wj) for c, wj in zip(Mcols, w)}
                sd = sd_a
        return sd, w, sigma2

    def _select_sd(self, d: LinearData, P, M, grid, lam_main, sigma2, prog):
        """(chosen SD, CV table): the grouped CV of the common prior SD; on the shared design of
        ``d`` computed once for every learner asking with the same grid, penalty and folds."""
        key = None
        if is_shared_array(d, P) and is_shared_array(d, M):
            key = ("select_sd", id(P), id(M), tuple(grid), lam_main, sigma2, self.n_folds, self.random_state,
                   digest(prog))
        best, table = shared(d, key, lambda: self._select_sd_at(d, P, M, grid, lam_main, sigma2, prog))
        return best, table.copy()

    def _select_sd_at(self, d: LinearData, P, M, grid, lam_main, sigma2, prog):
        fam = d.family
        folds = row_folds(d.trial, d.has_comp, d.cls, self.n_folds, self.random_state)
        losses = {sd: [] for sd in grid}
        for te in folds:
            comps_tr, rows_tr = training_rows(d, te)
            _, ctr = np.unique(d.trial[rows_tr], return_inverse=True)
            Mtr = M[rows_tr]
            Mw = trial_centre(Mtr, ctr)
            Mbar = Mtr.mean(axis=0)
            ks = [Mw.shape[1] if sd > 0 else 0 for sd in grid]
            thetas = theta_path(fam, lam_main, [(prior_lambda(fam, sigma2, sd), k) for sd, k in zip(grid, ks)],
                                d.y[rows_tr], ctr, d.cls[rows_tr], d.treat[rows_tr], comps_tr, P[rows_tr], Mw)
            for sd, k, theta in zip(grid, ks, thetas):
                losses[sd].append(held_out_r_loss(d, te, theta, P[te], (M[te] - Mbar)[:, :k], comps_tr, prog))
        table = pd.DataFrame([{"interaction_sd": sd, "r_loss": pooled(v)} for sd, v in losses.items()])
        best = float(table.loc[table["r_loss"].idxmin(), "interaction_sd"])
        return best, table

    def summary(self) -> pd.DataFrame:
        """Coefficients (standardised basis) with bootstrap SEs: comparator offsets, prognostic
        terms and interactions (benefit per SD of the term = -gamma for continuous outcomes)."""
        self._check_fitted()
        exp = self.export_
        lin = exp["linear"]
        names = ["intercept"] + [f"offset[{c}]" for c in exp["comparators"]]
        fn = exp["features"]["names"]
        cats = exp["features"].get("categories", {})

        def lab(c):
            if c["kind"] == "rcs":
                return f"{fn[c['feature']]}:rcs{c['term'] + 1}"
            if c["kind"] == "product":
                return f"{fn[c['feature']]} x {fn[c['feature2']]}"
            if c["kind"] == "onehot":  # level k vs the reference (the first level)
                levels = cats.get(fn[c["feature"]], [])
                k = int(c["level"])
                return (f"{fn[c['feature']]}={levels[k]} vs {levels[0]}" if k < len(levels)
                        else f"{fn[c['feature']]}={k}")
            return fn[c["feature"]]
        if lin["prog"]["type"] == "index":
            names.append("prog[prognostic_index]")
        else:
            names += [f"prog[{lab(c)}]" for c in lin["prog"]["basis"]]
        if lin["modifier"] is not None:
            mb = lin["modifier"]["basis"] if lin["modifier"]["type"] == "basis" else [{"feature": 0, "kind": "index"}]
            names += [f"active x [{lab(c) if c['kind'] != 'index' else 'prognostic_index'}]" for c in mb]
        th = np.asarray(lin["theta"])
        se = np.sqrt(np.clip(np.diag(np.asarray(exp["interval"]["theta_cov"])), 0, None))
        if se.size != th.size:
            se = np.full(th.size, np.nan)
        return pd.DataFrame({"term": names, "coef": th, "se": se, "z": th / np.where(se > 0, se, np.nan)})


class ConstantEffect(EffectModel):
    """The average-effect model: class-specific average effects, no effect modification
    (the baseline every other learner must beat)."""

    kind = "constant"

    # The effect model's settings that make it the average-effect model: fixed, as class attributes,
    # so that __init__ stores only this learner's own parameters.
    modifiers = ()
    interaction_sd = 0.0
    interaction_grid = None
    n_folds = 5
    missing = "conditional_mean"  # no modifiers: nothing for multiple imputation to preserve
    adaptive = False
    pairs = False
    n_imputations = 5

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 main_sd=None, n_knots: int = 3, splines: bool = True, n_boot: int = 100, n_draws: int = 20,
                 shrinkage_bias: bool = True, class_shrinkage: bool = False, class_groups=None, random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.main_sd = main_sd
        self.n_knots = n_knots
        self.splines = splines
        self.n_boot = n_boot
        self.n_draws = n_draws
        self.shrinkage_bias = shrinkage_bias
        self.class_shrinkage = class_shrinkage
        self.class_groups = class_groups
        self.random_state = random_state
