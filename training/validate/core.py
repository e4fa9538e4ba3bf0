"""Orchestration of a validation: load, score, compute the sections, write the report."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from predict.errors import LbpError
from training.validate.casemix import case_mix
from training.validate.data import build_tasks, load_new_trial
from training.validate.extrapolation import extrapolation_section
from training.validate.sections import FEW, benefit_section, outcome_section
from training.validate.update import recalibrate
from training.validate.overlap import APPARENT, overlap_warning, training_overlap
from training.verdicts import separable_case_mix_warning


def _baseline_table(folder, cfg):
    from training.harmonise import harmonise

    return harmonise(load_new_trial(folder, cfg))


def _invalid_participants(excluded) -> dict:
    """The participants the data-format checks excluded (``Dataset.excluded``): count, count per
    reason (most frequent first) and each one (trial, participant, reason)."""
    rows = [{"trial": str(t), "participant": str(p), "reason": str(r)}
            for t, p, r in zip(excluded["trial"], excluded["participant"], excluded["reason"])]
    by: dict[str, int] = {}
    for r in rows:
        by[r["reason"]] = by.get(r["reason"], 0) + 1
    return {"count": len(rows), "by_reason": dict(sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))),
            "participants": rows}


def validate_model(model: str | Path, data: str | Path, out: str | Path | None = None, *,
                   config: str | Path | None = None, train_data: str | Path | None = None, update: bool = False,
                   n_boot: int = 200, seed: int = 1, label: str = "", tasks: list[str] | None = None,
                   log: Callable[[str], None] | None = None) -> dict:
    """Validate the artifact ``model`` on the dataset folder ``data``; write the report to ``out``
    (if given) and return the result dict (as in report.json, before JSON cleaning). ``tasks``:
    only these model tasks (``<outcome>__<follow_up>``; default all)."""
    from predict import Scorer
    from training.config import resolve_config
    from training.validate.report import write_report

    say = log or (lambda m: None)
    scorer = Scorer.load(model)
    cfg = resolve_config(data, config)
    active = scorer.manifest.get("active") or cfg.active
    if cfg.active != active:
        raise LbpError(f"study config {cfg.source}: active class {cfg.active!r} differs from the model's {active!r}")
    from training.harmonise import harmonise

    ds = load_new_trial(data, cfg)
    h = harmonise(ds)
    if tasks is not None:
        unknown = sorted(set(tasks) - set(scorer.tasks))
        if unknown:
            raise LbpError(f"task(s) {', '.join(unknown)} not in the model ({', '.join(scorer.tasks)})")
    wanted = tasks
    tasks, notes = build_tasks(h, scorer, active, data)
    model_defs = getattr(scorer, "outcome_definitions", {}) or {}
    for td in tasks:  # the decision threshold: the outcome's smallest worthwhile effect (config, else the model's)
        spec = cfg.outcome(td.outcome)
        own = spec.smallest_worthwhile if spec is not None else None
        td.smallest_worthwhile = own or (model_defs.get(td.outcome) or {}).get("smallest_worthwhile")
    if wanted is not None:
        tasks = [t for t in tasks if t.task in wanted]
        notes["model_tasks_not_in_new_trial"] = [t for t in notes["model_tasks_not_in_new_trial"] if t in wanted]
    if wanted is not None:
        notes["excluded"] = {k: v for k, v in notes["excluded"].items() if k in wanted}
        notes["imputed_baseline"] = {k: v for k, v in notes["imputed_baseline"].items() if k in wanted}
        notes["model_tasks_not_scored"] = [t for t in notes["model_tasks_not_scored"] if t in wanted]
    if not tasks:
        why = "; ".join(f"{k}: " + ", ".join(f"{e['participants']} {e['reason']}" for e in v)
                        for k, v in notes["excluded"].items() if v)
        raise LbpError(f"the new trial {data} has none of the model's tasks ({', '.join(scorer.tasks)}) with a "
                       f"scoreable participant with follow-up" + (f" ({why})" if why else "")
                       + "; check outcomes, baselines and follow-up windows in the config")
    warns = []
    invalid = _invalid_participants(ds.excluded)
    if invalid["count"]:
        warns.append(f"{invalid['count']} participant(s) of the new trial excluded as invalid ("
                     + ", ".join(f"{k}: {v}" for k, v in invalid["by_reason"].items())
                     + "): not scored; listed in report.json data.excluded_invalid")
    if scorer.synthetic:
        warns.append("the model was trained on synthetic (simulated) data: not for clinical use")
    for c in notes["comparators_not_in_model"]:
        warns.append(f"comparator class {c!r} of the new trial has no prediction in the model: its participants get "
                     f"no benefit metrics")
    for name, k in notes["set_missing_out_of_range"].items():
        warns.append(f"{k} value(s) of {name} outside the model's plausible range were treated as missing")
    for task, ex in notes["excluded"].items():  # per task: participants with its outcome not scored, and why
        for e in ex:
            warns.append(f"{task}: {e['participants']} participant(s) with this outcome not scored: {e['reason']}")
    for task, im in notes["imputed_baseline"].items():  # scored, with a baseline the task does not require imputed
        for e in im:
            warns.append(f"{task}: {e['participants']} participant(s) scored with {e['baselines']} imputed "
                         f"(not required by the task; listed as missing in their results)")
    if notes["model_tasks_not_scored"]:
        warns.append(f"model tasks with nobody scoreable in the new trial: {', '.join(notes['model_tasks_not_scored'])}")
    if notes["model_tasks_not_in_new_trial"]:
        warns.append(f"model tasks without data in the new trial: {', '.join(notes['model_tasks_not_in_new_trial'])}")
    train = _baseline_table(train_data, cfg).baselines if train_data is not None else None
    cm = case_mix(h.baselines, scorer, train, cfg)
    sep = separable_case_mix_warning(cm["membership"].get("c_statistic"))
    if sep:
        warns.append(sep)
    if cm["lacking"]:
        warns.append(f"the new trial lacks covariate(s) {', '.join(cm['lacking'])}: treated as missing "
                     f"(the model imputes them; predictions are less individual)")
    overlap = training_overlap(scorer.manifest, h.analysis, h.baselines)
    ow = overlap_warning(overlap)
    if ow:
        warns.insert(0, ow)
    n = len(h.baselines)
    if n < FEW:
        warns.append(f"only {n} participants: every interval is wide; interpret with care")
    result: dict = {
        "model": {k: scorer.manifest.get(k) for k in ("model_id", "study", "active", "synthetic", "package_version", "created")},
        "data": {"name": str(Path(data).name), "label": label, "config": cfg.source, "n_participants": n,
                 "trials": sorted(set(h.baselines["trial"].astype(str))),
                 "by_class": {str(k): int(v) for k, v in h.baselines["treatment"].value_counts().sort_index().items()},
                 "scored_participants": notes["scored_participants"], "excluded_invalid": invalid,
                 "excluded_by_task": notes["excluded"], "imputed_baseline_by_task": notes["imputed_baseline"],
                 "training_overlap": overlap},
        "settings": {"n_boot": n_boot, "seed": seed, "ci_level": 0.95, "update": update,
                     "train_data": str(train_data) if train_data is not None else None},
        "warnings": warns, "case_mix": cm, "tasks": {},
    }
    objs, units, updates = {}, {}, {}
    comps = [c for c in sorted(set(h.baselines["treatment"]) - {active}) if c in scorer.comparators] or \
        [c for c in sorted(set(h.baselines["treatment"]) - {active})] or ["(none)"]
    for td in tasks:
        say(f"validating {td.task}")
        osec, oobj = outcome_section(td, n_boot, seed)
        warns.extend(f"{td.task}: {w}" for w in osec.get("warnings", []))
        bsecs, bobjs = {}, {}
        for c in comps:
            if c not in td.benefit:
                bsecs[c] = {"comparator": c, "status": "refused",
                            "reason": "single-arm trial: only the active class" if c == "(none)" else
                            f"the model has no prediction for comparator {c!r}"}
                continue
            bsecs[c], bobjs[c] = benefit_section(td, c, active, n_boot, seed)
            if overlap["same_data"] and bsecs[c].get("verdict"):
                bsecs[c]["verdict"] = {**bsecs[c]["verdict"], "apparent": True,
                                       "sentence": APPARENT + bsecs[c]["verdict"]["sentence"]}
            if bsecs[c].get("status") == "ok":
                bsecs[c]["extrapolation"] = extrapolation_section(td, c, active)
            for w in bsecs[c].get("warnings", []):
                if w not in warns:
                    warns.append(f"{td.task} vs {c}: {w}")
        result["tasks"][td.task] = {"outcome": td.outcome, "follow_up": td.follow_up, "outcome_type": td.outcome_type,
                                    "participants": int(len(td.y)), "excluded": notes["excluded"].get(td.task, []),
                                    "imputed_baseline": notes["imputed_baseline"].get(td.task, []),
                                    "outcome_predictions": osec, "benefit_predictions": bsecs}
        objs[td.task] = {"outcome": oobj, "benefit": bobjs}
        units[td.task] = "points" if td.outcome_type == "continuous" else "risk difference"
        if update:
            updates[td.task] = recalibrate(td, {c: o for c, o in bobjs.items() if o}, n_boot, seed)
    if all(b.get("status") != "ok" for t in result["tasks"].values() for b in t["benefit_predictions"].values()):
        warns.append("benefit metrics were refused for every task: " + "; ".join(
            sorted({b["reason"] for t in result["tasks"].values() for b in t["benefit_predictions"].values()
                    if b.get("reason")})))
    if update:
        result["update"] = updates
    if out is not None:
        write_report(Path(out), result, objs, units)  # the caller says where (the CLI: once, after the warnings)
    return result
