"""The derived recovery outcome's structural missing-input allowance, written into its exported
learner (issue 23; the rule and the scoring are :mod:`predict.recovery_structure`'s).

For each window where recovery was trained, the field takes, per criterion of recovery's definition
(the outcomes with ``min_points``, ``cfg.recovery_sources``), that outcome's continuous effect model
of the same window as ``train`` fitted it (``models/<outcome>__<window>/effect_model.json``: its
linear part, comparators and residual SD sqrt(meta.sigma2)), and the definition's numbers (relative
improvement, minimum points, ``combine``). Nothing is refitted. A window where a criterion's effect
model is missing (the outcome was not trained there) or has other features than recovery's gets no
field (logged): recovery is then scored as before.

Checked (benchmarks/bench_recovery_allowance.py, BENCHMARKS.md session 11 i23r): coverage of the
benefit's CI (average-trial truth) and new-trial PI before and after on the simulator's designs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from predict.recovery_structure import KEY, VERSION

# the manifest's feature_schema 'missing' clause for models with the field (training/export_model.py)
MISSING_STRUCTURAL = ("; for recovery (derived from pain and function) at least by how much recovery's definition, "
                      "applied to the pain and function models, varies over those draws")


def structural_field(cfg, recovery_exp: dict, continuous: dict[str, dict]) -> tuple[dict | None, str]:
    """(the ``structural_missing`` field for ``recovery_exp``, "") or (None, why not). ``continuous``:
    outcome -> that outcome's continuous effect-model export of the same window."""
    names = list(recovery_exp["features"]["names"])
    crits = []
    for o in cfg.recovery_sources:
        e = continuous.get(o)
        if e is None:
            return None, f"no continuous effect model of {o} in this window"
        if list(e["features"]["names"]) != names:
            return None, f"the effect model of {o} has other features than recovery's"
        if e.get("kind") not in ("effect_model", "constant") or (e.get("linear") or {}).get("link") != "identity":
            return None, f"the model of {o} is not a continuous effect model"
        base = f"baseline_{o}"
        if base not in names:
            return None, f"{base} is not an input of the model"
        sigma2 = float((e.get("meta") or {}).get("sigma2", np.nan))
        if not sigma2 > 0:
            return None, f"the effect model of {o} has no residual variance"
        crits.append({"outcome": o, "baseline": base, "relative": float(cfg.recovery_relative),
                      "min_points": float(cfg.outcomes[o].recovery_min_points), "sigma": float(np.sqrt(sigma2)),
                      "comparators": list(e["comparators"]), "linear": e["linear"]})
    if not crits:
        return None, "recovery's definition names no continuous outcome"
    return {"version": VERSION, "combine": cfg.recovery_combine, "criteria": crits}, ""


def attach(run: str | Path, cfg, tasks: dict, log: Callable[[str], None] | None = None) -> list[str]:
    """Write the field into ``models/<recovery>__<window>/selected.json`` of the run folder for every
    trained recovery task. ``tasks``: task -> (outcome, window, ...). Returns the tasks given it."""
    say = log or (lambda m: None)
    if getattr(cfg, "recovery", None) is None:
        return []
    run, done = Path(run), []
    for task, info in tasks.items():
        outcome, fu = info[0], info[1]
        sel = run / "models" / task / "selected.json"
        if outcome != cfg.recovery_name or not sel.is_file():
            continue
        cont = {}
        for o in cfg.recovery_sources:
            p = run / "models" / f"{o}__{fu}" / "effect_model.json"
            if p.is_file():
                cont[o] = json.loads(p.read_text("utf-8"))
        exp = json.loads(sel.read_text("utf-8"))
        field, why = structural_field(cfg, exp, cont)
        if field is None:
            say(f"{task}: no structural missing-input allowance ({why}); its intervals are the learner's own")
            continue
        exp[KEY] = field
        sel.write_text(json.dumps(exp), "utf-8")
        done.append(task)
    if done:
        say("recovery intervals: structural missing-input allowance (pain/function models through the definition) "
            "exported for " + ", ".join(done))
    return done
