"""Runtime of the one-stage IPD network model (numpy only; no training imports).

A task's network file (``model/network/<task>.json``, written by
``training.network.benefit_model``; format ``lbp-benefit-network`` v1) holds the model's node and
modifier-interaction coefficients ``coef`` (names ``terms``), their covariance ``vcov``, the
contrast heterogeneity ``tau``, the modifier centres and each node's exercise content s_c. For a
patient with modifier values z, the benefit of exercise over node c (E[y | c] − E[y | exercise],
0–100, positive favours exercise) is g'coef with

    g[node[c]] = 1 (and −1 for node[reference] if it were a term),
    g[exercise_content:m_c] = (z_m − centre_m)(s_c − s_reference)   (interaction "exercise_content"),
    g[node[c]:m_c] = z_m − centre_m                                   (interaction "node"),

its SE √(g'Vg) (delta method), and a missing modifier is replaced by its conditional mean given the
patient's observed inputs (the task learner's imputer), adding w'Σw to the variance (w: the
benefit's slope in the missing modifiers, Σ their conditional covariance). This is
``training.network.ipd.IPDNetworkResult.predict_benefit`` without training code.
"""
from __future__ import annotations

import math

import numpy as np

FORMAT = "lbp-benefit-network"
VERSION = 1
MODEL_NAME = "ipd_network"


def check(net: dict, features: list[str], types: list[str], reference: str) -> str | None:
    """Why ``net`` is not a usable network file for these features (None if it is)."""
    if not isinstance(net, dict) or net.get("format") != FORMAT or net.get("version") != VERSION:
        return f"not an {FORMAT} v{VERSION} file"
    m = net.get("model")
    if not isinstance(m, dict):
        return "no model"
    try:
        terms, coef = list(m["terms"]), np.asarray(m["coef"], float)
        V = np.asarray(m["vcov"], float)
        tau = float(m["tau"])
        mods, centres, s = list(m["modifiers"]), dict(m["centres"]), dict(m["exercise_content"])
    except (KeyError, TypeError, ValueError):
        return "model lacks terms, coef, vcov, tau, modifiers, centres or exercise_content"
    if coef.shape != (len(terms),) or V.shape != (len(terms), len(terms)):
        return "coef/vcov do not match the terms"
    if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(V)) and math.isfinite(tau) and tau >= 0):
        return "non-finite coefficients, covariance or tau"
    if m.get("interaction") not in ("exercise_content", "node"):
        return f"unknown interaction {m.get('interaction')!r}"
    if net.get("reference") != reference or m.get("reference") != reference:
        return f"reference is not {reference!r}"
    idx = {n: j for j, n in enumerate(features)}
    for mod in mods:
        if mod not in idx or types[idx[mod]] not in ("continuous", "binary") or mod not in centres:
            return f"modifier {mod!r} is not a continuous/binary model input with a centre"
    nodes = net.get("nodes")
    ev = net.get("evidence")
    if not isinstance(nodes, list) or not isinstance(ev, dict) or set(ev) != set(nodes):
        return "nodes and evidence disagree"
    for c in nodes:
        if f"node[{c}]" not in terms or c not in s:
            return f"node {c!r} has no coefficient"
        if ev[c].get("evidence") not in ("direct only", "direct and indirect", "indirect only"):
            return f"node {c!r}: unknown evidence type"
    from predict.network_posterior import check as check_posterior  # ML-NMR draws (optional block)

    return check_posterior(net)


def design(net: dict, node: str, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, W): G (n x terms) the design rows of the benefit vs ``node`` at modifier values ``Z``
    (n x modifiers, no NaN); W (modifiers x terms) dG/dz (the same for every patient)."""
    m = net["model"]
    terms = list(m["terms"])
    pos = {t: j for j, t in enumerate(terms)}
    ref = net["reference"]
    mods = list(m["modifiers"])
    s = m["exercise_content"]
    n = Z.shape[0]
    g0 = np.zeros(len(terms))
    W = np.zeros((len(mods), len(terms)))
    for nd, sign in ((node, 1.0), (ref, -1.0)):
        if f"node[{nd}]" in pos:
            g0[pos[f"node[{nd}]"]] += sign
        for k, mod in enumerate(mods):
            if m["interaction"] == "node":
                col, w = f"node[{nd}]:{mod}_c", 1.0
            else:
                col, w = f"exercise_content:{mod}_c", float(s.get(nd, 0.0))
            if col in pos:
                W[k, pos[col]] += sign * w
    centres = np.array([float(m["centres"][mod]) for mod in mods])
    G = np.broadcast_to(g0, (n, len(terms))) + (Z - centres) @ W if mods else np.broadcast_to(g0, (n, len(terms))).copy()
    return np.asarray(G), W


def benefit(net: dict, node: str, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, SE) per patient of E[y | node] − E[y | reference] at modifier values ``Z``."""
    m = net["model"]
    b = np.asarray(m["coef"], float)
    V = np.asarray(m["vcov"], float)
    G, _ = design(net, node, Z)
    est = G @ b
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", G, V, G), 0.0, None))
    return est, se


def slopes(net: dict, node: str) -> np.ndarray:
    """d benefit / d z_m per modifier (for the missing-modifier variance)."""
    _, W = design(net, node, np.zeros((1, len(net["model"]["modifiers"]))))
    return W @ np.asarray(net["model"]["coef"], float)
