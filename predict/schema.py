"""Feature schema: what a model (and a study) knows about each covariate.

The same specification describes a covariate in a study config (training) and in a model
artifact (scoring), so that every request is validated against exactly what the model saw.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from predict.errors import LbpError

COVARIATE_TYPES = ("continuous", "binary", "categorical")


@dataclass(frozen=True)
class CovariateSpec:
    """One covariate: ``continuous`` (float with unit and plausible range), ``binary``
    (0/1) or ``categorical`` (one of ``categories``). Missing is always allowed: how it is
    handled is the model's business and is recorded in ``missing``."""

    name: str
    type: str
    label: str = ""
    unit: str | None = None
    range: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    reference: str | None = None
    description: str = ""
    missing: str = "allowed"

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise LbpError(f"covariate name {self.name!r} must be letters, digits and underscores")
        if self.type not in COVARIATE_TYPES:
            raise LbpError(
                f"covariate {self.name!r}: type {self.type!r} is not one of {', '.join(COVARIATE_TYPES)}"
            )
        if self.range is not None:
            lo, hi = self.range
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or not lo < hi:
                raise LbpError(f"covariate {self.name!r}: range must be two numbers [low, high] with low < high")
        if self.type == "categorical" and not self.categories:
            raise LbpError(f"covariate {self.name!r}: a categorical covariate needs its categories")
        if self.type != "categorical" and self.categories:
            raise LbpError(f"covariate {self.name!r}: categories are only for categorical covariates")

    def check_value(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or None. ``None``/NaN (missing) is acceptable."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.type == "categorical":
            if str(value) not in self.categories:
                return f"{value!r} is not one of {', '.join(self.categories)}"
            return None
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.type == "binary":
            if value not in (0, 1):
                return f"{value!r} is not 0 or 1"
            return None
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            unit = f" {self.unit}" if self.unit else ""
            return f"{value:g} is outside the plausible range {self.range[0]:g}–{self.range[1]:g}{unit}"
        return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"] = list(self.range) if self.range is not None else None
        d["categories"] = list(self.categories) if self.categories is not None else None
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "CovariateSpec":
        known = {"type", "label", "unit", "range", "categories", "reference", "description", "missing", "name"}
        unknown = set(d) - known
        if unknown:
            raise LbpError(f"covariate {name!r}: unknown keys {', '.join(sorted(unknown))}")
        if "type" not in d:
            raise LbpError(f"covariate {name!r}: 'type' is required")
        rng = d.get("range")
        if rng is not None:
            if not isinstance(rng, (list, tuple)) or len(rng) != 2:
                raise LbpError(f"covariate {name!r}: range must be [low, high]")
            rng = (float(rng[0]), float(rng[1]))
        cats = d.get("categories")
        return cls(
            name=name,
            type=d["type"],
            label=d.get("label") or name,
            unit=d.get("unit"),
            range=rng,
            categories=tuple(str(c) for c in cats) if cats else None,
            reference=None if d.get("reference") is None else str(d.get("reference")),
            description=d.get("description", ""),
            missing=d.get("missing", "allowed"),
        )


@dataclass(frozen=True)
class FeatureSchema:
    """An ordered set of covariates."""

    covariates: tuple[CovariateSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [c.name for c in self.covariates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LbpError(f"covariates declared twice: {', '.join(dupes)}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.covariates]

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> CovariateSpec:
        for c in self.covariates:
            if c.name == name:
                return c
        raise KeyError(name)

    def __iter__(self) -> Iterable[CovariateSpec]:
        return iter(self.covariates)

    def __len__(self) -> int:
        return len(self.covariates)

    def to_list(self) -> list[dict]:
        return [c.to_dict() for c in self.covariates]

    @classmethod
    def from_list(cls, items: list[dict]) -> "FeatureSchema":
        return cls(tuple(CovariateSpec.from_dict(d["name"], d) for d in items))
