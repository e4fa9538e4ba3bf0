"""Cross-validation folds of the benefit learners: whole comparator trials held out (the unit a new
setting differs by), or - a single randomised trial - participants stratified by trial and arm."""
import numpy as np


def trial_folds(trial: np.ndarray, has_comp: np.ndarray, n_folds: int, seed: int) -> list:
    """Folds of comparator trials (held out); trials without a comparator always train."""
    rng = np.random.default_rng(seed)
    comp_trials = np.flatnonzero(has_comp)
    rng.shuffle(comp_trials)
    k = max(2, min(n_folds, comp_trials.size))
    return [comp_trials[i::k] for i in range(k) if comp_trials[i::k].size]


def row_folds(trial: np.ndarray, has_comp: np.ndarray, cls: np.ndarray, n_folds: int, seed: int) -> list:
    """Held-out row masks for tuning and cross-fitting: whole comparator trials (``trial_folds``)
    when there are at least two, else - a single randomised trial - participants, in folds
    stratified by trial and arm (the only honest split one trial allows)."""
    if int(np.sum(has_comp)) >= 2:
        return [np.isin(trial, hold) for hold in trial_folds(trial, has_comp, n_folds, seed)]
    rng = np.random.default_rng(seed)
    k = max(2, n_folds)
    fold = np.empty(trial.size, int)
    for key in sorted(set(zip(trial.tolist(), cls.tolist()))):
        rows = np.flatnonzero((trial == key[0]) & (cls == key[1]))
        rng.shuffle(rows)
        fold[rows] = (np.arange(rows.size) + rng.integers(k)) % k
    return [fold == i for i in range(k) if (fold == i).any()]
