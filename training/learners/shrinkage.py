"""Empirical-Bayes shrinkage of class-specific average effects towards their comparison set.

The linear learners give every comparator class c its own average effect a_c (an offset beside
the modification h(x), which is already shared by all classes). A class compared with the active
class in one or two small trials gets a noisy a_c, and a patient's benefit against it can then be
worse than the class's true average effect alone. The classes of one comparison set of the study
config (e.g. no treatment, placebo and usual care) are treated as exchangeable::

    a_c ~ N(mu_G, s_G^2)   for the classes c of set G,

with mu_G and s_G^2 estimated from the classes' estimates a_hat_c and their (trial-cluster
bootstrap) variances v_c by DerSimonian-Laird moments. The posterior mean

    a_c* = mu_G + w_c (a_hat_c - mu_G),   w_c = s_G^2 / (s_G^2 + v_c)

pulls a class towards the set's shared effect by how little its own trials and participants say
(v_c shrinks with both, and carries the between-trial heterogeneity), and leaves a well-measured
class (or a set whose classes clearly differ: large s_G^2) where it is. The covariance of the
coefficients is mapped through the same linear map and gets the posterior term w_c (1 - w_c) v_c
(so the interval is the normal-normal posterior interval, not the narrower sampling interval of a
shrunk estimate).

Limited translation (Efron & Morris 1972, JASA 67:130; Efron 1975, Adv. Math. 16:259), opt-in
(``limit``; off by default, train does not use it yet): with 2-4 classes the moment estimate s_G^2 is
often 0 or too small, and a class is then pulled to the set whatever its own evidence (the outside
simulator, BENCHMARKS.md session 11 i23o/i23c: no treatment's own 9.08, SE 2.4, pulled to 6.86,
truth 10.6, CI coverage 0.62). With ``limit`` = k no class moves more than k sqrt(v_c) from its own
estimate: where the pull would go further the class keeps its own estimate moved by exactly that
much towards the set, and its interval is the sampling interval of its own estimate (map row e_c,
variance v_c, no posterior term: the pooling is not trusted there, so neither is the narrower
posterior variance). Every class's root-MSE is then at most (1 + k) sqrt(v_c) (Minkowski), whatever the
other classes do.
Measured (BENCHMARKS.md i23c): k = 1 never binds on the project's or the outside simulator's data;
k = 0.5 improves the outside failure (coverage 0.62 -> 0.79) but gives up a quarter of the gain for a
sparse class whose set really is exchangeable, so it is not the default.

A class in no set with another class with data keeps its own estimate; the set used is the smallest
one containing the class.
"""
from __future__ import annotations

import numpy as np

from training.impute.mice import dersimonian_laird


def class_sets(comparators: list, groups) -> list:
    """For each comparator, the classes (with data) of the smallest group containing it (itself
    alone when no group has another class with data). ``groups``: iterables of class names."""
    out = []
    gs = [[c for c in g if c in comparators] for g in (groups or [comparators])]
    for c in comparators:
        cand = [g for g in gs if c in g and len(g) >= 2]
        out.append(min(cand, key=len) if cand else [c])
    return out


def shrink_offsets(theta: np.ndarray, cov: np.ndarray, comparators: list, groups=None, extra_var=None,
                   limit: float | None = None) -> tuple:
    """(theta, cov, report) with the class offsets theta[1:1+C] shrunk (module docstring); ``limit``:
    the limited-translation bound k in units of a class's own SE sqrt(v_c) (None, the default: no bound).
    ``extra_var`` (per comparator, default 0) is added to a class's variance v_c: the between-trial
    variance tau^2 / k that a trial-cluster bootstrap cannot show for a class with one or two trials
    (every replicate that keeps the class keeps the same trial)."""
    C = len(comparators)
    theta = np.asarray(theta, float).copy()
    cov = np.atleast_2d(np.asarray(cov, float))
    a = theta[1:1 + C].copy()
    v = np.clip(np.diag(cov)[1:1 + C] + (0.0 if extra_var is None else np.asarray(extra_var, float)), 1e-12, None)
    A = np.eye(C)
    extra = np.zeros(C)
    shift = np.zeros(C)
    report = {}
    sets = class_sets(comparators, groups)
    for key in dict.fromkeys(tuple(m) for m in sets):  # each distinct set once, in order
        idx = [comparators.index(m) for m in key]
        own = [i for i in range(C) if tuple(sets[i]) == key]  # the classes whose set this is
        if len(idx) < 2:
            for i in own:
                report[comparators[i]] = {"set": list(key), "weight_own": 1.0, "s_set": None}
            continue
        mu, _, s2 = dersimonian_laird(a[idx], v[idx])
        p = 1 / (v[idx] + s2)
        pi = p / p.sum()
        for i in own:
            w = s2 / (s2 + v[i]) if s2 > 0 else 0.0
            A[i, :] = 0.0
            A[i, idx] = (1 - w) * pi
            A[i, i] += w
            extra[i] = w * (1 - w) * v[i]
            pull = float(A[i] @ a - a[i])
            bound = np.inf if limit is None else limit * np.sqrt(v[i])
            if abs(pull) > bound:  # limited translation: own estimate moved by the bound, own interval
                A[i, :] = 0.0
                A[i, i] = 1.0
                shift[i] = np.sign(pull) * bound
                extra[i] = max(v[i] - cov[1 + i, 1 + i], 0.0)  # the few-trial between-trial part of v_c
            report[comparators[i]] = {"set": list(key), "weight_own": float(w), "s_set": float(np.sqrt(s2)),
                                      "estimate_own": float(a[i]), "estimate_shrunk": float(A[i] @ a + shift[i])}
            if limit is not None:  # (the default train's export stays as before)
                report[comparators[i]]["limited"] = bool(shift[i] != 0.0)
    T = np.eye(theta.size)
    T[1:1 + C, 1:1 + C] = A
    theta[1:1 + C] = A @ a + shift
    cov = T @ cov @ T.T
    cov[np.arange(1, 1 + C), np.arange(1, 1 + C)] += extra
    return theta, cov, report
