"""The bare comparison endpoint for bench_scoring.py: FastAPI that only runs a LightGBM predict
of two 300-tree models plus shap's TreeSHAP on them (no validation, intervals or logging).

    uvicorn --factory benchmarks.bare_lightgbm_api:create_app --port 8001

``POST /score`` with ``{"features": [19 numbers or null]}``: predictions of both models and
their TreeSHAP values; ``POST /score?shap=false``: predictions only.
"""
from __future__ import annotations

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

N_FEATURES = 19
N_TREES = 300


class Body(BaseModel):
    features: list[float | None]


def _fit(seed: int):
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, N_FEATURES))
    X[rng.random(X.shape) < 0.3] = np.nan
    y = np.nan_to_num(X[:, 0]) * 3 + np.nan_to_num(X[:, 1]) ** 2 + rng.normal(size=3000)
    return lgb.train({"objective": "regression", "num_leaves": 15, "learning_rate": 0.05, "verbose": -1,
                      "num_threads": 1, "seed": seed}, lgb.Dataset(X, y), num_boost_round=N_TREES)


def create_app() -> FastAPI:
    import shap

    models = [_fit(1), _fit(2)]
    explainers = [shap.TreeExplainer(m) for m in models]
    app = FastAPI(title="bare LightGBM + TreeSHAP")

    @app.post("/score")
    def score(body: Body, shap: bool = True) -> dict:
        x = np.array([[np.nan if v is None else v for v in body.features]], float)
        out = {"predictions": [float(m.predict(x, num_threads=1)[0]) for m in models]}
        if shap:
            out["shap"] = [e.shap_values(x)[0].tolist() for e in explainers]
        return out

    return app
