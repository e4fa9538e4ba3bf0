"""Regenerate the small synthetic example dataset shipped in training/example_data/.

Four trials, 92 participants, every built-in instrument family, systematic and sporadic
missing covariates, missed baselines and follow-ups. Synthetic: for demos and tests only.
Run: .venv/bin/python scripts/make_example_data.py
"""
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from training.config import load_config
from training.instruments import BUILTIN

OUT = Path(__file__).resolve().parents[1] / "training" / "example_data"
TRIALS = [  # id, arms, n, pain instrument, function instrument, weeks measured
    ("T01", ["exercise", "usual_care"], 24, "vas_0_100", "rmdq_0_24", [0, 12, 26, 52]),
    ("T02", ["exercise", "exercise", "other_conservative"], 30, "nrs_0_10", "odi_0_100", [0, 8, 24]),
    ("T03", ["exercise", "no_treatment"], 20, "vas_0_10", "odi_0_50", [0, 13]),
    ("T04", ["exercise", "exercise"], 18, "nrs_0_10", "qbpds_0_100", [0, 10, 30, 52]),
]
IMPROVEMENT = {"exercise": 20.0, "usual_care": 9.0, "no_treatment": 6.0, "other_conservative": 17.0}


def main() -> None:
    rng = np.random.default_rng(20261121)
    P, O = [], []
    for t, (tid, arms, n, pin, fin, weeks) in enumerate(TRIALS):
        labels = [f"{a}_{i + 1}" if arms.count(a) > 1 else a for i, a in enumerate(arms)]
        for i in range(n):
            k = i % len(arms)
            trt = arms[k]
            maybe = lambda p, v: v if rng.random() < p else ""  # noqa: E731
            P.append(dict(
                trial=tid, participant=str(i + 1), arm=labels[k], treatment=trt,
                subtype="manual_therapy" if trt == "other_conservative" else "",
                age=int(rng.integers(22, 70)), female=int(rng.random() < 0.55),
                education_beyond_high_school=int(rng.random() < 0.5) if t != 2 else "",
                current_smoker=int(rng.random() < 0.3), physically_active=int(rng.random() < 0.5) if t < 2 else "",
                bmi=maybe(0.8, round(float(rng.normal(26.3, 4)), 1)), lbp_history="",
                employed=int(rng.random() < 0.6), sick_leave_12m=int(rng.random() < 0.5) if t == 0 else "",
                heavy_physical_work=int(rng.random() < 0.35) if t in (0, 3) else "",
                general_health=int(rng.integers(20, 95)) if t != 1 else "", mental_health="",
                fear_avoidance=int(rng.integers(5, 90)) if t in (1, 2) else "",
                social_support=int(rng.random() < 0.7) if t == 1 else "",
                episode_months=maybe(0.7, int(rng.integers(4, 120))),
                leg_pain=int(rng.random() < 0.5), lbp_medication=int(rng.random() < 0.4)))
            bp = float(np.clip(rng.normal(55, 15), 10, 95))
            bf = float(np.clip(rng.normal(40, 15), 5, 90))
            for w in weeks:
                if (w > 0 and rng.random() < 0.12) or (w == 0 and rng.random() < 0.03):
                    continue  # a missed visit
                drop = 0.0 if w == 0 else IMPROVEMENT[trt]
                p = np.clip(bp - drop + (rng.normal(0, 12) if w else 0), 0, 100)
                f = np.clip(bf - 0.8 * drop + (rng.normal(0, 10) if w else 0), 0, 100)
                pv = float(BUILTIN[pin].from_0_100(p))
                O.append(dict(trial=tid, participant=str(i + 1), outcome="pain", instrument=pin, week=w,
                              value=f"{round(pv) if pin == 'vas_0_100' else round(pv, 1):g}"))
                O.append(dict(trial=tid, participant=str(i + 1), outcome="function", instrument=fin, week=w,
                              value=str(int(round(float(BUILTIN[fin].from_0_100(f)))))))
    pd.DataFrame(P).to_csv(OUT / "participants.csv", index=False)
    pd.DataFrame(O).to_csv(OUT / "outcomes.csv", index=False)
    raw = load_config().raw
    (OUT / "study.yaml").write_text("# Study config of the shipped synthetic example dataset (the default LBP config).\n"
                                    + yaml.safe_dump(raw, sort_keys=False), "utf-8")
    print(f"wrote {len(P)} participants, {len(O)} outcome rows to {OUT}")


if __name__ == "__main__":
    main()
