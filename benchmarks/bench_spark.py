"""Spark batch scoring vs the in-process pandas path, on synthetic patients from the simulator's
population generator (``training.simulate.generate_population``: complete covariates).

    .venv/bin/python benchmarks/bench_spark.py --rows 100000 300000 1000000 [--model PATH]
        [--master local[2]] [--partitions 8] [--engines pandas spark] [--out benchmarks/results/spark.json]

Per row count: the patients are written once to Parquet (with a ``participant`` id); then
* pandas: ``lbp-benefit score``'s in-process path (read Parquet, validate, ``score_table`` in chunks
  of 2,000, write Parquet), in this process;
* spark: ``predict.spark.score_to_parquet`` (read, shuffle by key, ``mapInPandas`` scoring, write
  Parquet, count rows and errors) on a warmed-up SparkSession (JVM start reported apart).
Reported: seconds and rows/s end to end, the load average before and after each run, the date,
the commit and the model; a sample of rows is compared between the engines. Without --model the
embedded default model is used. The 2 cores are shared, so the load average matters.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COMPARATOR = "usual_care"


def _commit() -> str:
    try:
        return subprocess.run(["git", "log", "--oneline", "-1"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_patients(n: int, folder: Path) -> tuple[Path, float]:
    """``n`` population patients (seed 1) with a ``participant`` id, as one Parquet file."""
    from training.simulate import generate_population

    t = time.perf_counter()
    df = generate_population(n, seed=1)
    df.insert(0, "participant", [f"p{i:08d}" for i in range(n)])
    path = folder / f"patients_{n}.parquet"
    df.to_parquet(path, index=False)
    return path, time.perf_counter() - t


def run_pandas(scorer, src: Path, dst: Path) -> float:
    import pandas as pd

    from lbp_benefit.cmd_score import _score_chunks

    t = time.perf_counter()
    df = pd.read_parquet(src)
    out = _score_chunks(scorer, df, COMPARATOR, None, False, lambda it, *a, **k: it)
    out.to_parquet(dst, index=False)
    return time.perf_counter() - t


def spark_session(master: str, partitions: int):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    b = (SparkSession.builder.master(master).appName("lbp-bench-spark").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", str(partitions))
         .config("spark.driver.memory", "4g"))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        b = b.config(f"spark.executorEnv.{var}", "1")  # one thread per Python worker: Spark runs one per core
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


def run_spark(spark, model: Path, scorer, src: Path, dst: Path) -> tuple[float, int, int]:
    from predict.spark import score_to_parquet

    t = time.perf_counter()
    n, bad = score_to_parquet(spark, str(src), dst, model, COMPARATOR, scorer=scorer)
    return time.perf_counter() - t, n, bad


def compare(pandas_out: Path, spark_out: Path, cols: list[str], k: int = 2000) -> float:
    """Max absolute difference between the engines on the first ``k`` participants."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(pandas_out).sort_values("participant").head(k).reset_index(drop=True)
    b = pd.read_parquet(spark_out).sort_values("participant").head(k).reset_index(drop=True)
    assert (a["participant"] == b["participant"]).all()
    return float(np.nanmax(np.abs(a[cols].to_numpy(float) - b[cols].to_numpy(float))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--engines", nargs="+", default=["pandas", "spark"], choices=["pandas", "spark"])
    ap.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spark.json")
    args = ap.parse_args()

    from predict import Scorer

    if args.model is None:
        from lbp_benefit.default_model import ensure_default_model

        args.model = ensure_default_model()
    scorer = Scorer.load(args.model)
    res = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
           "commit": _commit(), "model_id": scorer.model_id, "comparator": COMPARATOR, "master": args.master,
           "partitions": args.partitions, "runs": []}
    spark = None
    if "spark" in args.engines:
        t = time.perf_counter()
        spark = spark_session(args.master, args.partitions)
        res["spark_version"] = spark.version
        res["spark_start_s"] = round(time.perf_counter() - t, 1)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        if spark is not None:  # warm-up: Python workers, artifact shipping and verification
            src, _ = write_patients(1000, tmp)
            t = time.perf_counter()
            run_spark(spark, args.model, scorer, src, tmp / "warm")
            res["spark_warmup_s"] = round(time.perf_counter() - t, 1)
        for n in args.rows:
            src, gen_s = write_patients(n, tmp)
            row = {"rows": n, "generate_s": round(gen_s, 1)}
            for eng in args.engines:
                before = _load()
                if eng == "pandas":
                    secs = run_pandas(scorer, src, tmp / f"pandas_{n}.parquet")
                else:
                    secs, written, bad = run_spark(spark, args.model, scorer, src, tmp / f"spark_{n}")
                    assert written == n and bad == 0, (written, bad)
                row[eng] = {"seconds": round(secs, 1), "rows_per_s": round(n / secs), "load_before": before,
                            "load_after": _load()}
                print(f"{n:>10,} rows  {eng:<6} {secs:8.1f} s  {n / secs:9,.0f} rows/s  load {before} -> {_load()}",
                      flush=True)
            if set(args.engines) == {"pandas", "spark"}:
                row["max_abs_diff_sample"] = compare(tmp / f"pandas_{n}.parquet", tmp / f"spark_{n}",
                                                     scorer.output_columns())
            res["runs"].append(row)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(res, indent=1) + "\n")
    if spark is not None:
        spark.stop()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
