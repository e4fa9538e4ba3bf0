"""``lbp-benefit score``: score patients from a CSV (or a dataset folder) with a model artifact."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def score(
    model: Path = typer.Option(..., "--model", help="Model artifact (folder or .zip)."),
    input: Optional[Path] = typer.Option(None, "--input", help="CSV, one row per patient: covariate columns plus "
                                         "baseline_pain and baseline_function (0-100, higher = worse); optional "
                                         "trial and participant columns are kept."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder in the data format (baselines from week 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config for --data (default: the folder's study.yaml)."),
    comparator: str = typer.Option(..., "--comparator", help="Comparator class (e.g. usual_care)."),
    output: Path = typer.Option(..., "--output", help="CSV to write."),
    outcome: Optional[List[str]] = typer.Option(None, "--outcome", help="Outcomes to score (repeatable; default all)."),
    explain: bool = typer.Option(False, "--explain", help="Add the top 3 contributing factors per patient."),
    drop_incomplete: bool = typer.Option(False, "--drop-incomplete", help="With --data: leave out participants "
                                         "without both baselines (reported) instead of stopping."),
    engine: str = typer.Option("pandas", "--engine", help="pandas (in-process) or spark: --input is then a Parquet "
                               "path or a table name, --output a Parquet folder, and invalid rows are written with "
                               "an error column (docs/spark.md; needs the [spark] extra and Java)."),
) -> None:
    """Score patients: expected outcomes under exercise and the comparator, benefit with intervals, recovery."""
    import pandas as pd

    from lbp_benefit.progress import progress_over
    from predict import Scorer
    from predict.errors import LbpError, Problem, ValidationFailed

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
    if engine == "spark":
        return _score_spark(scorer, model, input, data, comparator, output, outcome, explain)
    source = ""
    if input is not None:
        if not input.is_file():
            raise LbpError(f"--input {input} not found")
        cat = {c.name: str for c in scorer.schema.covariates if c.type == "categorical"}
        ids = {"trial": str, "participant": str}
        try:
            df = pd.read_csv(input, dtype={**cat, **ids}, keep_default_na=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise LbpError(f"--input {input} is not a readable CSV ({exc})") from exc
        source = input.name
        line_of = lambda i: i + 2  # noqa: E731 - header is line 1
    else:
        from training.dataset import load_dataset
        from training.harmonise import harmonise

        ds = load_dataset(data, config)
        h = harmonise(ds)
        keep = ["trial", "participant"] + [c for c in scorer.schema.names if c in h.baselines.columns] + \
            [b for b in scorer.baselines if b in h.baselines.columns]
        df = h.baselines[keep].reset_index(drop=True)
        if drop_incomplete:
            ok = df[[b for b in scorer.baselines if b in df.columns]].notna().all(axis=1)
            if (~ok).any():
                typer.echo(f"left out {int((~ok).sum())} participant(s) without both baselines", err=True)
            df = df[ok].reset_index(drop=True)
        source = str(data)
        line_of = None
    try:
        out = _score_chunks(scorer, df, comparator, list(outcome) if outcome else None, explain, progress_over)
    except ValidationFailed as exc:
        probs = []
        for p in exc.problems:
            where = {}
            if p.row is not None and line_of is not None:
                where = {"file": source, "row": line_of(p.row)}
            elif p.row is not None:
                r = df.iloc[p.row]
                where = {"trial": str(r.get("trial")), "participant": str(r.get("participant"))}
            probs.append(Problem(p.code, p.message, column=p.column, scope=p.scope, severity=p.severity, **where))
        raise ValidationFailed(probs, what=source or "patients") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    typer.echo(f"scored {len(out)} patient(s) vs {comparator} with model {scorer.model_id}; wrote {output}")


def _score_spark(scorer, model, input, data, comparator, output, outcome, explain) -> None:
    from predict.errors import LbpError

    if data is not None or input is None:
        raise LbpError("--engine spark reads --input (a Parquet path or a table name), not --data")
    try:
        from predict import spark as sp
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise LbpError("--engine spark needs the spark extra: pip install 'lbp-benefit[spark]' (and Java 17+)") from exc
    with sp.session("lbp-benefit score") as spark:
        n, bad = sp.score_to_parquet(spark, str(input), output, model, comparator, list(outcome) if outcome else None,
                                     explain=explain, scorer=scorer)
    typer.echo(f"scored {n - bad} patient(s) vs {comparator} with model {scorer.model_id} on Spark; "
               f"{bad} row(s) failed validation (see the error column); wrote {output}")


def _score_chunks(scorer, df, comparator, outcomes, explain, progress, chunk: int = 4000):
    import pandas as pd

    scorer.validate(df)  # every problem at once, before scoring
    starts = list(range(0, len(df), chunk)) or [0]
    parts = [scorer.score_table(df.iloc[s:s + chunk], comparator, outcomes, explain=explain)
             for s in progress(starts, "scoring", total=len(starts))]
    return pd.concat(parts, ignore_index=True)
