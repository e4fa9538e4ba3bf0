"""``lbp-benefit score``: score patients from a CSV (or a dataset folder) with a model artifact."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer


def score(
    model: Path = typer.Option(..., "--model", help="Model artifact (folder or .zip)."),
    input: Optional[Path] = typer.Option(None, "--input", help="CSV, one row per patient: covariate columns plus "
                                         "the baselines of the outcomes scored (e.g. baseline_pain, 0-100, higher = "
                                         "worse); optional trial and participant columns are carried into the "
                                         "output, other columns only with --keep (an unknown column is refused, "
                                         "named with the closest input name)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder in the data format (baselines from week 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config for --data (default: the folder's study.yaml)."),
    comparator: str = typer.Option(..., "--comparator", help="Comparator class (e.g. usual_care)."),
    output: Path = typer.Option(..., "--output", help="CSV to write."),
    outcome: Optional[List[str]] = typer.Option(None, "--outcome", help="Outcomes to score (repeatable; default all)."),
    explain: bool = typer.Option(False, "--explain", help="Add the top 3 contributing factors per patient."),
    drop_incomplete: bool = typer.Option(False, "--drop-incomplete", help="With --data: leave out participants "
                                         "without every baseline the outcomes scored need (reported) instead of "
                                         "scoring them for the outcomes their record allows."),
    strict: bool = typer.Option(False, "--strict", help="Refuse the whole input (exit 2, every problem listed) if any "
                                "row cannot be scored for every outcome asked; by default each row gets the outcomes "
                                "its record allows (the others named in a 'not_predicted' column) and rows that "
                                "cannot be scored at all an 'error' column naming the problem."),
    keep: Optional[List[str]] = typer.Option(None, "--keep", help="A column of --input the model does not take "
                                             "(an identifier such as an MRN, a note) to carry into the output "
                                             "unchanged, read as text (repeatable). Without it such a column is "
                                             "refused, not ignored: a misspelt input must not be silently imputed."),
    engine: str = typer.Option("pandas", "--engine", help="pandas (in-process) or spark: --input is then a Parquet "
                               "path or a table name, --output a Parquet folder, and invalid rows are written with "
                               "an error column (docs/spark.md; needs the [spark] extra and Java)."),
) -> None:
    """Score patients: expected outcomes under the intervention and the comparator, and the benefit with its intervals (column names in docs/artifact.md)."""
    import numpy as np
    import pandas as pd

    from lbp_benefit.progress import progress_over
    from predict import Scorer
    from predict.errors import LbpError, Problem, ValidationFailed, by_row, rows_by_code

    if (input is None) == (data is None):
        raise LbpError("give exactly one of --input patients.csv or --data FOLDER")
    if config is not None and data is None:
        raise LbpError("--config goes with --data")
    scorer = Scorer.load(model)
    if comparator not in scorer.comparators:
        raise LbpError(f"--comparator {comparator!r} is not one of {', '.join(scorer.comparators)}")
    if scorer.synthetic:
        typer.echo("note: this model was trained on SYNTHETIC data; its scores are not for clinical use", err=True)
    if engine not in ("pandas", "spark"):
        raise LbpError(f"--engine {engine!r} is not pandas or spark")
    keep = list(dict.fromkeys(keep or ()))
    if keep and data is not None:
        raise LbpError("--keep goes with --input (a --data folder's trial and participant columns are carried)")
    if engine == "spark":
        return _score_spark(scorer, model, input, data, comparator, output, outcome, explain, keep)
    source = ""
    kept = None
    if input is not None:
        if not input.is_file():
            raise LbpError(f"--input {input} not found")
        cat = {c.name: str for c in scorer.schema.covariates if c.type == "categorical"}
        ids = {"trial": str, "participant": str,  # identifiers as written (leading zeros kept)
               **{k: str for k in keep if k not in set(scorer.inputs.names)}}
        try:
            df = pd.read_csv(input, dtype={**cat, **ids}, keep_default_na=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise LbpError(f"--input {input} is not a readable CSV ({exc})") from exc
        source = input.name
        line_of = lambda i: i + 2  # noqa: E731 - header is line 1
        df, kept = _kept_columns(scorer, df, keep, comparator, outcome, explain, source)
        df = _numbers_per_cell(df, set(cat) | set(ids))
    else:
        from training.dataset import load_dataset
        from training.harmonise import harmonise

        ds = load_dataset(data, config)
        h = harmonise(ds)
        keep = ["trial", "participant"] + [c for c in scorer.schema.names if c in h.baselines.columns] + \
            [b for b in scorer.baselines if b in h.baselines.columns]
        df = h.baselines[keep].reset_index(drop=True)
        if drop_incomplete:
            ok = pd.Series(scorer.requirement(list(outcome) if outcome else None).met(df), index=df.index)
            if (~ok).any():
                typer.echo(f"left out {int((~ok).sum())} participant(s) without the baselines of the outcomes scored", err=True)
            df = df[ok].reset_index(drop=True)
        source = str(data)
        line_of = None
    outcomes = list(outcome) if outcome else None

    def located(problems):
        probs = []
        for p in problems:
            where = {}
            if p.row is not None and line_of is not None:
                where = {"file": source, "row": line_of(p.row)}
            elif p.row is not None:
                r = df.iloc[p.row]
                where = {"trial": str(r.get("trial")), "participant": str(r.get("participant"))}
            probs.append(Problem(p.code, p.message, column=p.column, scope=p.scope, severity=p.severity, **where))
        return probs

    try:
        out, errors, status, lacking = score_rows(scorer, df, comparator, outcomes, explain, progress_over, strict)
    except ValidationFailed as exc:
        raise ValidationFailed(located(exc.problems), what=source or "patients") from None
    if kept is not None and len(kept.columns):  # after the id columns, as in the input
        at = sum(c in out.columns for c in ("trial", "participant"))
        out = pd.concat([out.iloc[:, :at], kept.reset_index(drop=True), out.iloc[:, at:]], axis=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    from predict.synthetic_marker import mark_table

    out = mark_table(out, scorer.synthetic)  # first column 'synthetic' on every row of a synthetic model's file
    out.to_csv(output, index=False)
    n_bad = int(out["error"].ne("").sum()) if "error" in out else 0
    n_part = int((status == "partly").sum())
    reasons = rows_by_code(by_row(errors))
    why = f" ({', '.join(f'{c}: {n}' for c, n in reasons.items())})" if reasons else ""
    typer.echo(f"scored {len(out) - n_bad} patient(s) vs {comparator} with model {scorer.model_id}: "
               f"{len(out) - n_bad - n_part} fully, {n_part} partly (the outcomes their record allows; the others "
               f"named in the 'not_predicted' column); {n_bad} row(s) could not be scored{why} (see the 'error' column); "
               f"wrote {output}")
    lack = pd.Series(lacking[status != "fully"]).replace("", np.nan).dropna()
    for text, k in lack.value_counts().items():
        typer.echo(f"  {k} row(s) without a prediction for: {text}")
    if "warnings" in out:  # values the schema accepts but few training participants had: scored, counted
        from predict.clinical_warnings import count_table_warnings

        ok = out["error"].eq("") if "error" in out else pd.Series(True, index=out.index)
        _echo_warned(count_table_warnings(out.loc[ok, "warnings"]), "'warnings'")
    if "missing" in out:  # a baseline the requested outcomes do not require, imputed (predict/required_inputs.py)
        names = out["missing"].fillna("").astype(str).str.split(";")
        k = int(names.map(lambda m: any(b in m for b in scorer.baselines)).sum())
        if k:
            typer.echo(f"{k} of them scored with a baseline imputed (not required by the outcomes scored; "
                       f"listed in the 'missing' column)")
    for p in located(errors)[:5]:
        typer.echo(f"  not scored: {p}", err=True)
    if n_bad > 5:
        typer.echo(f"  ... and {n_bad - 5} more rows (the 'error' column names each problem)", err=True)


def _kept_columns(scorer, df, keep, comparator, outcome, explain, source):
    """(the table the scorer reads, the ``--keep`` columns to carry into the output in their order,
    as text); raises :class:`ValidationFailed` naming every column problem of the file at once
    (:func:`predict.input_names.column_problems`: unknown columns with the closest input name, a
    kept column not in the file or named like an output column)."""
    import pandas as pd

    from predict.errors import ValidationFailed
    from predict.input_names import ID_COLUMNS, column_problems

    outputs: list[str] = []
    if keep:  # the columns this request writes (a kept column must not overwrite one)
        try:
            probe = scorer.score_table(pd.DataFrame([scorer.example_patient()]), comparator,
                                       list(outcome) if outcome else None, explain=explain)
            outputs = list(probe.columns) + ["not_predicted", "error", "synthetic"]
        except ValidationFailed:
            outputs = []  # a bad outcome: reported by the scoring below, every problem at once
    probs = column_problems(list(df.columns), scorer.inputs.names, keep, "--keep {name}", outputs)
    if probs:
        from dataclasses import replace

        raise ValidationFailed([replace(p, file=source) for p in probs], what=source)
    carried = [k for k in keep if k not in ID_COLUMNS]
    kept = df[carried].astype(object).where(df[carried].notna(), None) if carried else pd.DataFrame(index=df.index)
    drop = [k for k in carried if k not in set(scorer.inputs.names)]  # a kept model input is also scored
    return df.drop(columns=drop), kept


def _score_spark(scorer, model, input, data, comparator, output, outcome, explain, keep=()) -> None:
    from predict.errors import LbpError

    if data is not None or input is None:
        raise LbpError("--engine spark reads --input (a Parquet path or a table name), not --data")
    try:
        from predict import spark as sp
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise LbpError("--engine spark needs the spark extra: pip install 'lbp-benefit[spark]' (and Java 17+)") from exc
    with sp.session("lbp-benefit score") as spark:
        sp.score_to_parquet(spark, str(input), output, model, comparator, list(outcome) if outcome else None,
                                     explain=explain, scorer=scorer, keep=keep, keep_hint="--keep {name}")
        done = sp.summary(spark, output)
    n, bad, part = done["rows"], done["not_scored"], done["partly"]
    typer.echo(f"scored {n - bad} patient(s) vs {comparator} with model {scorer.model_id} on Spark: "
               f"{n - bad - part} fully, {part} partly (the outcomes their record allows; the others named in the "
               f"not_predicted column); {bad} row(s) could not be scored (see the error column); wrote {output}")
    _echo_warned(done["warned"], "warnings")


def _echo_warned(warned: dict, column: str) -> None:
    """The count of scored rows whose inputs carry warnings, by kind (``count_warnings``'s dict)."""
    from predict.clinical_warnings import warned_text

    if warned["count"]:
        typer.echo(warned_text(warned, column))


def score_rows(scorer, df, comparator, outcomes, explain, progress, strict: bool = False, chunk: int = 4000):
    """Score every requested outcome each row allows (predict/partial.py): (table in input order with
    a ``not_predicted`` column naming each requested outcome not predicted and why, and an ``error``
    column, empty unless the row was scored not at all; the problems of those rows; per row
    "fully"/"partly"/"not at all"; per row the reasons of what was not predicted). Only the baselines
    of the outcomes scored are required. Problems of the request itself and, with ``strict``, any row
    problem (a missing baseline included) raise :class:`ValidationFailed` listing every problem."""
    import numpy as np
    import pandas as pd

    from predict.partial import score_partly

    if strict:  # every problem at once, before scoring
        scorer.validate(df, scorer.requirement(outcomes))
    df = df.reset_index(drop=True)
    starts = list(range(0, len(df), chunk)) or [0]
    tables, status, lacking, rows = [], [], [], {}
    for s in progress(starts, "scoring", total=len(starts)):
        part = score_partly(scorer, df.iloc[s:s + chunk], comparator, outcomes, explain=explain)
        tables.append(part.table)
        status.append(part.status)
        lacking.append(part.lacking)
        rows.update({s + i: [replace(p, row=s + i) for p in ps] for i, ps in part.problems.items()})
    scored = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    scored["error"] = ["; ".join(p.brief() for p in rows[i]) if i in rows else "" for i in range(len(scored))]
    row_probs = [p for probs in rows.values() for p in probs]
    return scored, row_probs, np.concatenate(status), np.concatenate(lacking)


def _numbers_per_cell(df, text_columns: set):
    """A numeric column with one bad cell is read as text by pandas: turn the cells that are numbers back
    into numbers, so that only the bad cell's row is refused (and named), not the whole column."""
    import pandas as pd

    for c in df.columns:
        if c in text_columns or pd.api.types.is_numeric_dtype(df[c]):
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        df[c] = pd.Series([float(n) if pd.notna(n) else (None if pd.isna(v) else v) for n, v in zip(num, df[c])], index=df.index, dtype=object)
    return df
