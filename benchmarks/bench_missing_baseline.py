"""Should a continuous outcome's prediction refuse a patient without their own baseline? (issue 23, i23u)

On the outside simulator's data (benchmarks/outside/simulate_outside.py, written blind; a model
trained on it by `lbp-benefit train` with the default config, e.g. by benchmarks/outside/
bench_outside.py), the pain and function benefit of patients *lacking their own baseline*, scored
with that baseline imputed by the runtime (no sampling: the expected basis and the conditional
draws' variance, as for any missing input), against the known truth:

  lacking     the patients whose record lacks the outcome's baseline (systematically missing: the
              trials that never measured function, or at random), scored with it imputed
  masked      the complete patients with their own baseline removed (imputed), the same rows as
  given       the same patients scored as today (their baseline given)
  other_lacking  the patients who have the outcome's baseline but lack the *other* one (scored today:
              the rows per-outcome partial scoring now scores by default)
  other_masked   the masked set's patients with the other baseline removed instead of their own
  oracle_mean a perfect average-effect model (the true class means of the training truth), on
              each of those row sets

Metrics per row set (benefit, points; > 0 favours exercise), 95% bootstrap intervals over trials
(fitted participants) or participants (new trial), as bench_outside.metrics: root PEHE vs the
trial-specific truth and vs the average-trial truth, bias, 95% CI coverage of the average-trial
truth, 95% PI coverage of the trial-specific truth; mean PI width.

The runtime's rule is relaxed for this measurement only (the scorer instance asked to require no
baseline); the scoring itself is the shipped code.

    python benchmarks/bench_missing_baseline.py --root /tmp/outside --seeds 1 2 --tag i23u
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "outside"))
import bench_outside as bo  # noqa: E402

from predict import Scorer  # noqa: E402
from predict.required_inputs import Requirement  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
KEY = ["trial", "participant", "comparator"]
OUTCOMES = {"pain": "pain_short_benefit", "function": "function_short_benefit"}


def score(scorer: Scorer, rows: pd.DataFrame, outcome: str, col: str, relaxed: bool) -> pd.DataFrame:
    """Per row: pred, lo, hi, plo, phi of ``outcome``'s short-term benefit vs the row's comparator."""
    cols = [c for c in rows.columns if c in set(scorer.schema.names) | set(scorer.baselines)]
    out = pd.DataFrame(index=rows.index, columns=["pred", "lo", "hi", "plo", "phi"], dtype=float)
    if relaxed:
        scorer.requirement = lambda outcomes=None: Requirement()  # this measurement only
    try:
        for c, sub in rows.groupby("comparator"):
            s = scorer.score_table(sub[cols].reset_index(drop=True), c, [outcome], details=False)
            for k, sfx in zip(out.columns, ("", "_low", "_high", "_pi_low", "_pi_high")):
                out.loc[sub.index, k] = s[col + sfx].to_numpy()
    finally:
        if relaxed:
            del scorer.requirement
    return out


def paired_ratio(df: pd.DataFrame, oracle: np.ndarray, by_trial: bool, rng, n_boot: int = 400) -> dict:
    """Root PEHE (vs the trial-specific truth) of the model / the oracle average-effect model on the
    same rows, with a paired 95% bootstrap interval (trials resampled, or participants)."""
    e1 = (df.pred.to_numpy(float) - df.t_trial.to_numpy()) ** 2
    e2 = (oracle - df.t_trial.to_numpy()) ** 2
    keys, inv = np.unique(df.trial.to_numpy() if by_trial else np.arange(len(df)), return_inverse=True)
    s1, s2 = np.bincount(inv, e1), np.bincount(inv, e2)
    b = rng.integers(0, len(keys), (n_boot, len(keys)))
    boot = np.sqrt(s1[b].sum(1) / s2[b].sum(1))
    return {"ratio_vs_oracle": float(np.sqrt(e1.sum() / e2.sum())), "ratio_lo": float(np.percentile(boot, 2.5)),
            "ratio_hi": float(np.percentile(boot, 97.5))}


def one_seed(d: Path, seed: int, mask_share: float) -> list[dict]:
    scorer = Scorer.load(d / "run" / "artifact")
    truth = {k: pd.read_csv(d / "truth" / f"{k}_truth.csv", dtype={"participant": str}) for k in ("train", "new")}
    tabs = {"fitted": bo.pairs(bo.harmonised_table(d / "train")), "new": bo.pairs(bo.harmonised_table(d / "new"))}
    rng = np.random.default_rng(seed)
    recs = []
    for outcome, col in OUTCOMES.items():
        t_name = outcome
        tr0 = truth["train"]
        class_mean = tr0[(tr0.outcome == t_name) & (tr0.kind == "trial")].groupby("comparator").truth.mean()
        for target, rows in tabs.items():
            tt = truth["train" if target == "fitted" else "new"]
            tt = tt[tt.outcome == t_name].assign(kind=lambda t: "t_" + t.kind) \
                .pivot_table(index=KEY, columns="kind", values="truth").reset_index()
            rows = rows.merge(tt, on=KEY, how="left").reset_index(drop=True)
            base = f"baseline_{outcome}"
            lack = rows[base].isna().to_numpy()
            # complete rows: a random share (whole participants) masked, the rest as a check of equality
            part = rows.trial + "\x1f" + rows.participant
            ids = part[~lack].unique()
            pick = set(rng.choice(ids, int(round(mask_share * len(ids))), replace=False))
            masked = ~lack & part.isin(pick).to_numpy()
            other = "baseline_function" if outcome == "pain" else "baseline_pain"
            sets = {"lacking": lack, "given": masked, "masked": masked,
                    "other_lacking": ~lack & rows[other].isna().to_numpy(),
                    "other_masked": masked & rows[other].notna().to_numpy()}
            for name, sel in sets.items():
                if not sel.any():
                    continue
                sub = rows[sel].copy()
                if name == "masked":
                    sub[base] = np.nan
                if name == "other_masked":
                    sub[other] = np.nan
                p = score(scorer, sub, outcome, col, relaxed=name in ("lacking", "masked"))
                df = sub[["trial", "t_trial", "t_avg"]].join(p)
                oracle = sub.comparator.map(class_mean).to_numpy()
                ratio = paired_ratio(df, oracle, target == "fitted", rng)
                for learner, d_ in (("lbp_benefit", df),
                                    ("oracle_class_mean", df.assign(pred=oracle,
                                                                    lo=np.nan, hi=np.nan, plo=np.nan, phi=np.nan))):
                    r = bo.metrics(d_.astype({"pred": float}), "trial" if target == "fitted" else None, rng, n_boot=400)
                    recs.append({"seed": seed, "outcome": outcome, "target": target, "rows": name, "learner": learner,
                                 "n": int(sel.sum()), "trials": int(sub.trial.nunique()),
                                 "pi_width": float((d_.phi - d_.plo).mean()) if learner == "lbp_benefit" else np.nan,
                                 "ci_width": float((d_.hi - d_.lo).mean()) if learner == "lbp_benefit" else np.nan,
                                 **(ratio if learner == "lbp_benefit" else {}), **r})
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="bench_outside's --out (seed<k>/run/artifact, truth/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mask-share", type=float, default=0.3, help="share of complete participants masked")
    ap.add_argument("--tag", default="i23u")
    a = ap.parse_args(argv)
    recs = []
    for s in a.seeds:
        recs += one_seed(a.root / f"seed{s}", s, a.mask_share)
        df = pd.DataFrame(recs)
        RESULTS.mkdir(parents=True, exist_ok=True)
        df.to_csv(RESULTS / f"missing_baseline_{a.tag}.csv", index=False, float_format="%.4f")
        print(df[["seed", "outcome", "target", "rows", "learner", "n", "trials", "pehe_trial", "pehe_trial_lo",
                  "pehe_trial_hi", "ratio_vs_oracle", "ratio_lo", "ratio_hi", "bias", "cov_ci", "cov_pi", "pi_width"]].to_string(float_format="%.3f"),
              flush=True)


if __name__ == "__main__":
    main()
