"""Which baselines a scoring request needs, for the API, the calculator and CDS Hooks.

The rule is not made here: :mod:`predict.required_inputs` owns it and the scorer exposes it as
``Scorer.requirement(outcomes)`` (a continuous outcome needs its own baseline; a derived recovery
outcome with ``combine: any`` needs at least one of its baselines; other baselines are ordinary
inputs, imputed and listed as missing). This module only asks the scorer, one outcome at a time,
so that every problem can name the outcome that needs the field, and turns the answer into:

* 422 items in the format of the request-model field errors (``loc``, ``field``, ``type``,
  ``msg``, ``expected``, ``patient_index`` in a batch) plus ``outcomes`` (what needs the field);
* the outcomes one patient's inputs allow (CDS Hooks scores those and says why not the others);
* the words the OpenAPI schema uses to say which outcomes need each baseline.

A scorer without ``requirement`` (an older scorer or a test double) gets the contract the service
had before the rule: every outcome needs every baseline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from predict.required_inputs import Requirement, is_given
from serving.fields import field_path

MISSING_TYPE = "missing"  # the pydantic error type of a missing required field: clients already handle it


@dataclass(frozen=True)
class OutcomeNeeds:
    """The scorer's requirement for each of its outcomes (``Scorer.requirement([outcome])``)."""

    baselines: tuple[str, ...]
    by_outcome: dict[str, Requirement]

    @classmethod
    def of(cls, scorer: Any) -> "OutcomeNeeds":
        ask = getattr(scorer, "requirement", None)
        every = Requirement(frozenset(scorer.baselines))
        by = {o: (ask([o]) if callable(ask) else every) for o in scorer.outcomes}
        return cls(tuple(scorer.baselines), by)

    # ------------------------------------------------------------------ one patient
    def lacking(self, inputs: Mapping, outcomes: Sequence[str] | None = None) -> dict[str, list[str]]:
        """Per outcome (of ``outcomes``, default all) that ``inputs`` cannot score: the baselines
        it lacks (for an at-least-one group, all of the group's names), in the baselines' order."""
        out: dict[str, list[str]] = {}
        for o in outcomes or self.by_outcome:
            req = self.by_outcome.get(o)
            names = req.missing(inputs) if req is not None else set()
            if names:
                out[o] = [b for b in self.baselines if b in names]
        return out

    def scorable(self, inputs: Mapping) -> list[str]:
        """The outcomes ``inputs`` allow, in the scorer's order."""
        lacking = self.lacking(inputs)
        return [o for o in self.by_outcome if o not in lacking]

    def problems(self, inputs: Mapping, outcomes: Sequence[str] | None, loc: list) -> list[dict]:
        """422 items (request-model error format) for one patient at ``loc`` (e.g. ``["body",
        "patient"]``): one per baseline missing, naming every requested outcome that needs it."""
        wanted = list(outcomes or self.by_outcome)
        items: dict[str, dict] = {}
        for o in wanted:
            req = self.by_outcome.get(o)
            if req is None:
                continue
            for b in self.baselines:
                if b in req.all_of and not is_given(inputs, b):
                    items.setdefault(b, {"outcomes": [], "why": []})
                    items[b]["outcomes"].append(o)
                    items[b]["why"].append(o)
            for group in req.unmet_groups(inputs):
                names = [b for b in self.baselines if b in group]
                others = lambda b: " or ".join(n for n in names if n != b)  # noqa: E731
                for b in names:
                    items.setdefault(b, {"outcomes": [], "why": []})
                    items[b]["outcomes"].append(o)
                    items[b]["why"].append(f"{o} (this or {others(b)})" if len(names) > 1 else o)
        if not items:
            return []
        out = []
        lacking = self.lacking(inputs, wanted)
        allowed = [o for o in wanted if o not in lacking]
        hint = f" (the inputs given allow {', '.join(allowed)})" if allowed else ""
        for b in self.baselines:
            if b not in items:
                continue
            it = items[b]
            item = {"loc": [*loc, b], "field": field_path([*loc, b]), "type": MISSING_TYPE,
                    "msg": f"required field is missing: needed to predict {', '.join(it['why'])}{hint}",
                    "expected": "a number from 0 to 100", "outcomes": it["outcomes"]}
            if len(loc) >= 3 and isinstance(loc[2], int):
                item["patient_index"] = loc[2]
            out.append(item)
        return out

    # ------------------------------------------------------------------ documentation
    def needed_by(self, baseline: str) -> str:
        """Which outcomes need ``baseline``, in words (OpenAPI descriptions and 422 hints)."""
        own, either = [], []
        for o, req in self.by_outcome.items():
            if baseline in req.all_of:
                own.append(o)
            for _, group in req.any_of:
                if baseline in group:
                    rest = [b for b in self.baselines if b in group and b != baseline]
                    either.append(f"{o} needs this or {' or '.join(rest)}" if rest else f"{o} needs it")
        parts = []
        if own:
            parts.append("required to predict " + ", ".join(own))
        if either:
            parts.append(", ".join(either))
        if not parts:
            return "optional: no outcome requires it (when absent it is imputed and listed as missing)"
        return "; ".join(parts) + "; otherwise optional (when absent it is imputed and listed as missing)"


def raw_problems(needs: OutcomeNeeds, body: Any) -> list[dict]:
    """The requirement problems of a request body that failed its request model (so that a 422 names
    every problem at once): patients read as sent (a value present but invalid counts as given; its
    field error says what is wrong), the outcomes requested that the model has (all if none)."""
    if not isinstance(body, dict):
        return []
    asked = body.get("outcomes")
    outcomes = [o for o in asked if isinstance(o, str) and o in needs.by_outcome] if isinstance(asked, list) else []
    if "patient" in body:
        return needs.problems(body["patient"], outcomes or None, ["body", "patient"]) \
            if isinstance(body["patient"], dict) else []
    patients = body.get("patients")
    if not isinstance(patients, list):
        return []
    out: list[dict] = []
    for i, p in enumerate(patients):
        if isinstance(p, dict):
            out += needs.problems(p, outcomes or None, ["body", "patients", i])
    return out
