"""New-trial PI coverage by distance band under other widening rules, from ``bench_learners.py --dump-new``.

For the ``selected`` model's dumped new-trial PIs (``<model>:benefit_vs_<c>_pi_low/high``, widened by the
model's factor ``<model>:support_factor``; ratio d / d_cut ``<model>:support_ratio``), the unwidened half-width is
the dumped one divided by the factor (the PI is symmetric where not clipped at +-100); each rule
``sqrt(1 + kappa max(0, rho - 1)^2)`` (kappa on a grid) and the stated ``max(1, rho)^2`` then give the coverage of
each participant's class-specific truth, per band of rho (1-1.5, > 1.5). Offline: no refits, same points.

Usage::

    python benchmarks/diag_widening_grid.py DUMP_DIR --out benchmarks/results/x.csv [--kappas 0 4 16 64 256]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def coverage(d: pd.DataFrame, model: str, kappa) -> dict:
    d = d[d["ok"]]
    rho = d[f"{model}:support_ratio"].to_numpy()
    fs = d[f"{model}:support_factor"].to_numpy()
    pre, suf = f"{model}:benefit_vs_", "_pi_low"
    comps = [c[len(pre):-len(suf)] for c in d.columns if c.startswith(pre) and c.endswith(suf)]
    hits, rr = [], []
    for c in comps:
        if f"benefit_vs_{c}" not in d:
            continue
        has = d.groupby("trial")["treatment"].transform(lambda s, c=c: (s == c).any()).to_numpy()
        lo, hi = d[f"{pre}{c}_pi_low"].to_numpy(), d[f"{pre}{c}_pi_high"].to_numpy()
        mid, half = (lo + hi) / 2, (hi - lo) / 2 / fs
        fac = fs if kappa == "stated" else np.sqrt(1 + float(kappa) * np.maximum(rho - 1, 0) ** 2)
        hits.append((np.abs(d[f"benefit_vs_{c}"].to_numpy() - mid) <= fac * half)[has])
        rr.append(rho[has])
    h, r = np.concatenate(hits), np.concatenate(rr)
    out = {}
    for name, m in (("1-1.5", (r > 1) & (r <= 1.5)), (">1.5", r > 1.5)):
        out[f"coverage_{name}"] = float(h[m].mean()) if m.any() else np.nan
        out[f"share_{name}"] = float(m.mean())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="selected")
    ap.add_argument("--kappas", nargs="*", type=float, default=[0, 4, 16, 64, 256])
    a = ap.parse_args(argv)
    rows = []
    for f in sorted(Path(a.dump).glob("new_*.csv.gz")):
        d = pd.read_csv(f)
        if f"{a.model}:support_ratio" not in d:
            continue
        for k in list(a.kappas) + ["stated"]:
            rows.append({"file": f.name, "rule": "max(1, rho)^2" if k == "stated" else f"kappa={k:g}",
                         **coverage(d, a.model, k)})
    out = pd.DataFrame(rows)
    out.to_csv(a.out, index=False)
    print(out.round(3).to_string())


if __name__ == "__main__":
    main()
