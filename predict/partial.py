"""Per-outcome partial scoring of a table of patients: each row gets every requested outcome its
record allows (issue 23: nobody left without a prediction their record allows).

A row that lacks the baseline one requested outcome needs (:mod:`predict.required_inputs`, the one
owner of that rule) is still scored for the requested outcomes it does allow; the columns of the
others are empty and :data:`NOT_PREDICTED` names each outcome not predicted and why (its words from
:meth:`predict.required_inputs.Requirement.lacking`). A row that allows none of them, or has any
other problem (an impossible value, text for a number, ...), is not scored at all and all its
problems (a missing required baseline included) are returned in the words of the scorer's
validation (:class:`predict.errors.Problem`), as before.

Each partly scored row's numbers are those of scoring that row for the outcomes it allows alone:
rows are grouped by the outcomes they allow and each group is scored with
:meth:`predict.Scorer.score_table` for those outcomes. The top factors (``explain``) explain one
task, the full request's; they are left empty on rows where that task was not predicted (never
the factors of another task under the same column names).

Used by ``lbp-benefit score`` (pandas) and the Spark batch (:mod:`predict.spark`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from predict.errors import Problem, ValidationFailed, by_row
from predict.inputs import request_problems
from predict.required_inputs import Requirement

NOT_PREDICTED = "not_predicted"
"""Column: per row, each requested outcome not predicted with the reason (``outcome: no <baselines>
(required)``, ``; ``-separated), or ``outcome: input refused (see error)``; empty when all were."""

FULL, PARTLY, NONE = "fully", "partly", "not at all"


@dataclass
class Partial:
    """The result of :func:`score_partly` for one table."""

    table: pd.DataFrame
    """One row per input row, in order: id columns, the full request's score columns (empty where
    not predicted), factors, ``missing``, ``warnings`` (as ``score_table``), then :data:`NOT_PREDICTED`."""
    problems: dict[int, list[Problem]]
    """Rows (0-based) scored not at all: their problems, as :func:`predict.errors.by_row`."""
    status: np.ndarray
    """Per row: :data:`FULL`, :data:`PARTLY` or :data:`NONE`."""
    lacking: np.ndarray
    """Per row: the not-predicted reasons (without outcome names) joined, for counting by reason."""


def lacking_text(outcome: str, need: Requirement, given: dict) -> str | None:
    """``outcome: no <baselines> (required)`` when ``given`` (one patient's inputs) does not allow
    ``outcome``, else None. The words of the lack are :meth:`Requirement.lacking`'s."""
    lack = need.lacking(given)
    return f"{outcome}: no {lack} (required)" if lack else None


def score_partly(scorer, df: pd.DataFrame, comparator: str, outcomes: Sequence[str] | None = None,
                 **kw) -> Partial:
    """Score every requested outcome each row of ``df`` allows (see the module docstring).
    ``outcomes``: outcome or task names (default: every outcome of the model); ``kw`` go to
    :meth:`predict.Scorer.score_table`. Raises :class:`ValidationFailed` for a problem of the
    request (comparator, outcome) or of the table as a whole (an unknown column)."""
    probs = request_problems(comparator, list(outcomes) if outcomes else None, scorer.comparators, scorer.outcomes,
                             scorer.tasks)
    if probs:
        raise ValidationFailed(probs, what="request")
    items = list(dict.fromkeys(outcomes)) if outcomes else list(scorer.outcomes)
    df = df.reset_index(drop=True)
    n = len(df)
    try:  # every problem other than a missing required baseline
        scorer.validate(df, Requirement())
        rows: dict[int, list[Problem]] = {}
    except ValidationFailed as exc:
        rows = by_row(exc.problems, exc.what)  # a problem of the whole table raises
    valid = np.ones(n, bool)
    valid[list(rows)] = False
    needs = {o: scorer.requirement([o]) for o in items}
    met = np.column_stack([needs[o].met(df) for o in items]) if n else np.zeros((0, len(items)), bool)
    met &= valid[:, None]
    lacks_only = set(np.nonzero(valid & ~met.any(axis=1))[0].tolist())  # allows no requested outcome
    refused = np.array(sorted(set(rows) | lacks_only), dtype=int)
    rows = {}
    if len(refused):  # every problem of a row scored not at all, in the validation's words (as before)
        try:
            scorer.validate(df.iloc[refused].reset_index(drop=True), scorer.requirement(items))
        except ValidationFailed as exc:
            for i, ps in by_row(exc.problems, exc.what).items():
                rows[int(refused[i])] = [replace(p, row=int(refused[i])) for p in ps]
    full_cols = scorer.table_columns(items)
    explained = _explained(scorer, comparator, items, kw)
    parts = []
    for pattern in sorted({tuple(r) for r in met[met.any(axis=1)]}, reverse=True):
        idx = np.nonzero((met == np.array(pattern)).all(axis=1))[0]
        sel = [o for o, m in zip(items, pattern) if m]
        res = scorer.score_table(df.iloc[idx].reset_index(drop=True), comparator, sel, **kw)
        if explained is not None and explained != _explained(scorer, comparator, sel, kw):
            res = res.drop(columns=[c for c in res.columns if c.startswith("factor")])
        res.index = idx
        parts.append(res)
    table = _assemble(df, parts, full_cols, n)
    status = np.where(met.all(axis=1), FULL, np.where(met.any(axis=1), PARTLY, NONE)) if n else np.array([], str)
    texts, reasons = [], []
    cols = sorted(set().union(*(r.names for r in needs.values())) & set(df.columns))
    for i in range(n):
        if i in rows and i not in lacks_only:
            texts.append("; ".join(f"{o}: input refused (see error)" for o in items))
            reasons.append("")
            continue
        given = {b: df[b].iat[i] for b in cols}
        why = [lacking_text(o, needs[o], given) for o, m in zip(items, met[i]) if not m]
        why = [w for w in why if w]
        texts.append("; ".join(why))
        reasons.append("; ".join(w.split(": ", 1)[1] for w in why))
    table[NOT_PREDICTED] = texts
    return Partial(table, rows, status, np.array(reasons, dtype=object))


def _explained(scorer, comparator: str, outcomes: list[str], kw: dict) -> str | None:
    """The task whose contributions fill the factor columns when ``outcomes`` are scored."""
    if not kw.get("explain"):
        return None
    return scorer.explained_task(comparator, outcomes)


def _assemble(df: pd.DataFrame, parts: list[pd.DataFrame], full_cols: list[str], n: int) -> pd.DataFrame:
    """The groups' tables put back in row order with the full request's columns (ids, scores,
    factors, missing, warnings); empty where a group has no such column."""
    ids = [c for c in ("trial", "participant") if c in df.columns]
    extra: list[str] = []
    for p in parts:
        extra += [c for c in p.columns if c not in ids and c not in full_cols and c not in extra]
    factors = [c for c in extra if c.startswith("factor")]  # before missing/warnings, as in score_table
    rest = [c for c in extra if not c.startswith("factor")]
    out: dict[str, object] = {c: df[c].to_numpy() for c in ids}
    for c in full_cols + factors + rest:
        text = any(c in p.columns and not pd.api.types.is_numeric_dtype(p[c].dtype) for p in parts)
        col = np.full(n, None, dtype=object) if text else np.full(n, np.nan)
        for p in parts:
            if c in p.columns:
                col[p.index.to_numpy()] = p[c].to_numpy()
        out[c] = col
    return pd.DataFrame(out, index=range(n))
