"""When an Observation holds: current vs historical, and which FHIR time element dates it.

Rules (FHIR R4 Observation, docs/cds-hooks.md "Time"):

1. ``effective[x]`` is the clinically relevant time ("the time or time-period the observed value is
   asserted as being true"); ``issued`` is only when this version was made available. So
   ``effectiveDateTime`` / ``effectiveInstant`` / ``effectivePeriod`` are used first, and ``issued``
   only when no ``effective[x]`` is given (the card says the value was dated by ``issued``).
2. ``effectivePeriod`` with a ``start`` and no ``end`` is **current**: the period is ongoing (FHIR
   Period: "if the end of the period is missing, it means that the period is ongoing"). This is the
   usual shape of status observations such as the ODH employment status. A current value is dated
   today for recency and is never stale. A period whose ``end`` is today or later is current too.
3. A period that has ended is historical, dated by its ``end``; staleness counts from there.
4. ``effectiveTiming`` (a schedule) does not date one value: the Observation is not dated.

The staleness limit is the code's ``max_age_days`` (codes.yaml, per entry or per code); ``None``
means no limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from serving.cds.fhir_read import fhir_date


@dataclass(frozen=True)
class When:
    """The date an Observation's value holds for, and how that was decided."""
    day: date | None
    current: bool
    basis: str  # effectiveDateTime | effectiveInstant | effectivePeriod.end | open effectivePeriod | issued | none

    def describe(self) -> str:
        if self.current:
            return f"current ({self.basis})"
        return f"{self.day.isoformat()} ({self.basis})" if self.day else "undated"


def observation_when(obs: Any, today: date) -> When:
    """Date an Observation by the rules of the module docstring."""
    if obs.effectiveDateTime is not None:
        return When(fhir_date(obs.effectiveDateTime)[0], False, "effectiveDateTime")
    if obs.effectiveInstant is not None:
        return When(fhir_date(obs.effectiveInstant)[0], False, "effectiveInstant")
    period = obs.effectivePeriod
    if period is not None and (period.start is not None or period.end is not None):
        end = fhir_date(period.end)[0] if period.end is not None else None
        if period.end is None:
            start = fhir_date(period.start)[0]
            if start is not None and start > today:
                return When(start, False, "effectivePeriod.start (in the future)")
            return When(today, True, "effectivePeriod without an end: ongoing")
        if end is not None and end >= today:
            return When(today, True, f"effectivePeriod ending {end.isoformat()}")
        return When(end, False, "effectivePeriod.end")
    if obs.issued is not None:
        return When(fhir_date(obs.issued)[0], False, "issued (no effective[x])")
    return When(None, False, "none")
