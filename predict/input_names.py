"""Names a user gives that the model does not take: the one owner of the rule and its words, used
by the scorer's validation (dicts and tables), ``lbp-benefit score`` (CSV, ``--keep``), the Spark
batch (``key=``/``keep=``) and the HTTP API's 422 items.

A name the model has no input of is never ignored (a misspelt ``BMI`` would otherwise quietly become
an imputed bmi) and never sinks the request silently either: it is named with the closest input
name when one is close (case, ``_``/``-``/space and small typos forgiven: ``BMI`` -> ``bmi``,
``baseline pain`` -> ``baseline_pain``, ``fear_avoidence`` -> ``fear_avoidance``), and a table
says how to carry an identifier or passthrough column (an MRN, a free-text note) into the output
unchanged (``keep``). Identifier columns ``trial`` and ``participant`` are always carried.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence

from predict.errors import Problem

ID_COLUMNS = ("trial", "participant")
"""Identifier columns a table may have besides the model's inputs: carried into the output."""

_CUTOFF = 0.8  # difflib ratio on the normalised names: one or two letters off in a name of 8+


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", str(name).strip().lower())


def closest_input(name: str, inputs: Iterable[str]) -> str | None:
    """The model input ``name`` most likely means, or None: an input equal to it up to case,
    ``_``/``-``/``.``/spaces, else the closest by :func:`difflib.get_close_matches` on those
    normalised names (ratio >= 0.8)."""
    names = list(dict.fromkeys(str(i) for i in inputs))
    key = _norm(name)
    if not key:
        return None
    by_norm: dict[str, str] = {}
    for i in names:
        by_norm.setdefault(_norm(i), i)
    if key in by_norm:
        return by_norm[key]
    hit = difflib.get_close_matches(key, list(by_norm), n=1, cutoff=_CUTOFF)
    return by_norm[hit[0]] if hit else None


def unknown_message(name: str, inputs: Iterable[str], what: str = "field", keep: str | None = None) -> str:
    """The words for a name the model has no input of: ``unknown <what> 'BMI': the model has no input
    of this name; did you mean 'bmi'?`` (when an input name is close; with ``keep``, a table's, also
    ``Rename it to 'bmi' to use it.``: keeping such a column would leave that input missing, imputed).
    Otherwise ``keep``: how to carry the column into the output instead (a table's: ``--keep {name}``,
    ``keep=['{name}']``). A pandas row index saved with a CSV (``Unnamed: 0``) is said to be one."""
    text = f"unknown {what} {name!r}: the model has no input of this name"
    if re.fullmatch(r"Unnamed: \d+", str(name)):
        text += " (a column without a header, e.g. a row index saved with the file)"
    guess = closest_input(name, inputs)
    if guess is not None:  # almost surely that input misspelt: rename it (keeping it would lose the value)
        text += f"; did you mean {guess!r}?" + (f" Rename it to {guess!r} to use it." if keep else "")
    elif keep:
        text += f". To carry it into the output unchanged: {keep.format(name=name)}"
    return text


def column_problems(columns: Sequence[str], inputs: Iterable[str], keep: Sequence[str] = (),
                    keep_hint: str | None = None, outputs: Sequence[str] = ()) -> list[Problem]:
    """Every problem of a table's column names at once (``scope='file'``: nothing can be scored):
    each column name given twice (``duplicate_column``), each column that is neither an input of the
    model, an id column (:data:`ID_COLUMNS`) nor kept (``unknown_field``, in :func:`unknown_message`'s
    words with ``keep_hint``), each kept name the table does not have (``unknown_keep``) and each
    kept name that is also the name of an output column (``outputs``; ``keep_clash``). A kept column
    that is also a model input is both used for scoring and carried."""
    inputs = list(inputs)
    allowed = set(inputs) | set(ID_COLUMNS) | set(keep)
    probs: list[Problem] = []
    cols = [str(c) for c in columns]
    for c in dict.fromkeys(c for c in cols if cols.count(c) > 1):
        probs.append(Problem("duplicate_column", f"column {c!r} appears {cols.count(c)} times", column=c, scope="file"))
    for c in dict.fromkeys(cols):
        if c not in allowed:
            probs.append(Problem("unknown_field", unknown_message(c, inputs, "column", keep_hint), column=c,
                                 scope="file"))
    for k in dict.fromkeys(keep):
        if k not in cols:
            near = difflib.get_close_matches(k, cols, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            probs.append(Problem("unknown_keep", f"kept column {k!r} is not in the input{hint}", column=k,
                                 scope="file"))
        elif k in outputs and k not in ID_COLUMNS:
            probs.append(Problem("keep_clash", f"kept column {k!r} has the name of an output column; rename it",
                                 column=k, scope="file"))
    return probs
