"""Which inputs a scoring request needs: only the baselines of the outcomes being scored.

The one owner of this rule (used by the scorer's validation, ``lbp-benefit score``, ``validate``'s
per-task exclusions, the API, CDS Hooks and Spark, all through :meth:`predict.Scorer.requirement`):

- a continuous task needs its own outcome's baseline (its benefit is on that scale and the smallest
  worthwhile effect may be a fraction of it). Measured, not assumed (BENCHMARKS.md, session 11 i23u,
  ``benchmarks/bench_missing_baseline.py``): on the blind outside simulator, the pain benefit of
  patients scored with their own baseline imputed was worse than a perfect average-effect model on
  the same patients (root PEHE ratio 1.10 and 1.11 in two seeds, biased about -3 points), and
  function's, where the baseline was missing by design of the trial, 1.37 with 75% PI coverage; so
  the rule stays. A table's rows lacking it still get the other outcomes (:mod:`predict.partial`);
- a derived recovery outcome follows its definition, which the artifact carries
  (``outcome_definitions.<outcome>.required_baselines``: ``{"combine": "any"|"all", "of": [...]}``,
  from the study config's ``global_recovery``): with ``combine: any`` recovery is defined when at least
  one criterion is evaluable, so at least one of the definition's baselines is needed; with
  ``combine: all`` every one of them. Artifacts written before the definition was stored get the rule
  they were built with: every baseline.

Other baselines are ordinary inputs of the models: when absent they are handled like any missing
covariate (imputed without sampling, listed among the missing inputs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

DERIVED_RECOVERY = "global_recovery"
DEFINITION_KEY = "required_baselines"  # outcome_definitions.<outcome>.<this>
COMBINE = ("any", "all")


@dataclass(frozen=True)
class Requirement:
    """The baselines a request needs. ``all_of``: each must be given; ``any_of``: groups
    ``(outcome, names)`` of which at least one name must be given (one group per outcome)."""

    all_of: frozenset = field(default_factory=frozenset)
    any_of: tuple = ()

    @property
    def names(self) -> set[str]:
        """Every baseline the requirement mentions."""
        out = set(self.all_of)
        for _, g in self.any_of:
            out |= set(g)
        return out

    def met(self, given: pd.DataFrame) -> np.ndarray:
        """Per row of ``given`` (columns = inputs, NaN / absent column = not given): is the requirement met?"""
        n = len(given)

        def has(b: str) -> np.ndarray:
            return given[b].notna().to_numpy() if b in given.columns else np.zeros(n, bool)

        ok = np.ones(n, bool)
        for b in self.all_of:
            ok &= has(b)
        for _, g in self.any_of:
            one = np.zeros(n, bool)
            for b in g:
                one |= has(b)
            ok &= one
        return ok

    def unmet_groups(self, given: Mapping) -> list[frozenset]:
        """The at-least-one groups of which one patient (a mapping of inputs) gives no name."""
        return [g for _, g in self.any_of if not any(is_given(given, b) for b in g)]

    def missing(self, given: Mapping) -> set[str]:
        """The baselines one patient lacks: each required one not given, and every name of a group
        none of which is given."""
        out = {b for b in self.all_of if not is_given(given, b)}
        for g in self.unmet_groups(given):
            out |= set(g)
        return out

    def lacking(self, given: Mapping) -> str | None:
        """What one patient (a mapping of inputs, NaN/None = not given) lacks, in words (the missing
        required names; a group's as ``a or b``), or None."""
        parts = [b for b in sorted(self.all_of) if not is_given(given, b)]
        parts += [" or ".join(sorted(g)) for g in self.unmet_groups(given)]
        return ", ".join(parts) if parts else None


def is_given(inputs: Mapping, name: str) -> bool:
    """Whether one patient's ``inputs`` give ``name`` (absent, None, NaN and pd.NA are not given)."""
    v = inputs.get(name)
    return not (v is None or v is pd.NA or (isinstance(v, float) and v != v))


def definition_rule(outcome_sources: Iterable[str], combine: str) -> dict:
    """The ``required_baselines`` entry of a derived recovery outcome's definition (written by
    ``training.export_model``): its source outcomes' baselines and how they combine."""
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, not {combine!r}")
    return {"combine": combine, "of": [f"baseline_{o}" for o in outcome_sources]}


def requirement(baselines: Iterable[str], tasks: Iterable, definitions: Mapping[str, dict] | None = None) -> Requirement:
    """The baselines required to score ``tasks`` (objects with ``outcome`` and ``baseline``);
    ``definitions``: the artifact's outcome definitions (``Scorer.outcome_definitions``)."""
    baselines = list(baselines)
    definitions = definitions or {}
    all_of: set[str] = set()
    groups: dict[str, frozenset] = {}
    for t in tasks:
        rule = (definitions.get(t.outcome) or {}).get(DEFINITION_KEY)
        if rule is not None:
            names = [b for b in rule.get("of") or [] if b in baselines]
            if rule.get("combine") == "all":
                all_of |= set(names)
            elif names:
                groups[t.outcome] = frozenset(names)
        elif t.outcome == DERIVED_RECOVERY:  # an artifact without the stored definition: every baseline
            all_of |= set(baselines)
        elif t.baseline is not None:
            all_of.add(t.baseline)
    # a group with a member that is required anyway is met whenever the rest is
    any_of = tuple((o, g) for o, g in sorted(groups.items()) if not (g & all_of))
    return Requirement(frozenset(all_of), any_of)

