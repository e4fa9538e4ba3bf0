"""Batch scoring on Apache Spark: :func:`score_spark` (a Spark DataFrame in, one out).

The same ``predict`` code scores each Arrow batch in the executors' Python workers
(``mapInPandas``): :func:`score_batch` is ``Scorer.score_table`` made row-tolerant. The artifact
travels as files, never pickled: the driver writes the verified artifact as one deterministic zip
(named by its manifest digest) and ships it with ``SparkContext.addFile``; each executor loads it
with :meth:`Scorer.load`, which verifies every file's SHA-256, and checks the model id and manifest
digest the driver saw. Each row gets the requested outcomes its record allows (``not_predicted``
names the others and why); rows that allow none or fail validation come out with their problems in
``error`` and null scores, never dropped. Rows are hash-partitioned by their key columns and sorted within each
partition before scoring, so the output is the same whatever the input's partitioning. pyspark is imported lazily: the
core package needs neither it nor Java. See docs/spark.md.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from predict.artifact import MANIFEST, ArtifactError
from predict.errors import LbpError, Problem, ValidationFailed
from predict.input_names import ID_COLUMNS, column_problems
from predict.partial import NOT_PREDICTED, score_partly
from predict.scorer import Scorer

ERROR = "error"
ROW_INDEX = "row_index"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Shipped:
    """What executors need to find and check the shipped artifact (strings only)."""

    name: str  # file name under SparkFiles
    model_id: str
    manifest_sha256: str


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of the canonical JSON of a whole manifest (it lists every file's SHA-256)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def stage_artifact(scorer: Scorer, folder: str | Path | None = None) -> Path:
    """The scorer's verified artifact as one deterministic zip ``lbp-<model_id>-<digest>.zip``
    (written once; an existing one is reused, its content being fixed by its name)."""
    folder = Path(folder or Path(tempfile.gettempdir()) / f"lbp-spark-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    art = scorer.artifact
    digest = manifest_digest(art.manifest)
    path = folder / f"{scorer.model_id}-{digest[:16]}.zip"
    if path.is_file():
        return path
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    entries = [(MANIFEST, json.dumps(art.manifest, sort_keys=True, indent=1).encode("utf-8"))]
    entries += [(n, art.files[n]) for n in sorted(art.files)]
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.replace(tmp, path)
    return path


def ship_artifact(spark, scorer: Scorer, folder: str | Path | None = None) -> Shipped:
    """Stage the artifact and add it to the Spark job's files (``SparkContext.addFile``)."""
    path = stage_artifact(scorer, folder)
    try:
        sc = spark.sparkContext
    except Exception as exc:  # noqa: BLE001 - Spark Connect has no SparkContext
        raise LbpError("a classic SparkSession is needed (SparkContext.addFile ships the artifact); "
                       "Spark Connect sessions are not supported") from exc
    sc.addFile(str(path))
    return Shipped(path.name, scorer.model_id, manifest_digest(scorer.artifact.manifest))


def load_verified(path: str | Path, shipped: Shipped) -> Scorer:
    """Load the artifact at ``path`` (every file's SHA-256 verified by :meth:`Scorer.load`) and
    check it is the one the driver shipped; raises :class:`ArtifactError` otherwise."""
    scorer = Scorer.load(path)
    if scorer.model_id != shipped.model_id or manifest_digest(scorer.manifest) != shipped.manifest_sha256:
        raise ArtifactError(f"{Path(path).name}: model {scorer.model_id} is not the artifact the driver shipped "
                            f"({shipped.model_id}, manifest {shipped.manifest_sha256[:16]})")
    return scorer


_LOADED: dict[str, Scorer] = {}  # per executor Python worker: the verified scorer by shipped name


def executor_scorer(shipped: Shipped) -> Scorer:
    """The shipped scorer in this executor's Python worker (loaded and verified once)."""
    scorer = _LOADED.get(shipped.name)
    if scorer is None:
        from pyspark import SparkFiles

        scorer = _LOADED[shipped.name] = load_verified(SparkFiles.get(shipped.name), shipped)
    return scorer


# ----------------------------------------------------------------------------- pandas batches
def probe_columns(scorer: Scorer, comparator: str, outcomes: Sequence[str] | None, *, explain: bool, top: int,
                  details: bool) -> list[tuple[str, bool]]:
    """``score_table``'s columns for this request as ``(name, is_text)``; raises
    :class:`ValidationFailed` for an unknown comparator or outcome."""
    res = scorer.score_table(pd.DataFrame([scorer.example_patient()]), comparator, outcomes, explain=explain,
                             top=top, details=details)
    return [(c, not pd.api.types.is_numeric_dtype(res[c].dtype)) for c in res.columns]


def score_batch(scorer: Scorer, pdf: pd.DataFrame, comparator: str, outcomes: Sequence[str] | None = None, *,
                carry: Sequence[str] = (), columns: Sequence[tuple[str, bool]], explain: bool = False, top: int = 3,
                details: bool = True) -> pd.DataFrame:
    """Score one batch: the ``carry`` columns, then ``columns`` (from :func:`probe_columns`) equal
    to ``score_table`` for the outcomes each row allows (:func:`predict.partial.score_partly`; null
    where not predicted), ``not_predicted`` (each requested outcome not predicted and why; null when
    all were), then ``error``: ``[code] column: message; ...`` for rows scored not at all (their
    scores null), null otherwise. Every input row comes out, in order."""
    n = len(pdf)
    model_inputs = set(scorer.inputs.names)
    inputs = pdf.drop(columns=[c for c in carry if c not in model_inputs]).reset_index(drop=True)
    kw = dict(explain=explain, top=top, details=details, threads=1)  # Spark parallelises over partitions
    # each row gets the requested outcomes its record allows (predict/partial.py); a request or
    # table-level problem (no row) raises: nothing can be scored
    part = score_partly(scorer, inputs, comparator, outcomes, **kw)
    res = part.table
    out = {c: pdf[c].to_numpy() for c in carry}
    for name, text in columns:
        if name in carry:
            continue
        col = np.full(n, None, dtype=object) if text else np.full(n, np.nan)
        if name in res.columns:
            col[:] = res[name].to_numpy()
        out[name] = col
    out[NOT_PREDICTED] = np.array([t or None for t in res[NOT_PREDICTED]] if n else [], dtype=object)
    out[ERROR] = np.array(["; ".join(p.brief(code=True) for p in part.problems[i]) if i in part.problems else None
                           for i in range(n)], dtype=object)
    return pd.DataFrame(out, index=range(n))


def _score_partition(batches: Iterator[pd.DataFrame], *, shipped: Shipped, **kw) -> Iterator[pd.DataFrame]:
    scorer = executor_scorer(shipped)
    for pdf in batches:
        yield score_batch(scorer, pdf, **kw)


# ----------------------------------------------------------------------------- Spark
def _with_row_index(df):
    """``df`` with ``row_index``: the 0-based position of each row in ``df`` as Spark reads it
    (partition by partition), computed in the JVM from per-partition counts."""
    from pyspark.sql import functions as F

    t = df.withColumn("__p", F.spark_partition_id()).withColumn("__m", F.monotonically_increasing_id())
    counts = dict(t.groupBy("__p").count().collect())
    pairs, off = [], 0
    for p in sorted(counts):
        pairs += [F.lit(p), F.lit(off)]
        off += counts[p]
    offset = F.element_at(F.create_map(*pairs), F.col("__p")) if pairs else F.lit(0)
    local = F.col("__m") - F.shiftleft(F.col("__p").cast("long"), 33)
    return t.select((offset + local).cast("long").alias(ROW_INDEX), *[F.col(c) for c in df.columns])


def _check_input(df, scorer: Scorer, carry: list[str], keep: Sequence[str], keep_hint: str,
                 outputs: Sequence[str]) -> list[str]:
    """The model inputs among ``df``'s columns (scored; a carried one too); raises
    :class:`ValidationFailed` naming every problem of the columns at once: unknown columns in the
    words of :func:`predict.input_names.column_problems` (the closest input name, how to keep one),
    a kept column not in ``df`` or named like an output, an input of a type that cannot be scored."""
    from pyspark.sql import types as T

    inputs = scorer.inputs.names
    probs = column_problems(df.columns, inputs, list(carry) + list(keep), keep_hint, outputs)
    probs = [p for p in probs if p.code != "unknown_keep" or p.column in keep]  # key columns: checked before
    types = {f.name: f.dataType for f in df.schema.fields}
    ok = (T.NumericType, T.BooleanType, T.StringType, T.NullType)
    for c in df.columns:
        if c in inputs and not isinstance(types[c], ok):
            probs.append(Problem("bad_type", f"a column of type {types[c].simpleString()} cannot be scored: inputs "
                                 "must be numbers (categories text)", column=c, scope="file"))
    if probs:
        raise ValidationFailed(probs, what="input table")
    return [c for c in df.columns if c in inputs]


def score_spark(df, model_path: str | Path, comparator: str, outcomes: Sequence[str] | None = None, *,
                key: Sequence[str] | None = None, keep: Sequence[str] = (), explain: bool = False, top: int = 3,
                details: bool = True, partitions: int | None = None, scorer: Scorer | None = None,
                stage_dir: str | Path | None = None, keep_hint: str = "keep=[{name!r}]"):
    """Score a Spark DataFrame of patients; returns a DataFrame with ``lbp-benefit score``'s columns
    (``score_table``: key/id columns, scores, factors with ``explain``, ``missing``, ``warnings``)
    plus ``not_predicted`` (the requested outcomes a row was not scored for, and why) and ``error`` (null for
    scored rows).

    ``key``: columns identifying a row, carried through and used to partition and order the output
    (default ``trial``/``participant`` where present; without any, a ``row_index`` is added: the
    row's position in ``df``). ``keep``: other columns to carry into the output unchanged (an MRN, a
    note), after the key and id columns, as ``lbp-benefit score --keep``. Any other column the model
    does not take is refused (not ignored), named with the closest input name
    (:mod:`predict.input_names`; ``keep_hint`` says how to keep one). A key or kept column that is
    an input of the model is scored too. ``partitions``: output partitions (default
    ``spark.sql.shuffle.partitions``); rows go to ``hash(key) % partitions``, sorted by key.
    Raises :class:`ValidationFailed` (every problem at once) on the driver for an unknown
    comparator/outcome or input column, :class:`LbpError` for a key column not in ``df``.
    """
    spark = df.sparkSession
    scorer = scorer or Scorer.load(model_path)
    key = [c for c in ID_COLUMNS if c in df.columns] if key is None else list(key)
    missing = [c for c in key if c not in df.columns]
    if missing:
        raise LbpError(f"key column(s) {', '.join(missing)} not in the input")
    columns = probe_columns(scorer, comparator, list(outcomes) if outcomes else None, explain=explain, top=top,
                            details=details)
    carry = list(dict.fromkeys(key + [c for c in ID_COLUMNS if c in df.columns] + list(keep)))
    outputs = [c for c, _ in columns] + [NOT_PREDICTED, ERROR, ROW_INDEX]
    feats = _check_input(df, scorer, carry, keep, keep_hint, outputs)
    if not key:
        df, key, carry = _with_row_index(df), [ROW_INDEX], [ROW_INDEX] + carry
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # Decimal inputs (common in warehouses) would reach pandas as Decimal objects: read as doubles
    # (a carried input too: it is scored).
    src = {f.name: f for f in df.schema.fields}
    as_double = {c for c in feats if isinstance(src[c].dataType, T.DecimalType)}
    cols = {c: F.col(c).cast("double").alias(c) if c in as_double else F.col(c) for c in list(carry) + feats}
    fields = [T.StructField(c, T.DoubleType(), True) if c in as_double else src[c] for c in carry]
    fields += [T.StructField(c, T.StringType() if text else T.DoubleType(), True) for c, text in columns if c not in carry]
    fields.append(T.StructField(NOT_PREDICTED, T.StringType(), True))
    fields.append(T.StructField(ERROR, T.StringType(), True))
    shipped = ship_artifact(spark, scorer, stage_dir)
    fn = functools.partial(_score_partition, shipped=shipped, comparator=comparator,
                           outcomes=list(outcomes) if outcomes else None, carry=carry, columns=columns,
                           explain=explain, top=top, details=details)
    n_out = int(partitions or spark.conf.get("spark.sql.shuffle.partitions"))
    # Partition and order before scoring, so each partition is scored in the same batches whatever
    # the input's partitioning (bit-identical output). Ties on a non-unique key are broken by the
    # inputs: rows equal on both score identically.
    rest = [c for c in feats if c not in carry]
    order = key + [c for c in carry if c not in key] + rest
    rows = df.select(*[cols[c] for c in carry + rest]).repartition(n_out, *key).sortWithinPartitions(*order)
    return rows.mapInPandas(fn, T.StructType(fields))


# ----------------------------------------------------------------------------- command line helpers
@contextmanager
def session(app_name: str = "lbp-benefit"):
    """The active SparkSession, or a new one (master from spark-submit, else local[*]) stopped on exit."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    from pyspark import SparkConf

    conf = SparkConf()
    if (conf.get("spark.master") or "local").startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    builder = SparkSession.builder.appName(app_name)
    if conf.get("spark.ui.showConsoleProgress") is None:
        # Spark redraws a stage progress bar on stderr: fine in a terminal, a flood of lines in a
        # log file or CI output. Shown only when stderr is a terminal (unless configured).
        builder = builder.config("spark.ui.showConsoleProgress", "true" if sys.stderr.isatty() else "false")
    spark = builder.getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


def read_input(spark, source: str):
    """A Parquet file/folder (local path or URI such as ``s3a://``, ``hdfs://``) or a table name."""
    p = Path(source)
    if p.exists() or "://" in source:
        if p.is_file() and p.suffix.lower() == ".csv":
            raise LbpError(f"--input {source}: the Spark engine reads Parquet or a table, not CSV")
        return spark.read.parquet(source)
    try:
        return spark.table(source)
    except Exception as exc:  # noqa: BLE001 - AnalysisException and friends
        raise LbpError(f"--input {source}: neither an existing Parquet path nor a table ({type(exc).__name__})") from exc


def score_to_parquet(spark, source: str, output: str | Path, model_path: str | Path, comparator: str,
                     outcomes: Sequence[str] | None = None, *, explain: bool = False,
                     scorer: Scorer | None = None, keep: Sequence[str] = (),
                     keep_hint: str = "keep=[{name!r}]") -> tuple[int, int]:
    """``lbp-benefit score --engine spark``: read, score, write Parquet (overwriting); returns
    (rows written, rows with an error); :func:`summary` gives every count. ``keep``/``keep_hint``
    as :func:`score_spark`."""
    from pyspark.sql import functions as F

    from predict.synthetic_marker import COLUMN, COLUMN_DESCRIPTION, LABEL

    scorer = scorer if scorer is not None else Scorer.load(model_path)
    out = score_spark(read_input(spark, source), model_path, comparator, outcomes, explain=explain, scorer=scorer,
                      keep=keep, keep_hint=keep_hint)
    if scorer.synthetic:  # first column 'synthetic' on every row; the label in the column's Parquet metadata
        mark = F.lit(True).alias(COLUMN, metadata={"label": LABEL, "comment": COLUMN_DESCRIPTION})
        out = out.select(mark, *[c for c in out.columns if c != COLUMN])
    out.write.mode("overwrite").parquet(str(output))
    n, bad = spark.read.parquet(str(output)).select(F.count(F.lit(1)), F.count(ERROR)).first()
    return int(n), int(bad)


def _warned_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Per batch of scored rows' ``warnings`` cells: rows warned (kind ``""``) and rows per kind."""
    from predict.clinical_warnings import count_table_warnings

    for pdf in batches:
        w = count_table_warnings(pdf["warnings"])
        yield pd.DataFrame({"kind": [""] + list(w["by_kind"]), "n": [w["count"]] + list(w["by_kind"].values())})


def summary(spark, output: str | Path) -> dict:
    """The counts of a written output, as ``lbp-benefit score`` and the batch API give them:
    ``rows``, ``not_scored`` (rows with an ``error``), ``partly`` (:func:`partly_scored`) and
    ``warned``: ``{"count", "by_kind"}`` of the scored rows whose inputs carry warnings
    (:func:`predict.clinical_warnings.count_warnings`, the one owner of the kinds; counted on the
    executors)."""
    from pyspark.sql import functions as F

    from predict.clinical_warnings import WARNING_KINDS

    t = spark.read.parquet(str(output))
    n, bad, part = t.select(F.count(F.lit(1)), F.count(ERROR),
                            F.count(F.when(F.col(NOT_PREDICTED).isNotNull() & F.col(ERROR).isNull(), 1))).first()
    warned = {"count": 0, "by_kind": {}}
    if "warnings" in t.columns:
        rows = (t.where(F.col(ERROR).isNull()).select("warnings")
                .mapInPandas(_warned_partition, "kind string, n long").groupBy("kind").agg(F.sum("n")).collect())
        got = {r[0]: int(r[1]) for r in rows}
        warned = {"count": got.get("", 0), "by_kind": {k: got[k] for k in WARNING_KINDS if got.get(k)}}
    return {"rows": int(n), "not_scored": int(bad), "partly": int(part), "warned": warned}


def partly_scored(spark, output: str | Path) -> int:
    """Rows of a written output scored for some of the requested outcomes only (``not_predicted``
    set, no ``error``)."""
    from pyspark.sql import functions as F

    t = spark.read.parquet(str(output))
    return int(t.where(F.col(NOT_PREDICTED).isNotNull() & F.col(ERROR).isNull()).count())
