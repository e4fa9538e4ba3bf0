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
   This holds for a *status* (a coded answer); a measurement (a score or a quantity) is not true
   "from then on": an open period dates it by its ``start`` (``ongoing=False``), so an old pain score
   sent with an open period is stale, not current.
3. A period that has ended is historical, dated by its ``end``; staleness counts from there.
4. ``effectiveTiming`` (a schedule) does not date one value: the Observation is not dated.
5. A date given to the month or year only (``"2025-02"``) is dated at the middle of the part of that
   month (year) that is not in the future (``"2025"`` on 10 March 2025: 4 February, not 1 July, which
   would read as "in the future"), and its precision is said (``When.precision``).

The staleness limit is the code's ``max_age_days`` (codes.yaml, per entry or per code); ``None``
means no limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from serving.cds.fhir_read import fhir_date


@dataclass(frozen=True)
class When:
    """The date an Observation's value holds for, and how that was decided."""
    day: date | None
    current: bool
    basis: str  # effectiveDateTime | effectiveInstant | effectivePeriod.end | open effectivePeriod | issued | none
    precision: str = "day"  # day | month | year: how precisely the record dates it

    def describe(self) -> str:
        if self.current:
            return f"current ({self.basis})"
        if self.day is None:
            return "undated"
        shown = self.day.isoformat() if self.precision == "day" else (
            f"{self.day:%Y-%m} (month only)" if self.precision == "month" else f"{self.day:%Y} (year only)")
        return f"{shown} ({self.basis})"


def _dated(value: Any, basis: str, today: date) -> When:
    day, precision = fhir_date(value)
    if day is not None and precision in ("month", "year"):
        first = day.replace(day=1) if precision == "month" else date(day.year, 1, 1)
        last = (date(first.year + first.month // 12, first.month % 12 + 1, 1) - timedelta(days=1)
                if precision == "month" else date(day.year, 12, 31))
        if first <= today:
            last = min(last, today)
            day = first + timedelta(days=(last - first).days // 2)
    return When(day, False, basis, precision if precision in ("day", "month", "year") else "day")


def observation_when(obs: Any, today: date, ongoing: bool = True) -> When:
    """Date an Observation by the rules of the module docstring (``ongoing=False``: a measurement,
    whose open period is dated by its start)."""
    if obs.effectiveDateTime is not None:
        return _dated(obs.effectiveDateTime, "effectiveDateTime", today)
    if obs.effectiveInstant is not None:
        return _dated(obs.effectiveInstant, "effectiveInstant", today)
    period = obs.effectivePeriod
    if period is not None and (period.start is not None or period.end is not None):
        end = fhir_date(period.end)[0] if period.end is not None else None
        if period.end is None:
            start = fhir_date(period.start)[0]
            if start is not None and start > today:
                return When(start, False, "effectivePeriod.start (in the future)")
            if not ongoing:
                return _dated(period.start, "effectivePeriod.start: a measurement with an open period is dated by "
                                            "its start", today)
            return When(today, True, "effectivePeriod without an end: ongoing")
        if end is not None and end >= today and ongoing:
            return When(today, True, f"effectivePeriod ending {end.isoformat()}")
        if end is not None and end > today:
            return When(end, False, "effectivePeriod.end (in the future)")
        return _dated(period.end, "effectivePeriod.end", today)
    if obs.issued is not None:
        return _dated(obs.issued, "issued (no effective[x])", today)
    return When(None, False, "none")
