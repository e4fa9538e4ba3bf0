"""Load a new trial, harmonise it with a study config and attach the model's predictions.

The new trial is read with the project's data-format validation (every problem with file,
trial, participant and column). One relaxation: a trial with a single arm is accepted here
(outcome predictions can still be validated; benefit metrics are refused later with a reason).
Predictions come from ``predict.Scorer.score_table`` on the participants' covariates and
week-0 baselines; nothing participant-level is written by this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predict.errors import ValidationFailed

def load_new_trial(folder: str | Path, cfg):
    """``training.dataset.load_dataset``, except that single-arm trials are not an error and that
    one invalid participant does not stop the validation: participants with a participant-level
    problem (an impossible value, text for a number, ...) are excluded and listed with the reason
    in ``Dataset.excluded`` (the report counts them); a problem with a file or a trial (other than
    a single arm) still refuses the dataset, every problem named."""
    from training import dataset as D

    try:
        return D.load_dataset(folder, cfg)
    except ValidationFailed as exc:
        errs = [p for p in exc.problems if p.severity == "error"]
        if not errs or any(p.code != "single_arm_trial" and p.scope != "participant" for p in errs):
            raise
        if not any(p.code == "single_arm_trial" for p in errs):
            return D.load_dataset(folder, cfg, drop_invalid=True)
        if any(p.scope == "participant" for p in errs):
            raise  # a single-arm trial and invalid participants together: named, not guessed
    # Only single-arm errors: re-run the same checks with that one check relaxed.
    folder = Path(folder)
    col = D.ProblemCollector()
    ppath, _ = D.find_table(folder, "participants")
    opath, _ = D.find_table(folder, "outcomes")
    pdf, odf = D.read_table(ppath), D.read_table(opath)
    parts = D.check_participants(pdf, cfg, col)
    keys = pd.MultiIndex.from_tuples(list(zip(parts["trial"], parts["participant"])))
    outs = D.check_outcomes(odf, cfg, keys, col)
    col.problems = [p for p in col.problems if p.code != "single_arm_trial"]
    if col.errors():
        raise ValidationFailed(col.errors(), what=D.dataset_label(folder, cfg))
    received = parts.groupby("trial").size()
    return D.Dataset(path=folder, config=cfg, participants=parts.drop(columns="__line").reset_index(drop=True),
                     outcomes=outs.drop(columns="__line").reset_index(drop=True), received=received,
                     excluded=pd.DataFrame(columns=["trial", "participant", "reason"]),
                     warnings=[p for p in col.problems if p.severity == "warning"])


@dataclass
class TaskData:
    """One model task on the new trial: observed outcome, arm and the model's predictions.

    ``benefit[c]`` / ``pred_active[c]`` / ``pred_comp[c]``: predictions against comparator
    class ``c`` for every row (benefit positive = active better, in outcome units).
    ``own_pred``: the prediction for the arm each participant received (NaN if not available).
    """

    task: str
    outcome: str
    follow_up: str
    outcome_type: str
    trial: np.ndarray
    cls: np.ndarray
    treat: np.ndarray
    y: np.ndarray
    baseline: np.ndarray  # the outcome's own 0-100 baseline (continuous); NaN for binary
    own_pred: np.ndarray
    benefit: dict = field(default_factory=dict)
    pred_active: dict = field(default_factory=dict)
    pred_comp: dict = field(default_factory=dict)
    smallest_worthwhile: dict | None = None  # from the study config: {'relative': f} or {'absolute': x}
    pi: dict = field(default_factory=dict)  # c -> (low, high) 95% new-setting prediction interval
    ci: dict = field(default_factory=dict)  # c -> (low, high) 95% confidence interval (average trial)
    support: dict = field(default_factory=dict)  # predict.support scores of the task's model per row
    truth: dict = field(default_factory=dict)  # c -> true benefit (simulated data with truth/ only)
    imputed_baseline: np.ndarray | None = None  # per row: scored with a baseline of the model imputed

    @property
    def higher_is_better(self) -> bool:
        return self.outcome_type == "binary"


def scoring_table(h, scorer) -> tuple[pd.DataFrame, dict]:
    """Per participant: ids + the model's inputs (every baseline column of the model, NaN where the
    new trial has none). Values outside the model's plausible range become missing (counted).
    Which participants a task can score depends on that task's required baselines
    (:func:`build_tasks`)."""
    base = h.baselines
    cols = ["trial", "participant"] + [c for c in scorer.schema.names if c in base.columns]
    df = base[cols].copy().reset_index(drop=True)
    for b in scorer.baselines:
        df[b] = base[b].to_numpy() if b in base.columns else np.nan
    notes: dict = {"set_missing_out_of_range": {}}
    for spec in scorer.schema.covariates:
        if spec.name in df.columns and spec.type == "continuous" and spec.range is not None:
            v = pd.to_numeric(df[spec.name], errors="coerce")
            bad = v.notna() & ((v < spec.range[0]) | (v > spec.range[1]))
            if bad.any():
                notes["set_missing_out_of_range"][spec.name] = int(bad.sum())
                df.loc[bad, spec.name] = np.nan
    return df, notes


def _key(df: pd.DataFrame) -> pd.Index:
    return pd.Index(df["trial"].astype(str) + "\x1f" + df["participant"].astype(str))


def build_tasks(h, scorer, active: str, folder: str | Path | None = None) -> tuple[list[TaskData], dict]:
    """Score the new trial's participants against every comparator class they were randomised to
    (that the model covers) and line the predictions up with the harmonised outcomes.

    Requirements are per task: a participant is scored for a task when the baselines that task
    needs are present (:meth:`predict.Scorer.requirement`, owned by predict/required_inputs.py: a
    continuous outcome's own baseline; for the derived recovery outcome what its definition
    combines, at least one of them with ``combine: any``); other baselines are ordinary inputs
    (missing = imputed). ``notes["excluded"]``: per task, the participants with that task's
    outcome who could not be scored, with the reason; ``notes["imputed_baseline"]``: per task, the
    participants scored with a baseline of the model imputed, counted by the baselines imputed."""
    table, notes = scoring_table(h, scorer)
    classes = sorted(set(h.baselines["treatment"]) - {active})
    covered = [c for c in classes if c in scorer.comparators]
    notes["comparators_not_in_model"] = [c for c in classes if c not in scorer.comparators]
    score_with = covered or scorer.comparators[:1]
    a = h.analysis
    present = [t for t in scorer.manifest["tasks"]
               if ((a["outcome"] == t["outcome"]) & (a["follow_up"] == t["follow_up"])).any()]
    notes["model_tasks_not_in_new_trial"] = [t["task"] for t in scorer.manifest["tasks"] if t not in present]
    # tasks grouped by the baselines they require: one scoring call per group and comparator
    groups: dict = {}
    for t in present:
        groups.setdefault(scorer.requirement([t["task"]]), []).append(t["task"])
    scored: dict[str, tuple] = {}  # task -> (key index of scored rows, scores by comparator, support)
    scored_any = np.zeros(len(table), bool)
    for need, names in groups.items():
        ok = need.met(table)
        scored_any |= ok
        sub = table[ok].reset_index(drop=True)
        sc = {c: scorer.score_table(sub, c, names, details=False) for c in score_with}
        sup = scorer.support_scores(sub, names) if hasattr(scorer, "support_scores") else {}
        for name in names:
            scored[name] = (_key(sub), sc, sup.get(name))
    out, excluded, imputed = [], {}, {}
    for t in present:
        rows = a[(a["outcome"] == t["outcome"]) & (a["follow_up"] == t["follow_up"])]
        key, scores, sup = scored[t["task"]]
        pos = key.get_indexer(_key(rows))
        keep = pos >= 0
        excluded[t["task"]] = _exclusions(rows[~keep], table, scorer.requirement([t["task"]]))
        at = _key(table).get_indexer(_key(rows[keep]))
        imputed[t["task"]] = _imputed_baselines(table.iloc[at], scorer.baselines)
        if not keep.any():  # nobody scoreable for this task: reported with the reasons, no metrics
            notes.setdefault("model_tasks_not_scored", []).append(t["task"])
            continue
        rows, pos = rows[keep], pos[keep]
        act_col, comp_col, ben_col, ci_lo, ci_hi, pi_lo, pi_hi = scorer.output_columns([t["task"]])
        bin_ = t["outcome_type"] == "binary"
        cls = rows["treatment"].astype(str).to_numpy()
        td = TaskData(t["task"], t["outcome"], t["follow_up"], t["outcome_type"], rows["trial"].astype(str).to_numpy(), cls,
                      (cls == active).astype(int), rows["value"].to_numpy(float),
                      rows["baseline"].to_numpy(float) if not bin_ else np.full(len(rows), np.nan),
                      np.full(len(rows), np.nan))
        for c, sc in scores.items():
            td.benefit[c] = sc[ben_col].to_numpy(float)[pos]
            td.pred_active[c] = sc[act_col].to_numpy(float)[pos]
            td.pred_comp[c] = sc[comp_col].to_numpy(float)[pos]
            if ci_lo in sc.columns and ci_hi in sc.columns:
                td.ci[c] = (sc[ci_lo].to_numpy(float)[pos], sc[ci_hi].to_numpy(float)[pos])
            if pi_lo in sc.columns and pi_hi in sc.columns:
                td.pi[c] = (sc[pi_lo].to_numpy(float)[pos], sc[pi_hi].to_numpy(float)[pos])
            own = cls == c
            td.own_pred[own] = td.pred_comp[c][own]
        td.imputed_baseline = table.iloc[at][list(scorer.baselines)].isna().any(axis=1).to_numpy()
        if sup is not None:
            td.support = {k: np.asarray(v)[pos] for k, v in sup.items()}
        if folder is not None:
            td_truth(td, folder, rows)
        first = next(iter(scores))
        td.own_pred[td.treat == 1] = td.pred_active[first][td.treat == 1]
        out.append(td)
    notes["excluded"] = excluded
    notes["imputed_baseline"] = imputed
    notes.setdefault("model_tasks_not_scored", [])
    notes["scored_participants"] = int(scored_any.sum())
    return out, notes


def _exclusions(rows: pd.DataFrame, table: pd.DataFrame, need) -> list[dict]:
    """Why each participant with the task's outcome was not scored, counted by reason: the
    required baselines they lack (named; ``need``: a :class:`predict.required_inputs.Requirement`),
    else not in the participants' table."""
    if not len(rows):
        return []
    pos = _key(table).get_indexer(_key(rows))
    reasons = []
    cols = sorted(need.names)
    for p in pos:
        lack = need.lacking({b: table[b].iat[p] for b in cols}) if p >= 0 else None
        reasons.append(f"no {lack} (required by the task)" if lack else "no participant row to score")
    counts = pd.Series(reasons).value_counts()
    return [{"reason": str(r), "participants": int(n)} for r, n in counts.items()]


def _imputed_baselines(scored: pd.DataFrame, baselines) -> list[dict]:
    """Among a task's scored participants, those with a baseline of the model missing (scored with
    it imputed, and told so in the result's missing inputs), counted by the baselines missing."""
    miss = scored[list(baselines)].isna()
    which = miss.apply(lambda r: ", ".join(b for b, m in r.items() if m), axis=1)[miss.any(axis=1)]
    counts = which.value_counts()
    return [{"baselines": str(r), "participants": int(n)} for r, n in counts.items()]


def td_truth(td: TaskData, folder: str | Path, rows: pd.DataFrame) -> None:
    """Simulated new trials (``lbp-benefit simulate`` writes ``truth/truth.csv`` into the data
    folder; never an input of the model): the true benefit vs each class per row, for coverage."""
    f = Path(folder) / "truth" / "truth.csv"
    if not f.is_file():
        return
    tr = pd.read_csv(f, dtype={"trial": str, "participant": str})
    tr = tr[(tr["outcome"] == td.outcome) & (tr["follow_up"] == td.follow_up)]
    key = tr["trial"] + "\x1f" + tr["participant"]
    rk = rows["trial"].astype(str) + "\x1f" + rows["participant"].astype(str)
    pos = pd.Index(key).get_indexer(rk)
    for col in tr.columns:
        if col.startswith("benefit_vs_"):
            v = tr[col].to_numpy(float)
            td.truth[col[len("benefit_vs_"):]] = np.where(pos >= 0, v[np.maximum(pos, 0)], np.nan)
