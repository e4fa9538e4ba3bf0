"""Case-mix of the new trial against the model's training data.

Per covariate (and baseline): the new trial's distribution, the training distribution and the
standardised difference (Austin 2009: |d| > 0.1 flags a meaningful imbalance); covariates the
new trial lacks; values outside the central 98% (90% with few data) of the training
participants; and, when participant-level training data is given, the C-statistic of a
membership model (logistic regression of "in the new trial" on the covariates; Debray et al.,
J Clin Epidemiol 2015;68:279-89): 0.5 = same case-mix, 1 = no overlap.

Without training data only the artifact's aggregated ``background.csv`` is available: binary
proportions are exact, continuous means/SDs are approximated from its quantiles (mean ~ median,
SD ~ IQR / 1.349, normal theory) and marked ``approximate``; the membership C is then not computed.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

SMD_FLAG = 0.1


def _smd(m1, s1, m0, s0) -> float:
    pooled = np.sqrt((s1 ** 2 + s0 ** 2) / 2.0)
    return float((m1 - m0) / pooled) if pooled > 0 else (0.0 if m1 == m0 else float("nan"))


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _from_background(row: pd.Series) -> dict:
    """Training summary of one feature from background.csv (aggregated)."""
    out = {"n": int(row["n_observed"]), "pct_missing": float(row["pct_missing"]), "source": "background"}
    if row["type"] == "binary" and isinstance(row.get("levels"), str) and row["levels"]:
        lv = json.loads(row["levels"])
        n = lv.get("0", 0) + lv.get("1", 0)
        p = lv.get("1", 0) / n if n else float("nan")
        out.update(mean=p, sd=float(np.sqrt(p * (1 - p))), approximate=False)
    elif row["type"] == "continuous":
        q = {k: _num(row.get(k)) for k in ("p01", "p05", "p25", "p50", "p75", "p95", "p99")}
        out.update(mean=q["p50"], sd=(q["p75"] - q["p25"]) / 1.349, approximate=True,
                   low=q["p01"] if np.isfinite(q["p01"]) else q["p05"],
                   high=q["p99"] if np.isfinite(q["p99"]) else q["p95"],
                   central="98%" if np.isfinite(q["p01"]) else "90%")
    else:
        out.update(mean=float("nan"), sd=float("nan"), approximate=True)
    return out


def _summary(v: pd.Series, typ: str) -> dict:
    x = pd.to_numeric(v, errors="coerce").dropna().to_numpy(float) if typ != "categorical" else None
    n_all = len(v)
    if x is None:
        return {"n": int(v.notna().sum()), "pct_missing": round(100 * (1 - v.notna().mean()), 1) if n_all else 100.0,
                "mean": float("nan"), "sd": float("nan")}
    return {"n": int(x.size), "pct_missing": round(100 * (1 - x.size / n_all), 1) if n_all else 100.0,
            "mean": float(x.mean()) if x.size else float("nan"),
            "sd": float(x.std(ddof=1)) if x.size > 1 else float("nan")}


CASE_MIX_COLUMNS = ["covariate", "type", "n_new", "pct_missing_new", "mean_new", "sd_new", "n_training",
                    "mean_training", "sd_training", "training_source", "approximate", "standardised_difference",
                    "flag", "below_training_range", "above_training_range", "training_range"]


def case_mix(new: pd.DataFrame, scorer, train: pd.DataFrame | None = None, new_config=None) -> dict:
    """``new``/``train``: one row per participant with covariates and baselines (never written)."""
    bg = pd.read_csv(io.BytesIO(scorer.artifact.file(scorer.manifest["background"]["file"])), dtype={"levels": str},
                     keep_default_na=False, na_values=[""])
    bg = bg.set_index("feature")
    types = {c.name: c.type for c in scorer.schema.covariates}
    types.update({b: "continuous" for b in scorer.baselines})
    rows, lacking = [], []
    for name, typ in types.items():
        col = new[name] if name in new.columns else pd.Series(np.nan, index=new.index)
        s_new = _summary(col, typ)
        if s_new["n"] == 0:
            lacking.append(name)
        if train is not None and name in train.columns:
            s_tr = _summary(train[name], typ)
            s_tr.update(source="training data", approximate=False)
            if typ == "continuous":
                x = pd.to_numeric(train[name], errors="coerce").dropna().to_numpy(float)
                if x.size:
                    s_tr.update(low=float(np.quantile(x, 0.01)), high=float(np.quantile(x, 0.99)), central="98%")
        elif name in bg.index:
            s_tr = _from_background(bg.loc[name])
        else:
            s_tr = {"n": 0, "mean": float("nan"), "sd": float("nan"), "approximate": True, "source": "none"}
        if typ == "binary" and np.isfinite(s_new["mean"]):
            s_new["sd"] = float(np.sqrt(s_new["mean"] * (1 - s_new["mean"])))
        d = _smd(s_new["mean"], s_new["sd"], s_tr["mean"], s_tr["sd"]) if s_new["n"] and typ != "categorical" else float("nan")
        r = {"covariate": name, "type": typ, "n_new": s_new["n"], "pct_missing_new": s_new["pct_missing"],
             "mean_new": s_new["mean"], "sd_new": s_new["sd"], "n_training": s_tr["n"], "mean_training": s_tr["mean"],
             "sd_training": s_tr["sd"], "training_source": s_tr["source"],
             "approximate": bool(s_tr.get("approximate", False)), "standardised_difference": d,
             "flag": bool(np.isfinite(d) and abs(d) > SMD_FLAG), "below_training_range": 0, "above_training_range": 0,
             "training_range": ""}
        if typ == "continuous" and np.isfinite(s_tr.get("low", np.nan)) and s_new["n"]:
            x = pd.to_numeric(col, errors="coerce").dropna().to_numpy(float)
            r["below_training_range"] = int((x < s_tr["low"]).sum())
            r["above_training_range"] = int((x > s_tr["high"]).sum())
            r["training_range"] = f"central {s_tr['central']}: {s_tr['low']:.4g} to {s_tr['high']:.4g}"
        rows.append(r)
    table = pd.DataFrame(rows, columns=CASE_MIX_COLUMNS)  # a study without covariates: an empty table
    extra = []
    if new_config is not None:
        extra = [c for c in new_config.covariates.names if c not in types]
    out = {"table": table, "lacking": lacking, "not_used_by_model": extra,
           "n_flagged": int(table["flag"].sum()),
           "outside_training_range": int(table["below_training_range"].sum() + table["above_training_range"].sum())}
    out["membership"] = membership_c(new, train, [n for n in types if n not in lacking]) if train is not None else {
        "c_statistic": None, "ci_low": None, "ci_high": None,
        "reason": "needs participant-level training data (--train-data); the artifact holds only aggregated "
                  "distributions"}
    return out


def membership_c(new: pd.DataFrame, train: pd.DataFrame, names: list[str]) -> dict:
    """Apparent C-statistic (DeLong CI) of a logistic membership model: covariates standardised,
    missing values mean-imputed with a missing indicator; light L2 penalty for stability."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression

    from training.metrics import c_statistic, delong_se

    both = pd.concat([train.assign(_new=0), new.assign(_new=1)], ignore_index=True)
    cols = []
    for n in names:
        if n not in both.columns:
            continue
        v = both[n]
        if not pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):  # text levels (object or str dtype)
            cols.append(pd.get_dummies(v.astype("string"), prefix=n, dtype=float))
            continue
        v = pd.to_numeric(v, errors="coerce").astype(float)
        miss = v.isna()
        sd = v.std(ddof=0)
        z = ((v - v.mean()) / sd if sd > 0 else v * 0).fillna(0.0)
        cols.append(z.rename(n).to_frame())
        if miss.any():
            cols.append(miss.astype(float).rename(f"{n}__missing").to_frame())
    y = both["_new"].to_numpy(int)
    if not cols:
        return {"c_statistic": None, "ci_low": None, "ci_high": None, "reason": "no covariate in common"}
    X = pd.concat(cols, axis=1).to_numpy(float)
    fit = LogisticRegression(C=10.0, max_iter=1000).fit(X, y)
    score = fit.decision_function(X)
    c = c_statistic(y, score)
    se = delong_se(y, score)
    z = stats.norm.ppf(0.975)
    return {"c_statistic": c, "ci_low": max(0.0, c - z * se), "ci_high": min(1.0, c + z * se),
            "n_training": int((y == 0).sum()), "n_new": int((y == 1).sum()), "covariates": list(names),
            "method": "logistic regression (L2, C=10), apparent C with DeLong 95% CI"}
