"""The outside simulator (benchmarks/outside/simulate_outside.py): deterministic, its truth right."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("simulate_outside", ROOT / "benchmarks/outside/simulate_outside.py")
so = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(so)


def test_clipped_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu = np.array([-10.0, 5.0, 50.0, 95.0, 120.0])
    e = rng.standard_normal((400_000, 1)) * 16
    mc = np.clip(mu + e, 0, 100).mean(0)
    assert np.allclose(so.clipped_mean(mu, 16.0), mc, atol=0.1)


def test_deterministic_and_in_the_data_format():
    a, _ = so.simulate(3, n_trials=8, new_n=40, mc_draws=50)
    b, _ = so.simulate(3, n_trials=8, new_n=40, mc_draws=50)
    for k in ("train", "new"):
        for x, y in zip(a[k], b[k]):
            pd.testing.assert_frame_equal(x, y)
    part, out, truth = a["train"]
    assert not part.duplicated(["trial", "participant"]).any()
    assert set(part.treatment) <= {"exercise", *so.CLASS_BASE_PAIN}
    assert set(out.instrument) <= {*so.PAIN_INSTR, *so.FUNC_INSTR}
    assert out.value.notna().all() and (out.value >= 0).all()
    assert set(truth.kind) == {"trial", "avg"} and truth.truth.notna().all()


def test_truth_is_the_mean_observed_difference():
    """In a big two-arm trial the arm difference in short-term pain estimates the mean trial truth."""
    rng = np.random.default_rng(5)
    d = so._case_mix(rng, "BIG", 20_000, ["usual_care"], age=45, bmi=26.5, p_heavy=0.25, fear=45,
                     all_measured=True)
    d["dropout"] = False
    part, out, truth = so.simulate_trial(rng, d, mc_draws=20)
    short = out[(out.outcome == "pain") & (out.week > 0) & (out.week < 20)]
    v = short.set_index("participant").value * so.PAIN_INSTR[d["pain_instr"]]
    arm = part.set_index("participant").treatment.reindex(v.index)
    t = truth[(truth.outcome == "pain") & (truth.kind == "trial")].truth.mean()
    diff = v[arm != "exercise"].mean() - v[arm == "exercise"].mean()
    assert abs(diff - t) < 0.8, (diff, t)      # SE of the difference about 0.25
