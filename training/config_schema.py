"""The study config schema (``study.yaml``): pydantic models with unknown keys forbidden.

This module only *describes and checks* the YAML; :mod:`training.config` turns a checked config
into the :class:`training.config.StudyConfig` the rest of the package uses. Every mistake is
reported as one line naming the file, the key path and, for a misspelt key, the nearest valid
key (``difflib``). ``lbp-benefit config schema`` prints :func:`json_schema` for editors.
"""
from __future__ import annotations

import difflib
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Direction = Literal["higher_is_worse", "higher_is_better"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Treatments(_Strict):
    """Treatment classes: the active (intervention) class and its comparators."""

    active: str = Field(description="The intervention class whose benefit is predicted.")
    classes: list[str] = Field(min_length=2, description="Every treatment class (the active one and the comparators).")
    subtypes: list[str] = Field(default_factory=list, description="Optional finer labels within some classes.")
    subtype_classes: list[str] = Field(default_factory=list, description="Classes that may carry a subtype.")
    intervention_label: Optional[str] = Field(None, description="Words for the active class in reports (default: its name).")
    comparator_label: Optional[str] = Field(None, description="Words for the comparators together (default: 'comparator').")

    @model_validator(mode="after")
    def _members(self) -> "Treatments":
        if self.active not in self.classes:
            raise ValueError(f"active treatment {self.active!r} is not among the classes {self.classes}")
        bad = [c for c in self.subtype_classes if c not in self.classes]
        if bad:
            raise ValueError(f"subtype_classes {bad} are not treatment classes")
        return self


class Covariate(_Strict):
    """One candidate covariate (a column of participants.csv)."""

    type: Literal["continuous", "binary", "categorical"]
    label: Optional[str] = None
    unit: Optional[str] = None
    range: Optional[tuple[float, float]] = Field(
        None, description="Hard range: a value outside it is impossible, an error (continuous only).")
    plausible: Optional[tuple[float, float]] = Field(
        None, description="Plausible range: a value outside it is a warning and is set to missing (participant kept).")
    categories: Optional[list[str]] = Field(None, description="Levels of a categorical covariate (text).")
    reference: Optional[str] = Field(
        None, description="Reference level (categorical: one of the categories, default the first; else free text).")
    description: str = ""
    missing: str = "allowed"

    @field_validator("categories", mode="before")
    @classmethod
    def _cats_as_text(cls, v: Any) -> Any:
        return [str(c) for c in v] if isinstance(v, list) else v

    @field_validator("reference", mode="before")
    @classmethod
    def _ref_as_text(cls, v: Any) -> Any:
        return None if v is None else str(v)

    @model_validator(mode="after")
    def _consistent(self) -> "Covariate":
        for key in ("range", "plausible"):
            r = getattr(self, key)
            if r is not None and not r[0] < r[1]:
                raise ValueError(f"{key} must be [low, high] with low < high")
        if self.type == "categorical":
            if not self.categories:
                raise ValueError("a categorical covariate needs 'categories'")
            if len(set(self.categories)) < len(self.categories):
                raise ValueError("categories are listed twice")
            if self.reference is not None and self.reference not in self.categories:
                raise ValueError(f"reference {self.reference!r} is not one of the categories {self.categories}")
            if self.range is not None or self.plausible is not None:
                raise ValueError("range/plausible are for numeric covariates, not categorical ones")
        elif self.categories:
            raise ValueError(f"categories are only for categorical covariates (this one is {self.type})")
        if self.type == "binary" and (self.range is not None or self.plausible is not None):
            raise ValueError("a binary covariate is 0/1; range/plausible do not apply")
        if self.range is not None and self.plausible is not None:
            (lo, hi), (plo, phi) = self.range, self.plausible
            if plo < lo or phi > hi:
                raise ValueError(f"plausible {list(self.plausible)} must lie within range {list(self.range)}")
        return self


class SmallestWorthwhile(_Strict):
    """Smallest worthwhile effect of an outcome: absolute (points on 0-100, or a risk difference for
    binary outcomes) or relative (fraction of the patient's baseline, or of the comparator risk)."""

    absolute: Optional[float] = Field(None, ge=0)
    relative: Optional[float] = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> "SmallestWorthwhile":
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("give exactly one of 'absolute' or 'relative'")
        return self


class Outcome(_Strict):
    """An outcome measured in outcomes.csv."""

    kind: Literal["continuous", "binary"] = "continuous"
    label: Optional[str] = None
    instruments: Optional[list[str]] = Field(
        None, description="Instrument codes allowed for this outcome (continuous: required; binary: default [event]).")
    baseline: Optional[bool] = Field(
        None, description="Is a week-0 value measured and adjusted for? (continuous: default true; binary: false).")
    direction: Optional[Direction] = Field(
        None, description="Binary outcomes: is the event good (higher_is_better) or bad (higher_is_worse)? "
                          "A continuous outcome's direction is its instruments' (converted to 0-100, higher = worse).")
    follow_up: Optional[list[str]] = Field(None, description="Follow-up windows analysed for this outcome (default: all).")
    smallest_worthwhile: Optional[SmallestWorthwhile] = None
    recovery_min_points: Optional[float] = Field(
        None, description="Global recovery: the minimum improvement (0-100 points) of this outcome that counts.")

    @model_validator(mode="after")
    def _kind(self) -> "Outcome":
        if self.kind == "continuous":
            if not self.instruments:
                raise ValueError("a continuous outcome needs 'instruments' (codes from the registry or 'instruments:')")
            if self.direction is not None:
                raise ValueError("'direction' is for binary outcomes; a continuous outcome's direction is set by its instruments")
        else:
            if self.baseline:
                raise ValueError("a binary outcome has no baseline to adjust for (baseline: true is for continuous outcomes)")
            if self.direction is None:
                raise ValueError("a binary outcome needs 'direction': higher_is_better (the event is good) or higher_is_worse")
            if self.recovery_min_points is not None:
                raise ValueError("recovery_min_points is for continuous outcomes with a baseline")
        if self.recovery_min_points is not None and self.baseline is False:
            raise ValueError("recovery_min_points needs a baseline (baseline: false)")
        return self


class Instrument(_Strict):
    min: float
    max: float
    direction: Direction = "higher_is_worse"
    label: str = ""

    @model_validator(mode="after")
    def _order(self) -> "Instrument":
        if not self.max > self.min:
            raise ValueError(f"max ({self.max:g}) must exceed min ({self.min:g})")
        return self


class Window(_Strict):
    target_week: float
    after: float = 0.0
    up_to: float

    @model_validator(mode="after")
    def _order(self) -> "Window":
        if not (self.after < self.target_week <= self.up_to):
            raise ValueError("needs after < target_week <= up_to")
        return self


class GlobalRecovery(_Strict):
    """A derived binary outcome: recovered when the improvement from baseline is at least
    ``relative`` x baseline and at least the outcome's minimum points, for any/all source outcomes."""

    name: str = "global_recovery"
    label: Optional[str] = None
    relative: Optional[float] = Field(None, ge=0, le=1)
    combine: Literal["any", "all"] = "any"
    adjust_for: Optional[str] = Field(None, description="The outcome whose baseline recovery models adjust for.")
    min_points: Optional[dict[str, float]] = Field(
        None, description="Minimum improvement per source outcome (alternative to each outcome's recovery_min_points).")
    smallest_worthwhile: Optional[SmallestWorthwhile] = None


class TrainOptions(_Strict):
    """How ``train`` handles missing covariates and sparse comparator classes (docs/learners.md)."""

    missing: Literal["conditional_mean", "mi"] = Field(
        "conditional_mean", description="Missing covariates in the linear learners: 'conditional_mean' (within-trial "
        "conditional means) or 'mi' (multilevel multiple imputation with outcome and treatment, Rubin's rules).")
    imputations: int = Field(5, ge=2, le=100, description="Number of imputations with missing: mi.")
    class_shrinkage: bool = Field(
        True, description="Pull each comparator class's average effect towards its comparison set by empirical Bayes "
        "(classes with few trials or participants move most).")


class StudySchema(_Strict):
    """A study config (``study.yaml``)."""

    name: str = "study"
    description: str = ""
    treatments: Treatments
    comparisons: dict[str, list[str]] = Field(default_factory=dict)
    covariates: dict[str, Optional[Covariate]] = Field(default_factory=dict)
    adjust_for: list[str] = Field(default_factory=list, description="Covariates the 'adjusted' models adjust for.")
    outcomes: dict[str, Outcome] = Field(min_length=1)
    instruments: dict[str, Instrument] = Field(default_factory=dict)
    follow_up: dict[str, Window] = Field(min_length=1)
    global_recovery: Optional[GlobalRecovery] = None
    subgroups: dict[str, list[float]] = Field(default_factory=dict)
    min_trial_size: int = Field(10, ge=1, description="Trials with fewer participants are flagged by check and never held out alone.")
    train: TrainOptions = Field(default_factory=TrainOptions, description="Options of the benefit learners (train).")

    @field_validator("covariates", mode="before")
    @classmethod
    def _empty_cov(cls, v: Any) -> Any:
        return {k: (x if x is not None else {}) for k, x in v.items()} if isinstance(v, dict) else v


# ----------------------------------------------------------------------------------------------
# Error messages: one line per problem, with the key path and the nearest valid key.

def _model_at(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``path`` (for suggesting valid keys)."""
    model: Any = StudySchema
    i = 0
    while i < len(path) - 1:
        key = path[i]
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            return None
        ann = field.annotation
        inner = _unwrap(ann)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
            i += 1
            continue
        # dict[str, Model]: skip the mapping key.
        args = getattr(inner, "__args__", ())
        if args and isinstance(_unwrap(args[-1]), type) and issubclass(_unwrap(args[-1]), BaseModel):
            model = _unwrap(args[-1])
            i += 2
            continue
        return None
    return model


def _unwrap(ann: Any) -> Any:
    args = getattr(ann, "__args__", None)
    if getattr(ann, "__origin__", None) is Union and args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else ann
    return ann


def nearest(word: str, options) -> list[str]:
    """The closest valid key to ``word`` (difflib; transposed letters count as close), or []."""
    options = [str(o) for o in options]
    same_letters = [o for o in options if sorted(o) == sorted(word)]
    return same_letters[:1] or difflib.get_close_matches(word, options, n=1, cutoff=0.6)


def _path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after", "function-before")) or "(top level)"


# What to do with an outcome of a kind the package does not model (found with survival::diabetic and
# MASS::epil: 'kind: survival' and 'kind: count' were refused with only the two valid words).
_TIME_TO_EVENT = ("as a binary outcome at a horizon: an event by the horizon = 1, followed past it without one = 0, no "
                  "row when censored earlier (docs/data-format.md, 'Time-to-event data'); no hazard ratio is estimated")
_COUNT = ("as continuous on an instrument with a declared range 0-maximum (a difference in mean counts; no rate ratio "
          "is estimated), or as binary (any event, or a count above a cut point)")
_ORDINAL = ("as continuous on an instrument spanning the scores (a difference in mean scores), or as binary at a cut "
            "point; no proportional-odds model is fitted")
KIND_ADVICE = {"survival": _TIME_TO_EVENT, "time_to_event": _TIME_TO_EVENT, "time-to-event": _TIME_TO_EVENT,
               "tte": _TIME_TO_EVENT, "event_time": _TIME_TO_EVENT, "count": _COUNT, "counts": _COUNT,
               "poisson": _COUNT, "rate": _COUNT, "ordinal": _ORDINAL, "ordered": _ORDINAL, "likert": _ORDINAL}


def outcome_kind_advice(kind) -> str:
    """How to bring an outcome of an unsupported ``kind`` in ('' when the word is not recognised)."""
    advice = KIND_ADVICE.get(str(kind).strip().lower().replace(" ", "_"))
    return f". The package models no {kind} outcome: bring it in {advice}" if advice else ""


def format_errors(exc: ValidationError, source: str) -> list[str]:
    """One line per validation error: ``study config FILE: key.path: what is wrong``."""
    lines = []
    for e in exc.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tuple["))))
        kind, msg = e["type"], e["msg"]
        if kind == "extra_forbidden":
            model = _model_at(loc)
            valid = list(model.model_fields) if model is not None else []
            near = nearest(str(loc[-1]), valid)
            hint = f" (did you mean '{near[0]}'?)" if near else (f" (valid keys: {', '.join(valid)})" if valid else "")
            text = f"unknown key{hint}"
            if e.get("input") is None:  # a bare word: often the tail of a value cut at a comma in {...}
                text += (f"; if '{loc[-1]}' is part of a value containing a comma in a flow-style mapping "
                         "({key: a, b}), quote that value: {key: \"a, b\"}")
        elif kind == "missing":
            text = "is required"
        elif kind == "value_error":
            text = msg.removeprefix("Value error, ")
        elif kind == "literal_error":
            text = f"got {e.get('input')!r}; {msg[0].lower() + msg[1:]}"
            if len(loc) == 3 and loc[0] == "outcomes" and loc[2] == "kind":
                text += outcome_kind_advice(e.get("input"))
        else:
            got = e.get("input")
            shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else type(got).__name__
            text = f"{msg[0].lower() + msg[1:]} (got {shown})"
        lines.append(f"study config {source}: {_path(loc)}: {text}")
    return lines


def json_schema() -> dict:
    """The JSON Schema of ``study.yaml`` (for editors and ``lbp-benefit config schema``)."""
    s = StudySchema.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "lbp-benefit study config (study.yaml)"
    return s
