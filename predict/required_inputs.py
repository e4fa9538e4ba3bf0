"""Which inputs a scoring request needs: only the baselines of the outcomes being scored.

A continuous task needs its own outcome's baseline (its benefit is on that scale and the smallest
worthwhile effect may be a fraction of it); a derived recovery outcome (``global_recovery``: defined
by improvement from the baselines) needs every baseline. Other baselines are ordinary inputs of the
models: when absent they are handled like any missing covariate (imputed, and listed as missing).
"""
from __future__ import annotations

from typing import Iterable

DERIVED_RECOVERY = "global_recovery"


def required_baselines(baselines: Iterable[str], tasks: Iterable) -> set[str]:
    """The baseline inputs required to score ``tasks`` (objects with ``outcome`` and ``baseline``)."""
    baselines = list(baselines)
    need: set[str] = set()
    for t in tasks:
        if t.outcome == DERIVED_RECOVERY:
            need |= set(baselines)
        elif t.baseline is not None:
            need.add(t.baseline)
    return need
