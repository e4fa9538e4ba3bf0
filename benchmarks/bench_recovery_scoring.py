"""Who gets a recovery prediction: the requirement that follows recovery's definition (``combine: any``:
at least one of its baselines, predict/required_inputs.py) vs the old rule (every baseline), on
simulated data with the simulator's truth (issue 23).

Per scenario: train the recovery tasks (every window; default learners, IECV at short term, no
network model) on ``simulate --scenario S --seed SEED`` and score that dataset (fitted participants)
and new trials of the same design (seed + 10000) with ``validate``'s own per-task scoring
(:func:`training.validate.data.build_tasks`), once with the rule as exported and once with the rule
of artifacts built before it (no stored definition: every baseline). Per window and data: rows with
the outcome, not scored before / after, newly scored; and for the newly scored (a baseline imputed)
vs the rest: the new-setting PI's coverage of the participant's trial-specific true benefit vs their
trial's comparator class (the PI's estimand), the benefit's mean error and RMS error against that
truth, and calibration of the own-arm probability (observed recovery minus mean predicted, with a
95% binomial interval). The CI is not scored here: its estimand (the average trial) is not the truth
these files carry (bench_learners scores it).

Usage: PYTHONPATH=. python benchmarks/bench_recovery_scoring.py --scenarios none hayden2020 --seed 1
  --out benchmarks/results/recovery_scoring_i23b.csv
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbp_benefit.blas import pin_blas_kernels  # noqa: E402

pin_blas_kernels()


def _train(data: Path, root: Path, seed: int, workers: int) -> Path:
    from training.dataset import load_dataset
    from training.export_model import export_artifact
    from training.harmonise import harmonise
    from training.train import TrainSettings, run_training

    h = harmonise(load_dataset(data, None))
    h.analysis = h.analysis[h.analysis["outcome"] == h.config.recovery_name].reset_index(drop=True)
    run_training(h.analysis, h.config, root / "run", TrainSettings(seed=seed, workers=workers, network=False),
                 synthetic=True)
    return export_artifact(root / "run", root / "artifact", h)


def _legacy(scorer):
    """The same model with the rule of artifacts written before the definition was stored."""
    from predict.required_inputs import DEFINITION_KEY

    old = copy.copy(scorer)
    old.outcome_definitions = {o: {k: v for k, v in d.items() if k != DEFINITION_KEY}
                               for o, d in scorer.outcome_definitions.items()}
    return old


def _binom_ci(k: float, n: int) -> tuple[float, float]:
    if n == 0:
        return (np.nan, np.nan)
    p = k / n
    se = np.sqrt(max(p * (1 - p), 1e-12) / n)
    return (p - 1.96 * se, p + 1.96 * se)


def _group_stats(td, trial_classes: dict, rows: np.ndarray, active: str) -> dict:
    """PI coverage, error of the benefit vs the trial-specific truth (vs the trial's comparator
    classes), and own-arm calibration, over ``rows`` (boolean mask over td's rows)."""
    cover, err = [], []
    for i in np.flatnonzero(rows):
        for c in trial_classes.get(td.trial[i], ()):
            if c == active or c not in td.truth or c not in td.pi:
                continue
            t = td.truth[c][i]
            if not np.isfinite(t):
                continue
            lo, hi = td.pi[c][0][i], td.pi[c][1][i]
            cover.append(lo <= t <= hi)
            err.append(td.benefit[c][i] - t)
    y, p = td.y[rows], td.own_pred[rows]
    ok = np.isfinite(p)
    n = int(ok.sum())
    d = float(y[ok].mean() - p[ok].mean()) if n else np.nan
    se = float(np.sqrt(np.mean(p[ok] * (1 - p[ok])) / n)) if n else np.nan
    k = int(np.sum(cover))
    lo, hi = _binom_ci(k, len(cover))
    err = np.asarray(err)
    return {"n": int(rows.sum()), "pairs": len(cover), "pi_cover": k / len(cover) if cover else np.nan,
            "pi_cover_lo": lo, "pi_cover_hi": hi,
            "bias": float(err.mean()) if len(err) else np.nan,
            "bias_se": float(err.std(ddof=1) / np.sqrt(len(err))) if len(err) > 1 else np.nan,
            "rmse": float(np.sqrt(np.mean(err ** 2))) if len(err) else np.nan,
            "obs_minus_pred": d, "obs_minus_pred_lo": d - 1.96 * se, "obs_minus_pred_hi": d + 1.96 * se}


def run(scenario: str, seed: int, workers: int) -> list[dict]:
    from predict import Scorer
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.simulate import simulate_dataset
    from training.validate.data import build_tasks

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = {"fitted": tmp / "train", "new_trials": tmp / "new"}
        simulate_dataset(scenario, seed=seed).write(folders["fitted"])
        simulate_dataset(scenario, seed=seed + 10_000).write(folders["new_trials"])
        t0 = time.time()
        art = _train(folders["fitted"], tmp, seed, workers)
        print(f"{scenario}: trained in {time.time() - t0:.0f} s", flush=True)
        scorer = Scorer.load(art)
        old = _legacy(scorer)
        active = scorer.manifest["active"]
        for what, folder in folders.items():
            h = harmonise(load_dataset(folder, None))
            tcls = h.baselines.groupby("trial")["treatment"].agg(lambda s: sorted(set(map(str, s)))).to_dict()
            tasks, notes = build_tasks(h, scorer, active, folder)
            _, old_notes = build_tasks(h, old, active, folder)
            for td in tasks:
                a = h.analysis[(h.analysis["outcome"] == td.outcome) & (h.analysis["follow_up"] == td.follow_up)]
                n_rows = len(a)
                unscored_after = sum(e["participants"] for e in notes["excluded"][td.task])
                unscored_before = sum(e["participants"] for e in old_notes["excluded"][td.task])
                new = td.imputed_baseline.astype(bool)
                base = {"scenario": scenario, "seed": seed, "data": what, "task": td.task, "rows": n_rows,
                        "unscored_before": unscored_before, "unscored_after": unscored_after,
                        "scored_after": len(td.y),
                        "imputed_baselines": json.dumps(notes["imputed_baseline"][td.task])}
                for group, mask in (("newly_scored", new), ("rest", ~new), ("all", np.ones(len(new), bool))):
                    out.append({**base, "group": group, **_group_stats(td, tcls, mask, active)})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["none", "hayden2020"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recovery_scoring_i23b.csv"))
    a = ap.parse_args(argv)
    rows = []
    for s in a.scenarios:
        rows += run(s, a.seed, a.workers)
        pd.DataFrame(rows).to_csv(a.out, index=False)
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.drop(columns=["imputed_baselines"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
