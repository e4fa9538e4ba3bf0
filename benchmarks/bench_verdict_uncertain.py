"""How often the verdict's "uncertain" state (predict/verdict.py) fires on the training population
of the default data, ordinary vs beyond-support ("rare") patients, per comparator, at the adopted
plausibility cut (10%) and at 20% and 25% for comparison; and the 93-year-old with BMI 47.

    PYTHONPATH=. python benchmarks/bench_verdict_uncertain.py ARTIFACT OUT.csv [--seed 1]

ARTIFACT: a default model's artifact (``lbp-benefit demo`` / ``train`` on hayden2020 seed 1).
Patients: the simulator's complete covariates and baselines of the same seed (those with both
baselines), scored against every comparator. Writes a summary CSV (cut x comparator x rare).
"""
from __future__ import annotations

import argparse

import pandas as pd

from predict import Scorer
from predict import verdict as V
from training.simulate.generator import simulate_dataset

CUTS = (0.10, 0.20, 0.25)
OLD = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 93, "bmi": 47}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    sc = Scorer.load(a.artifact)
    r = sc.score([OLD], "usual_care")[0]
    for k, o in r["outcomes"].items():
        v = o.get("verdict")
        if v:
            b = o["benefit"]
            print(f"93-year-old vs usual care {k}: {b['estimate']:+.1f} PI {b['prediction_interval'][0]:.1f} to "
                  f"{b['prediction_interval'][1]:.1f}; {v['level']} P(benefit>T) {v['probability']:.2f} "
                  f"P(benefit<-T) {v['probability_harm']:.2f} confidence {v['confidence']}")
    P = simulate_dataset("hayden2020", seed=a.seed).complete
    cols = [c for c in list(sc.schema.names) + ["baseline_pain", "baseline_function"] if c in P.columns]
    X = P[cols].dropna(subset=["baseline_pain", "baseline_function"]).reset_index(drop=True)
    rows = []
    for comp in sc.comparators:
        for r in sc.score(X, comp):
            rare = any(w.startswith(V.RARE_PATIENT) for w in r["warnings"])
            for k, o in r["outcomes"].items():
                v = o.get("verdict")
                if v:
                    rows.append((comp, k, rare, v["threshold"], v["probability"], v["probability_harm"]))
    df = pd.DataFrame(rows, columns=["comparator", "task", "rare", "threshold", "p", "p_harm"])
    out = []
    for c in CUTS:
        u = (df.p >= c) & (df.p_harm >= c)
        g = (df.assign(uncertain=u).groupby(["comparator", "rare"])
             .agg(verdicts=("p", "size"), uncertain=("uncertain", "sum"),
                  median_threshold_uncertain=("threshold", lambda t: t[u.loc[t.index]].median()))
             .reset_index())
        g.insert(0, "plausible_cut", c)
        out.append(g)
        print(f"cut {c:.2f}: uncertain {int((u & ~df.rare).sum())}/{int((~df.rare).sum())} ordinary, "
              f"{int((u & df.rare).sum())}/{int(df.rare.sum())} beyond support")
    pd.concat(out).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
