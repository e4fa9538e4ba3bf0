"""Errors users can act on.

Every problem names where it is: file, trial, participant, row and column, so that a
user can find the culprit in their own data without reading a traceback.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence


class LbpError(Exception):
    """An error caused by the user's input or configuration (shown as one clear line)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in the input.

    ``scope`` says what the problem invalidates: ``file`` (the dataset cannot be read),
    ``trial`` (a whole trial), or ``participant`` (one participant). ``severity`` is
    ``error`` (stops the run unless the user asks to drop what is invalid) or ``warning``.
    """

    code: str
    message: str
    file: str | None = None
    trial: str | None = None
    participant: str | None = None
    row: int | None = None
    column: str | None = None
    scope: str = "file"
    severity: str = "error"

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f" line {self.row}" if self.row is not None else ""))
        if self.trial is not None:
            parts.append(f"trial {self.trial!r}")
        if self.participant is not None:
            parts.append(f"participant {self.participant!r}")
        if self.column:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"[{self.code}] {where}: {self.message}" if where else f"[{self.code}] {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)

    def brief(self, code: bool = False) -> str:
        """``column: message`` (the message alone without a column), ``[code] `` first with ``code``:
        the words of a row's problem in an ``error`` column or an unavailable CDS card."""
        text = f"{self.column}: {self.message}" if self.column else self.message
        return f"[{self.code}] {text}" if code else text


@dataclass
class ValidationFailed(LbpError):
    """Input failed validation; carries every problem found, not only the first."""

    problems: list[Problem] = field(default_factory=list)
    what: str = "input"
    total: int | None = None  # errors found, when more were found than listed (a listing capped per kind)

    def __post_init__(self) -> None:
        super().__init__(self.summary())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def summary(self) -> str:
        n = len(self.errors) if self.total is None else self.total
        return f"{self.what} is invalid: {n} problem{'s' if n != 1 else ''} found"

    def report(self, limit: int | None = 50) -> str:
        errs = self.errors
        shown = errs if limit is None else errs[:limit]
        lines = [self.summary() + ":"] + [f"  - {p}" for p in shown]
        if limit is not None and len(errs) > limit:
            lines.append(f"  ... and {len(errs) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def by_row(problems: Sequence[Problem], what: str = "patients") -> dict[int, list[Problem]]:
    """The problems of single rows (patients) of a batch, by row (0-based, ascending), each row's in
    their order: the rows to leave unscored while the others are scored. Raises
    :class:`ValidationFailed` with every problem when one is about the input as a whole (no row:
    an unknown column of a table, a bad comparator or outcome): then nothing can be scored."""
    if any(p.row is None for p in problems):
        raise ValidationFailed(list(problems), what=what)
    out: dict[int, list[Problem]] = {}
    for p in problems:
        out.setdefault(int(p.row), []).append(p)
    return dict(sorted(out.items()))


def rows_by_code(rows: dict[int, list[Problem]]) -> dict[str, int]:
    """How many rows (of :func:`by_row`) have a problem of each code, most frequent first (a row
    with problems of two codes counts under both)."""
    n: dict[str, int] = {}
    for probs in rows.values():
        for c in dict.fromkeys(p.code for p in probs):
            n[c] = n.get(c, 0) + 1
    return dict(sorted(n.items(), key=lambda kv: (-kv[1], kv[0])))
