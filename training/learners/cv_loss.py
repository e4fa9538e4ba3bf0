"""The folds of every tuning loop of the linear learners: a fold's training rows, the R-loss of a
linear benefit model on its held-out trials, and its pooling over folds (weighted by held-out rows).

The R-loss (``training.learners.stacking.r_loss``) scores the comparator-mixed benefit of the
held-out rows; comparators the fold's training trials did not have get benefit 0 there (their rows
carry no weight in the mix)."""
from __future__ import annotations

import numpy as np

from training.learners.linear import linear_benefit
from training.learners.stacking import mix_benefit, r_loss


def training_rows(d, te: np.ndarray) -> tuple[list, np.ndarray]:
    """(the comparators of ``d`` present in the fold's training trials ``~te``, the mask of the
    training rows in those comparators' arms or the active arm)."""
    tr = ~te
    comps = [c for c in d.comps if c in set(d.cls[tr])]
    return comps, tr & np.isin(d.cls, comps + [d.prep.active])


def held_out_r_loss(d, te: np.ndarray, theta: np.ndarray, P: np.ndarray, Mc: np.ndarray, comps: list,
                    prog: np.ndarray) -> tuple[int, float]:
    """(held-out rows, R-loss) of ``theta`` (fitted on the fold's training trials with comparators
    ``comps``) at the held-out rows ``te`` of ``d`` (a ``LinearData``), with ``P`` and the centred
    modifier basis ``Mc`` of those rows and the prognostic score ``prog`` of every row."""
    b = linear_benefit(theta, P, Mc, comps, d.family)
    for c in d.comps:
        b.setdefault(c, np.zeros(te.sum()))
    bm = mix_benefit(b, d.W[te], d.comps)
    return te.sum(), r_loss(bm, d.g[te], d.treat[te], d.trial[te], d.e[te], prog[te])


def pooled(fold_losses: list) -> float:
    """Row-weighted mean of (rows, R-loss) pairs over folds."""
    return sum(n * l for n, l in fold_losses) / sum(n for n, _ in fold_losses)
