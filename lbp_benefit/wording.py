"""Counts in words with the noun agreeing with the number (``1 trial``, ``2 trials``): the one helper
the CLI's summaries use wherever a count is worded (``check`` once printed "1 trials")."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in agreement: ``counted(1, "trial") == "1 trial"``,
    ``counted(2, "trial") == "2 trials"`` (``plural`` for an irregular plural)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
