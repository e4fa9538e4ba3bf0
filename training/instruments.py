"""Outcome instruments and their conversion to a common 0–100 scale (higher = worse).

Built-in codes (the paper converted every trial's outcome to 0–100):

==============  ==========  =====  ========================================
code            raw range   worse  conversion
==============  ==========  =====  ========================================
``vas_0_10``    0–10 cm     high   x × 10
``vas_0_100``   0–100 mm    high   x
``nrs_0_10``    0–10        high   x × 10
``rmdq_0_24``   0–24        high   x / 24 × 100   (Roland-Morris)
``odi_0_100``   0–100 %     high   x              (Oswestry, percent)
``odi_0_50``    0–50 raw    high   x × 2          (Oswestry, raw sum)
``qbpds_0_100`` 0–100       high   x              (Quebec Back Pain Disability Scale)
==============  ==========  =====  ========================================

Custom instruments are declared in the study config with ``min``, ``max`` and
``direction`` (``higher_is_worse`` or ``higher_is_better``); the conversion is linear:
``100 × (x − min) / (max − min)``, reversed when higher is better.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predict.errors import LbpError

DIRECTIONS = ("higher_is_worse", "higher_is_better")


@dataclass(frozen=True)
class Instrument:
    code: str
    min: float
    max: float
    direction: str = "higher_is_worse"
    label: str = ""

    def __post_init__(self) -> None:
        if not self.max > self.min:
            raise LbpError(f"instrument {self.code!r}: max ({self.max}) must exceed min ({self.min})")
        if self.direction not in DIRECTIONS:
            raise LbpError(
                f"instrument {self.code!r}: direction {self.direction!r} is not one of {', '.join(DIRECTIONS)}"
            )

    def in_range(self, raw: np.ndarray | float) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        return (raw >= self.min) & (raw <= self.max)

    def to_0_100(self, raw: np.ndarray | float) -> np.ndarray:
        """Convert raw scores to 0–100, higher = worse. Values outside the instrument's range
        are an input error and are refused (never clipped)."""
        raw = np.asarray(raw, dtype=float)
        bad = ~np.isnan(raw) & ~self.in_range(raw)
        if bad.any():
            first = raw[bad].flat[0]
            raise LbpError(f"instrument {self.code!r}: value {first:g} outside {self.min:g}–{self.max:g}")
        scaled = 100.0 * (raw - self.min) / (self.max - self.min)
        return scaled if self.direction == "higher_is_worse" else 100.0 - scaled

    def from_0_100(self, score: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`to_0_100` (used by the simulator to write raw scores)."""
        score = np.asarray(score, dtype=float)
        if self.direction == "higher_is_better":
            score = 100.0 - score
        return self.min + score * (self.max - self.min) / 100.0


BUILTIN: dict[str, Instrument] = {
    i.code: i
    for i in (
        Instrument("vas_0_10", 0, 10, label="Visual analogue scale, 0–10 cm"),
        Instrument("vas_0_100", 0, 100, label="Visual analogue scale, 0–100 mm"),
        Instrument("nrs_0_10", 0, 10, label="Numeric rating scale, 0–10"),
        Instrument("rmdq_0_24", 0, 24, label="Roland-Morris Disability Questionnaire, 0–24"),
        Instrument("odi_0_100", 0, 100, label="Oswestry Disability Index, 0–100 %"),
        Instrument("odi_0_50", 0, 50, label="Oswestry Disability Index, raw 0–50"),
        Instrument("qbpds_0_100", 0, 100, label="Quebec Back Pain Disability Scale, 0–100"),
    )
}


def registry(custom: dict[str, dict] | None = None) -> dict[str, Instrument]:
    """Built-in instruments plus custom ones declared in a study config."""
    out = dict(BUILTIN)
    for code, spec in (custom or {}).items():
        if code in BUILTIN:
            raise LbpError(f"instrument {code!r} is built in and cannot be redeclared in the config")
        if not isinstance(spec, dict) or "min" not in spec or "max" not in spec:
            raise LbpError(f"instrument {code!r}: declare min and max (and direction)")
        unknown = set(spec) - {"min", "max", "direction", "label"}
        if unknown:
            raise LbpError(f"instrument {code!r}: unknown keys {', '.join(sorted(unknown))}")
        out[code] = Instrument(
            code, float(spec["min"]), float(spec["max"]), spec.get("direction", "higher_is_worse"), spec.get("label", "")
        )
    return out
