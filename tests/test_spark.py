"""Spark batch scoring (predict/spark.py, `lbp-benefit score --engine spark`) in local[2] mode:
equal to the in-process scorer row for row (missing and invalid inputs included), deterministic
whatever the input partitioning, artifact hashes verified on the executors."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start; "
                "scripts/install_system_deps.sh installs one", allow_module_level=True)

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from predict import Scorer, ValidationFailed  # noqa: E402
from predict import spark as sp  # noqa: E402
from predict.artifact import ArtifactError  # noqa: E402
from tests._small_model import small_model  # noqa: E402

COMP = "usual_care"
N = 3000
# (row, column, value): each makes its row fail validation; row 7 fails twice.
BAD = [(3, "baseline_pain", 140.0), (7, "baseline_function", np.nan), (7, "age", 5.0), (11, "female", 2.0),
       (19, "bmi", np.inf), (23, "baseline_pain", np.nan), (2999, "episode_months", -1.0)]


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    s = (SparkSession.builder.master("local[2]").appName("lbp-test-spark")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "3")
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "700")
         .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
         .config("spark.ui.showConsoleProgress", "false").config("spark.sql.adaptive.enabled", "false")
         .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(small_model().artifact)


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    """Simulated patients with ids; every 8th with ~25% of its covariates missing; the BAD rows."""
    from training.simulate import generate_population

    df = generate_population(N, seed=11)
    rng = np.random.default_rng(3)
    covs = [c for c in df.columns if not c.startswith("baseline_")]
    holes = (rng.random((N, len(covs))) < 0.25) & (np.arange(N) % 8 == 0)[:, None]
    df[covs] = df[covs].astype(float).mask(holes)
    df["female"] = df["female"].astype("Int64")  # an integer column with nulls
    for i, col, v in BAD:
        df.loc[i, col] = v
    df.insert(0, "trial", np.where(np.arange(N) % 2, "T1", "T2"))
    df.insert(1, "participant", [f"p{i:05d}" for i in range(N)])
    return df


def _expected_errors(scorer, inputs: pd.DataFrame) -> dict[int, str]:
    with pytest.raises(ValidationFailed) as exc:
        scorer.validate(inputs)
    out: dict[int, list[str]] = {}
    for p in exc.value.problems:
        out.setdefault(p.row, []).append(f"[{p.code}] {p.column}: {p.message}")
    return {i: "; ".join(v) for i, v in out.items()}


def test_equal_to_in_process_row_for_row(spark, scorer, patients):
    sdf = spark.createDataFrame(patients).repartition(4)
    out = sp.score_spark(sdf, small_model().artifact, COMP, scorer=scorer).toPandas()
    assert len(out) == N and out["participant"].is_unique  # nothing dropped, nothing doubled
    expected_cols = ["trial", "participant"] + scorer.table_columns() + ["missing", "warnings", "not_predicted",
                                                                           "error"]
    assert list(out.columns) == expected_cols
    out = out.set_index("participant").loc[patients["participant"]].reset_index()
    inputs = patients.drop(columns=["trial", "participant"])
    errors = _expected_errors(scorer, inputs)
    assert sorted(errors) == sorted({i for i, _, _ in BAD})
    # row 23 lacks only baseline_pain: scored for function and recovery as alone (issue 23, i23u)
    assert out.at[23, "not_predicted"] == "pain: no baseline_pain (required)" and pd.isna(out.at[23, "error"])
    alone = scorer.score_table(inputs.iloc[[23]], COMP, ["function", "global_recovery"])
    for c in alone.columns:
        if pd.api.types.is_numeric_dtype(alone[c]):
            assert out.at[23, c] == pytest.approx(alone[c].iat[0], rel=0, abs=1e-9), c
    assert out.loc[[23], scorer.table_columns(["pain"])].isna().all().all()  # its verdict columns too
    for c in scorer.table_columns(["function"]):  # the verdict of the outcome it allows, as scored alone
        assert out.at[23, c] == alone[c].iat[0] or out.at[23, c] == pytest.approx(alone[c].iat[0], rel=0, abs=1e-9), c
    errors.pop(23)
    assert out["not_predicted"].notna().sum() == len(errors) + 1
    has_err = out["error"].notna()
    assert {i: out.at[i, "error"] for i in np.flatnonzero(has_err)} == errors
    bad = out.index.isin(list(errors))
    assert out.loc[bad, scorer.table_columns() + ["missing", "warnings"]].isna().all().all()
    ok = ~bad & (out.index != 23)
    ref = scorer.score_table(inputs[ok].reset_index(drop=True), COMP)
    got = out[ok].reset_index(drop=True)
    assert (got["trial"] == patients.loc[ok, "trial"].to_numpy()).all()
    for c in scorer.table_columns():
        if pd.api.types.is_numeric_dtype(ref[c]):
            np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=0, atol=1e-9, err_msg=c)
        else:  # the verdict and its confidence, as text
            assert (got[c].fillna("") == ref[c].fillna("")).all(), c
    assert got["pain_short_verdict"].notna().all()
    assert (got["missing"] == ref["missing"]).all() and (got["warnings"] == ref["warnings"]).all()
    assert ref["missing"].str.len().gt(0).sum() > 300  # the missing-data path was exercised


def test_explain_and_row_index_without_ids(spark, scorer, patients):
    head = patients.head(400).drop(columns=["trial", "participant"])
    sdf = spark.createDataFrame(head).coalesce(2)  # age as a warehouse DECIMAL column (read as double)
    sdf = sdf.withColumn("age", F.when(~F.isnan("age"), F.col("age").cast("decimal(5,1)")))
    out = sp.score_spark(sdf, small_model().artifact, COMP, ["pain"], explain=True, partitions=2,
                         scorer=scorer).toPandas().sort_values("row_index")
    assert out["row_index"].tolist() == list(range(400))
    ok = out["error"].isna().to_numpy()
    ref = scorer.score_table(head[ok].reset_index(drop=True), COMP, ["pain"], explain=True)
    assert list(out.columns) == ["row_index"] + list(ref.columns) + ["not_predicted", "error"]
    got = out[ok].reset_index(drop=True)
    for c in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[c]):
            np.testing.assert_allclose(got[c].to_numpy(float), ref[c].to_numpy(float), rtol=0, atol=1e-9, err_msg=c)
        else:
            assert (got[c] == ref[c]).all(), c


def test_same_output_whatever_the_input_partitioning(spark, scorer, patients):
    base = spark.createDataFrame(patients.head(1200))

    def run(df):
        out = sp.score_spark(df, small_model().artifact, COMP, partitions=3, scorer=scorer)
        return out.withColumn("_part", F.spark_partition_id()).toPandas()

    one = run(base.coalesce(1))
    many = run(base.repartition(7))  # round-robin: rows arrive in another order and other batches
    assert one["_part"].nunique() == 3
    pd.testing.assert_frame_equal(one, many, check_exact=True)
    for _, part in one.groupby("_part", sort=True):
        keys = list(zip(part["trial"], part["participant"]))
        assert keys == sorted(keys)


def test_executors_verify_the_artifact(spark, scorer, tmp_path):
    staged = sp.stage_artifact(scorer, tmp_path)
    assert sp.stage_artifact(scorer, tmp_path).read_bytes() == staged.read_bytes()  # deterministic, reused
    shipped = sp.Shipped(staged.name, scorer.model_id, sp.manifest_digest(scorer.manifest))
    assert sp.load_verified(staged, shipped).model_id == scorer.model_id
    with pytest.raises(ArtifactError, match="not the artifact the driver shipped"):
        sp.load_verified(staged, sp.Shipped(staged.name, scorer.model_id, "0" * 64))
    tampered = tmp_path / f"tampered-{scorer.model_id}.zip"
    with zipfile.ZipFile(staged) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data + b"\n" if name.startswith("model/pain__short/") else data)
    spark.sparkContext.addFile(str(tampered))
    bad = sp.Shipped(tampered.name, shipped.model_id, shipped.manifest_sha256)
    with pytest.raises(Exception, match="does not match its SHA-256"):  # raised in the executor's worker
        spark.sparkContext.parallelize([0], 1).map(lambda _: sp.executor_scorer(bad).model_id).collect()


def test_driver_refuses_bad_requests(spark, scorer, patients):
    sdf = spark.createDataFrame(patients.head(10))
    with pytest.raises(ValidationFailed):
        sp.score_spark(sdf, small_model().artifact, "surgery", scorer=scorer)
    with pytest.raises(sp.LbpError, match="unknown column"):
        sp.score_spark(sdf.withColumn("postcode", F.lit("X1")), small_model().artifact, COMP, scorer=scorer)
    with pytest.raises(sp.LbpError, match="key column"):
        sp.score_spark(sdf, small_model().artifact, COMP, key=["patient_id"], scorer=scorer)


def test_cli_engine_spark_parquet_and_table(spark, scorer, patients, tmp_path):
    from lbp_benefit.cmd_score import score
    from tests.test_score_cli import _run

    art = str(small_model().artifact)
    src = tmp_path / "patients.parquet"
    spark.createDataFrame(patients.head(60)).write.parquet(str(src))
    spark.createDataFrame(patients.head(60)).createOrReplaceTempView("lbp_patients")
    for source, out in ((str(src), tmp_path / "scores"), ("lbp_patients", tmp_path / "scores_table")):
        r = _run(score, "score", ["--model", art, "--input", source, "--comparator", COMP, "--output", str(out),
                                  "--engine", "spark"])
        assert r.exit_code == 0, r.output + repr(r.exception)
        assert "55 fully, 1 partly" in r.output and "4 row(s) could not be scored" in r.output
        res = pd.read_parquet(out)
        assert len(res) == 60 and res["error"].notna().sum() == 4 and res["not_predicted"].notna().sum() == 5
        # a synthetic model's file: first column 'synthetic', true on every row, the label in its metadata
        assert list(res.columns) == ["synthetic", "trial", "participant"] + scorer.table_columns() + \
            ["missing", "warnings", "not_predicted", "error"]
        assert res["synthetic"].all()
        field = spark.read.parquet(str(out)).schema["synthetic"]
        assert field.metadata["label"] == "SYNTHETIC DATA \u2014 NOT FOR CLINICAL USE"
    csv = tmp_path / "p.csv"
    patients.head(3).to_csv(csv, index=False)
    r = _run(score, "score", ["--model", art, "--input", str(csv), "--comparator", COMP, "--output",
                              str(tmp_path / "o"), "--engine", "spark"])
    assert isinstance(r.exception, sp.LbpError) and "not CSV" in str(r.exception)
    assert spark.sparkContext._jsc is not None  # the CLI left the caller's session running


def test_core_import_does_not_need_pyspark():
    code = ("import sys; import predict, predict.spark, lbp_benefit.cmd_score; "
            "assert not [m for m in sys.modules if m.startswith(('pyspark', 'py4j'))]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_score_batch_all_invalid_and_empty(scorer, patients):
    cols = sp.probe_columns(scorer, COMP, None, explain=True, top=3, details=True)
    bad = patients.head(4).assign(baseline_pain=150.0)
    out = sp.score_batch(scorer, bad, COMP, carry=["trial", "participant"], columns=cols, explain=True)
    assert list(out.columns) == ["trial", "participant"] + [c for c, _ in cols] + ["not_predicted", "error"]
    assert out["error"].str.startswith("[out_of_range] baseline_pain: 150").all()
    assert out[[c for c, _ in cols]].isna().all().all() and (out["participant"] == bad["participant"].to_numpy()).all()
    empty = sp.score_batch(scorer, patients.head(0), COMP, carry=["trial", "participant"], columns=cols, explain=True)
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


def test_score_batch_recovery_needs_one_baseline(scorer, patients):
    """The Spark batch (score_batch) follows predict/required_inputs.py like the scorer: for recovery
    (combine: any) a row with one baseline is scored, its other baseline listed as missing; a row
    with neither fails with the reason; every row comes out."""
    cols = sp.probe_columns(scorer, COMP, ["global_recovery"], explain=False, top=3, details=True)
    rows = patients.iloc[[0, 1, 2, 4]].copy()
    rows.loc[rows.index[0], "baseline_function"] = np.nan
    rows.loc[rows.index[1], "baseline_pain"] = np.nan
    rows.loc[rows.index[2], ["baseline_pain", "baseline_function"]] = np.nan
    out = sp.score_batch(scorer, rows, COMP, ["global_recovery"], carry=["trial", "participant"], columns=cols)
    ard = [c for c, _ in cols if c.endswith("_ard")][0]
    assert out[ard].notna().tolist() == [True, True, False, True]
    assert out["error"].isna().tolist() == [True, True, False, True]
    assert "global_recovery needs" in out["error"].iat[2]
    assert "baseline_function" in out["missing"].iat[0] and "baseline_pain" in out["missing"].iat[1]


def test_keep_unknown_columns_and_warned_counts(spark, scorer, patients, tmp_path):
    """keep= carries an identifier unchanged (as `score --keep`); an unknown column is refused with
    the closest input name and the way to keep it, every problem at once; a key or kept model input
    is scored too. summary() counts the warned rows by kind like the CLI and the batch API (a
    recount of the written warnings with count_warnings)."""
    from lbp_benefit.cmd_score import score
    from predict.clinical_warnings import count_warnings
    from tests.test_score_cli import _run

    art = str(small_model().artifact)
    pdf = patients.head(40).copy()
    pdf.loc[pdf.index[:6], "age"] = 97.0  # accepted (18-100) but outside most training participants' ages
    pdf.insert(2, "MRN", [f"{i:06d}" for i in range(40)])
    sdf = spark.createDataFrame(pdf)
    with pytest.raises(ValidationFailed) as exc:
        sp.score_spark(sdf.withColumn("BMI", F.lit(30.0)), art, COMP, scorer=scorer)
    probs = {p.column: p.message for p in exc.value.errors}
    assert set(probs) == {"MRN", "BMI"}
    assert "did you mean 'bmi'?" in probs["BMI"] and "keep=['MRN']" in probs["MRN"]
    out = sp.score_spark(sdf, art, COMP, keep=["MRN", "age"], scorer=scorer).toPandas()
    assert list(out.columns[:4]) == ["trial", "participant", "MRN", "age"]
    out = out.set_index("participant").loc[pdf["participant"]]
    assert list(out["MRN"]) == list(pdf["MRN"])
    ref = scorer.score_table(pdf.drop(columns=["trial", "participant", "MRN"]).iloc[8:10], COMP)
    np.testing.assert_allclose(out[scorer.output_columns()].iloc[8:10].to_numpy(float),
                               ref[scorer.output_columns()].to_numpy(float), rtol=1e-12)
    src, dst = tmp_path / "in.parquet", tmp_path / "out"
    sdf.write.parquet(str(src))
    r = _run(score, "score", ["--model", art, "--input", str(src), "--comparator", COMP, "--output", str(dst),
                              "--engine", "spark", "--keep", "MRN"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    res = pd.read_parquet(dst)
    assert list(res["MRN"].sort_values()) == sorted(pdf["MRN"])
    ok = res[res["error"].isna()]
    want = count_warnings(t.split(" | ") if t else () for t in ok["warnings"])
    assert want["by_kind"].get("outside_training_range", 0) >= 6
    got = sp.summary(spark, dst)
    assert got["warned"] == want and got["rows"] == 40 and got["not_scored"] == res["error"].notna().sum()
    from predict.clinical_warnings import warned_text

    assert warned_text(want, "warnings") in r.output  # inputs and predictions (outside_scale) named apart
