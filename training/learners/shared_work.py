"""Work the effect-model family would repeat on one training set, done once.

``train`` fits the effect model, ``effect_adaptive`` and ``effect_pairs`` (and, inside the X-/DR-
learners' missing-input allowance, a reference effect model) on the *same* training frame of an
IECV fold or a final-fit job; they share one :class:`training.learners.effect_model.LinearData`
(imputation, expected-basis spread). Before their own, different modifier priors each of them built
the same design (prognostic and modifier basis at the conditional means, with the expected basis
of missing inputs), fitted the same constant-effect model (sigma^2, prognostic score) and ran the
same grouped cross-validation of the common interaction prior SD (BENCHMARKS.md, issue 23 session
11). Each is a pure function of the LinearData and of the settings in its key, so it is computed
once per LinearData and handed to every learner asking with the same key: the same numbers.

Nothing is shared behind a caller's back: shared arrays are read-only (a learner writing into one
fails loudly instead of changing another learner's fit), mutable results are copied by the caller
on the way out, keys hold every input the result depends on, and a computation whose inputs are not
themselves shared arrays is not cached at all (key None).
"""
from __future__ import annotations

import hashlib

import numpy as np


def _store(d) -> dict:
    s = getattr(d, "_shared_work", None)
    if s is None:
        s = {}
        d._shared_work = s
    return s


def shared(d, key, compute):
    """``compute()`` once per ``d`` and ``key`` (None: not cached, computed every time)."""
    if key is None:
        return compute()
    s = _store(d)
    if key not in s:
        s[key] = compute()
    return s[key]


def frozen(*arrays) -> tuple:
    """``arrays`` as a tuple, the numpy arrays among them made read-only."""
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return arrays


def is_shared_array(d, a) -> bool:
    """Whether ``a`` is one of the arrays a :func:`frozen` result stored for ``d`` holds (identity;
    stored arrays stay alive with ``d``, so their ids are not reused)."""
    for v in _store(d).values():
        if isinstance(v, tuple) and any(x is a for x in v):
            return True
    return False


def digest(a: np.ndarray) -> str:
    """A key for an array's exact values (shape, dtype and bytes)."""
    a = np.ascontiguousarray(a)
    return hashlib.sha1(repr((a.shape, a.dtype.str)).encode() + a.tobytes()).hexdigest()
