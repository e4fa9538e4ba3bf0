"""The heterogeneity gate: a stack is kept only if it beats the average-effect model honestly."""
import numpy as np
import pytest
import pandas as pd

from training.learners.stack_gate import clustered_gain, cv_stack, heterogeneity_gate


def _pred(effect_mod: float, seed: int, n_trials: int = 12, n: int = 120) -> pd.DataFrame:
    """Held-out predictions of three learners on trials where the true benefit is 5 + effect_mod * x:
    'constant' (5), 'oracle' (the truth) and 'noise' (5 + unrelated noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_trials):
        x = rng.normal(size=n)
        treat = (np.arange(n) % 2).astype(float)
        benefit = 5 + effect_mod * x
        y = 50 + 3 * x + rng.normal(0, 10, n) - treat * benefit  # continuous: lower is better
        z = rng.normal(size=n)
        for name, b in (("constant", np.full(n, 5.0)), ("oracle", benefit), ("noise", 5 + 3 * z)):
            rows.append(pd.DataFrame({"learner": name, "row": np.arange(n) + t * n, "trial": f"T{t:02d}",
                                      "y": y, "treat": treat, "e": 0.5, "benefit": b}))
    return pd.concat(rows, ignore_index=True)


def test_gate_rejects_a_stack_without_heterogeneity_and_keeps_real_modification():
    kept_null = [heterogeneity_gate(_pred(0.0, s)[lambda d: d["learner"] != "oracle"], "continuous", seed=s)["keep_stack"]
                 for s in range(6)]
    assert sum(kept_null) <= 1  # noise-fitting stacks fail the gate
    g = heterogeneity_gate(_pred(6.0, 1), "continuous", seed=1)
    assert g["keep_stack"] and g["gain"] > 3 * g["se"] and "kept" in g["rule"]


def test_gate_without_reference_or_with_few_trials_is_not_applied():
    p = _pred(0.0, 2)
    assert heterogeneity_gate(p[p["learner"] != "constant"], "continuous")["keep_stack"]
    assert heterogeneity_gate(p[p["trial"].isin(["T00", "T01"])], "continuous")["keep_stack"]


def test_cv_stack_uses_weights_fitted_without_the_group():
    # two candidates; within each group of trials only one of them is right: out-of-group weights
    # must differ from the in-sample ones, so a row's stacked value is not the in-sample optimum
    p = _pred(6.0, 3)
    wide = p.pivot_table(index="row", columns="learner", values="benefit")
    info = p.drop_duplicates("row").set_index("row").loc[wide.index]
    B = wide[["constant", "oracle"]].to_numpy()
    trial = info["trial"].to_numpy()
    b = cv_stack(B, -info["y"].to_numpy(), info["treat"].to_numpy(), trial, info["e"].to_numpy(), n_groups=4)
    assert np.isfinite(b).all()
    # every stacked value lies between the two candidates (convex weights)
    lo, hi = B.min(1), B.max(1)
    assert np.all(b >= lo - 1e-9) and np.all(b <= hi + 1e-9)


def test_clustered_gain_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    cl = np.repeat(np.arange(8), 5)
    m, se = clustered_gain(a, b, cl)
    d = a - b
    sums = np.array([(d[cl == k] - d.mean()).sum() for k in range(8)])
    assert np.isclose(m, d.mean()) and np.isclose(se, np.sqrt((sums ** 2).sum() * 8 / 7) / 40)


def test_primary_model_gets_a_second_test_when_the_stack_fails():
    """Weak modification, several noise members: the cross-validated stack's honest gain is diluted by
    the noise members' weights; the effect model (here the truth) alone passes where the stack does
    not, and heterogeneity is then accepted. Without modification neither passes."""
    def pred(effect_mod, seed):
        p = _pred(effect_mod, seed, n_trials=10, n=80).replace({"learner": {"oracle": "effect_model"}})
        extra = []
        rng = np.random.default_rng(seed + 100)
        for k in range(8):
            q = p[p["learner"] == "noise"].copy()
            q["learner"] = f"noise{k}"
            q["benefit"] = 5 + 4 * rng.normal(size=len(q))
            extra.append(q)
        return pd.concat([p] + extra, ignore_index=True)

    rescued = 0
    for s in range(8):
        p = pred(2.5, s)
        old = heterogeneity_gate(p, "continuous", seed=s, primary=None)
        new = heterogeneity_gate(p, "continuous", seed=s)
        assert new["keep_stack"] >= old["keep_stack"]  # the second test only adds
        if new["keep_stack"] and not old["keep_stack"]:
            rescued += 1
            assert new["tested"] == "effect_model" and "effect_model alone" in new["rule"]
        elif not old["keep_stack"]:
            assert "not kept either" in new["rule"]
    assert rescued >= 1
    kept_null = [heterogeneity_gate(pred(0.0, s).assign(benefit=lambda d: np.where(
        d["learner"] == "effect_model", 5.0, d["benefit"])), "continuous", seed=s)["keep_stack"] for s in range(6)]
    assert sum(kept_null) <= 1


def _renamed(p: pd.DataFrame, names: dict) -> pd.DataFrame:
    return p.assign(learner=p["learner"].map(lambda k: names.get(k, k)))


def test_shrink_moves_a_stack_to_the_primary_model_when_held_out_trials_cannot_tell_them_apart():
    from training.learners.stack_gate import shrink_to_primary
    from training.learners.stacking import r_loss_parts

    # 'oracle' is the truth (benefit 5 + 0.5 x), 'effect_model' the average effect 5: with modification this
    # weak (outcome SD 10) the held-out trials cannot tell a stack leaning on the oracle from the effect model
    p = _renamed(_pred(0.5, 4), {"constant": "effect_model"})
    w, info = shrink_to_primary(p, {"oracle": 0.7, "effect_model": 0.3}, "continuous")
    assert abs(sum(w.values()) - 1) < 1e-12 and info["lambda"] > 0
    assert w["effect_model"] == pytest.approx(0.3 + 0.7 * info["lambda"])
    # the rule, recomputed directly: the loss increase at lambda is within one clustered SE, the next step is not
    wide = p.pivot_table(index="row", columns="learner", values="benefit")
    inf = p.drop_duplicates("row").set_index("row").loc[wide.index]
    gt, tt, keep = r_loss_parts(-inf["y"].to_numpy(), inf["treat"].to_numpy(), inf["trial"].to_numpy(), inf["e"].to_numpy())

    def loss(lam):
        b = (1 - lam) * (0.7 * wide["oracle"] + 0.3 * wide["effect_model"]) + lam * wide["effect_model"]
        return (gt - tt * b.to_numpy()) ** 2

    d, se = clustered_gain(loss(info["lambda"]), loss(0.0), inf["trial"].to_numpy())
    assert d == pytest.approx(info["loss_increase"]) and d <= se
    if info["lambda"] < 1:
        d2, se2 = clustered_gain(loss(info["lambda"] + 0.05), loss(0.0), inf["trial"].to_numpy())
        assert d2 > se2


def test_shrink_keeps_most_of_a_stack_that_clearly_beats_the_primary_model():
    from training.learners.stack_gate import shrink_to_primary

    # strong modification (benefit 5 + 6 x); the 'effect_model' here predicts none: the loss grows with the
    # square of the share moved, so a little moves within one SE (30%), never most of the weight
    p = _renamed(_pred(6.0, 5), {"constant": "effect_model"})
    w, info = shrink_to_primary(p, {"oracle": 1.0}, "continuous")
    assert 0 < info["lambda"] <= 0.35 and w["oracle"] >= 0.65 and info["loss_increase"] <= info["se"]
    # stronger modification: less moves
    q = _renamed(_pred(20.0, 5), {"constant": "effect_model"})
    assert shrink_to_primary(q, {"oracle": 1.0}, "continuous")[1]["lambda"] < info["lambda"]


def test_shrink_without_the_primary_model_or_with_the_primary_alone_changes_nothing():
    from training.learners.stack_gate import shrink_to_primary

    p = _pred(2.0, 6)
    assert shrink_to_primary(p, {"oracle": 0.6, "noise": 0.4}, "continuous")[0] == {"oracle": 0.6, "noise": 0.4}
    q = _renamed(p, {"oracle": "effect_model"})
    w, info = shrink_to_primary(q, {"effect_model": 1.0}, "continuous")
    assert w == {"effect_model": 1.0} and info["lambda"] == 0.0
