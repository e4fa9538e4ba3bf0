"""Clinical warnings: every warning text a scored patient can carry is worded here, once.

- per patient (:meth:`ClinicalWarnings.patient`): an input outside the range of most training
  participants (the prediction extrapolates), a patient far from the training support
  (:func:`support_notes`), an input the model has little data on, a rare
  binary/categorical level, most effect modifiers imputed (:mod:`predict.imputed`);
- per request (:meth:`ClinicalWarnings.request`): no trial compared the active class with the comparator
  for some task, few trials did, the comparator is scored by the IPD network model (indirect
  evidence only, few trials), the model was trained on synthetic data.

The thresholds come from the artifact's aggregated background table (background.csv).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from predict import imputed as imputed_inputs
from predict import support
from predict.learner_model import as_learner
from predict.task import Task

LITTLE_DATA_N = 100  # a covariate observed for fewer training participants (or in < 3 trials) is flagged
LITTLE_DATA_TRIALS = 3  # ... or in fewer trials than the training data had, when it had fewer than 3 (one or two
# trials: every covariate is "in 1 trial", which the request-level few-trials warning already says once)
RARE_LEVEL_N = 30  # a binary/categorical level seen in fewer training participants is flagged
SMALL_MAX_ROWS = 128  # up to this many patients are checked per value (no array calls)
SYNTHETIC = "the model was trained on synthetic (simulated) data: not for clinical use"
RARE_PATIENT = "patients like this were rare in the trials"
EXTRAPOLATES = "the prediction extrapolates"
RARE_TEXT = (RARE_PATIENT + " (further from the centre of the training data than "
             "{pct:.0f}% of the trial participants): " + EXTRAPOLATES + "; its intervals were widened "
             "{f:.1f}-fold")
OUTSIDE_RANGE = " is outside the range of "
LITTLE_DATA = "the model has little data on "
RARE_LEVEL = "few training participants had "
# The kinds of warning about a patient's own inputs, counted in batch summaries (scored, not
# excluded: a value the schema accepts but few training participants had), each with the fragment
# of its wording above (or in predict.imputed) that identifies it.
WARNING_KINDS = {
    "outside_training_range": lambda t: OUTSIDE_RANGE in t,
    "rare_patient": lambda t: t.startswith(RARE_PATIENT),
    "little_data": lambda t: t.startswith(LITTLE_DATA),
    "rare_level": lambda t: t.startswith(RARE_LEVEL),
    "mostly_imputed": lambda t: imputed_inputs.IMPUTED_MARK in t,
    "outside_scale": lambda t: OUTSIDE_SCALE in t,  # inputs that take a linear prediction past 0-100
}


def warning_kind(text: str) -> str | None:
    """The kind (a key of :data:`WARNING_KINDS`) of one warning text about a patient's inputs;
    None for a request-level warning (synthetic data, few trials, ...), which every patient shares."""
    for kind, test in WARNING_KINDS.items():
        if test(text):
            return kind
    return None


OUTSIDE_SCALE = "lies outside the 0-100 scale"


def outside_scale(computed: Iterable[Any], n: int) -> list[list[str]]:
    """Per patient: a warning for each continuous task whose predicted outcome under an arm lies outside
    the outcome's 0-100 scale (a linear model extrapolating past its floor or ceiling: that prediction
    and the benefit built on it are less reliable). ``computed``: :class:`predict.task.Computed` of a
    scoring call over ``n`` patients. Found on medicaldata::strep_tb (a 1-6 radiological grade): score
    wrote -29.7 on a 0-100 scale without a word, while validate warned about the same predictions."""
    out: list[list[str]] = [[] for _ in range(n)]
    for c in computed:
        if not c.available or c.task.outcome_type != "continuous":
            continue
        for arm, v in (("the intervention", c.exercise), ("the comparator", c.comparator)):
            v = np.asarray(v, dtype=float)
            bad = np.flatnonzero(np.isfinite(v) & ((v < 0.0) | (v > 100.0)))
            for i in bad:
                out[i].append(f"{c.task.task}: the predicted outcome under {arm} ({v[i]:.1f}) {OUTSIDE_SCALE}: the "
                              "model extrapolates past the scale's floor or ceiling, so this prediction and the benefit "
                              "built on it are less reliable")
    return out


def little_data_trials(manifest: dict) -> int:
    """A covariate observed in fewer trials than this is flagged "little data": LITTLE_DATA_TRIALS, or
    the number of training trials when there were fewer (an artifact that does not record its trials:
    LITTLE_DATA_TRIALS). Found on a single trial (DAAG::nswdemo, 722 men): every patient carried seven
    "little data on Age (observed for 722 training participants in 1 trial)" warnings, one per covariate."""
    trials = (manifest.get("training_data") or {}).get("trials")
    return min(LITTLE_DATA_TRIALS, len(trials)) if trials else LITTLE_DATA_TRIALS


def count_words(number: str, noun: str) -> str:
    """A count (or a range of counts, "2-4") in words with its noun in agreement: "1 trial", "2-4 trials"."""
    return f"{number} {noun if number == '1' else noun + 's'}"


def shown_range(lo: float, hi: float, digits: int = 3) -> tuple[str, str]:
    """A training range in words with ``digits`` significant digits (``17.233`` -> ``17.3``), each
    end rounded inwards, so that a value flagged as outside ``[lo, hi]`` is also outside the range
    shown (``BMI = 17.21`` is never said to be outside ``17.2–38.9``)."""
    def side(x: float, up: bool, k: int) -> str:
        if x == 0 or not math.isfinite(x):
            return f"{x:g}"
        d = k - 1 - math.floor(math.log10(abs(x)))
        r = (math.ceil if up else math.floor)(round(x * 10.0 ** d, 9)) / 10.0 ** d
        return f"{r:.{max(d, 0)}f}".rstrip("0").rstrip(".") if d > 0 else f"{r:.0f}"
    for k in range(digits, 16):  # more digits only for a range too narrow to round
        a, b = side(float(lo), True, k), side(float(hi), False, k)
        if float(a) <= float(b):
            return a, b
    return repr(float(lo)), repr(float(hi))


TABLE_SEP = " | "
"""How a table's ``warnings`` cell (``Scorer.score_table``, ``lbp-benefit score``, Spark) joins a
patient's warnings."""


def table_cell(warns: Iterable[str]) -> str:
    """One patient's warnings as a table's ``warnings`` cell."""
    return TABLE_SEP.join(warns)


def count_table_warnings(cells: Iterable[Any]) -> dict:
    """:func:`count_warnings` over a table's ``warnings`` cells (None/NaN/empty: no warning)."""
    return count_warnings(str(c).split(TABLE_SEP) if isinstance(c, str) and c else () for c in cells)


def count_warnings(per_patient: Iterable[Iterable[str]]) -> dict:
    """Batch summary of the patients' input warnings: ``count`` (patients with at least one) and
    ``by_kind`` (patients per kind, in :data:`WARNING_KINDS` order; kinds with none left out)."""
    hits = {k: 0 for k in WARNING_KINDS}
    n = 0
    for warns in per_patient:
        kinds = {warning_kind(w) for w in warns} - {None}
        n += bool(kinds)
        for k in kinds:
            hits[k] += 1
    return {"count": n, "by_kind": {k: v for k, v in hits.items() if v}}


PREDICTION_KINDS = ("outside_scale",)
"""Kinds of :data:`WARNING_KINDS` that are about a patient's prediction (a predicted outcome off the
scale), not about the inputs: batch summaries word them apart (:func:`warned_text`)."""


def warned_text(warned: dict, column: str) -> str:
    """The one sentence a batch summary (``lbp-benefit score``, CSV or Spark) gives of
    :func:`count_warnings`'s dict: warnings about the inputs and about the predictions named apart
    (s12r: an off-scale predicted outcome was counted under "warnings about their inputs"); "" when
    no row carries any."""
    if not warned["count"]:
        return ""
    by = warned["by_kind"]
    def words(kinds): return ", ".join(f"{k}: {n}" for k, n in kinds)
    inputs = words((k, n) for k, n in by.items() if k not in PREDICTION_KINDS)
    preds = words((k, n) for k, n in by.items() if k in PREDICTION_KINDS)
    if inputs and preds:
        about, kinds = "their inputs or predictions", f"inputs - {inputs}; predictions - {preds}"
    else:
        about, kinds = ("their inputs", inputs) if inputs else ("their predictions", preds)
    return f"{warned['count']} scored row(s) carry warnings about {about} ({kinds}; see the {column} column)"


def support_notes(learners: list, F: np.ndarray) -> list[list[str]]:
    """Per patient, the "patients like this were rare" warning (largest widening over the tasks'
    supports, :mod:`predict.support`; none when no task finds the patient rare). ``learners``:
    the tasks' typed learners (or learner exports)."""
    rare, pct, fac = support.rare_patients([as_learner(e).support for e in learners], F)
    return [[RARE_TEXT.format(pct=min(float(pct[i]), 99.9) if math.isfinite(pct[i]) else 99.0, f=float(fac[i]))]
            if rare[i] else [] for i in range(len(rare))]


@dataclass(frozen=True)
class InputRule:
    """The warnings about one input (column ``column`` of the feature matrix), worded at load: a
    value outside the range of most training participants (``range``: low, high and the text
    before and after the value), little training data on the input (``little``), rare
    binary/categorical levels (``rare``: (code, text) pairs)."""

    column: int
    range: tuple | None
    little: str | None
    rare: tuple

    def texts(self, x: float) -> list[str]:
        """The warnings an entered value ``x`` carries (none for a missing value): the one place
        each input warning is put together."""
        if x != x:
            return []
        out = []
        rng = self.range
        if rng is not None and (x < rng[0] or x > rng[1]):
            out.append(f"{rng[2]}{x:g}{rng[3]}")
        if self.little is not None:
            out.append(self.little)
        for code, text in self.rare:
            if x == code:
                out.append(text)
        return out

    def rows(self, x: np.ndarray) -> np.ndarray:
        """The rows whose value in ``x`` may carry a warning (a superset of those :meth:`texts` words)."""
        if self.little is not None:
            return np.flatnonzero(~np.isnan(x))
        hit = np.zeros(x.shape, bool)
        if self.range is not None:
            with np.errstate(invalid="ignore"):
                hit |= (x < self.range[0]) | (x > self.range[1])
        for code, _ in self.rare:
            hit |= x == code
        return np.flatnonzero(hit)


class ClinicalWarnings:
    """The warnings of one model (built once at load; immutable)."""

    def __init__(self, names: Sequence[str], types: Sequence[str], categories: dict, baselines: Sequence[str],
                 labels: dict, units: dict, covariates: Sequence[str], background: pd.DataFrame | None,
                 manifest: dict, network_only: Sequence[str]):
        self._names = list(names)
        self._types = list(types)
        self._cats = dict(categories)
        self._index = {n: j for j, n in enumerate(self._names)}
        self.baselines = list(baselines)
        self._label = dict(labels)
        self._unit = dict(units)
        self._covariates = list(covariates)
        self.manifest = manifest
        self.active = str(manifest.get("active") or "the intervention").replace("_", " ")  # the active class, in words
        self.synthetic = bool(manifest["synthetic"])
        self.network_only = list(network_only)
        self._limits = self._warning_limits(background)
        self._wrules = self._warning_rules()

    def patient(self, F: np.ndarray, tasks: Sequence[Task] = ()) -> list[list[str]]:
        """Per patient (rows of the feature matrix F), the warnings about their own inputs; with the
        request's ``tasks``, also the notes of :mod:`predict.support` on patients beyond the training
        support (worded there, with the distance they report)."""
        warns = self._imputation_warned(F, self._patient_warnings(F))
        if tasks:
            for w, note in zip(warns, support_notes([t.model for t in tasks], F)):
                w += note
        return warns

    def request(self, comparator: str, tasks: list[Task]) -> list[str]:
        """The warnings that apply to every patient of a request: a comparator without a
        prediction for some task, one resting on few trials, a network-only comparator, synthetic
        training data."""
        if comparator in self.network_only:
            return self._network_warnings(comparator, tasks)
        out = []
        unavailable = [t.task for t in tasks if comparator not in t.model.comparators]
        if unavailable:
            out.append(f"no trial compared {self.active} with {comparator} for {', '.join(unavailable)}: "
                       "no prediction there")
        sparse = []
        for t in tasks:
            s = (t.model.meta.get("support") or {}).get(comparator)
            if s and s.get("sparse") and s.get("trials", 0) > 0:
                sparse.append((t.task, s["trials"], s["participants"]))
        if sparse:
            tr = sorted({s[1] for s in sparse})
            pa = sorted({s[2] for s in sparse})
            tr_txt = f"{tr[0]}" if len(tr) == 1 else f"{tr[0]}-{tr[-1]}"
            pa_txt = f"{pa[0]}" if len(pa) == 1 else f"{pa[0]}-{pa[-1]}"
            out.append(f"few trials compared {self.active} with {comparator} ({count_words(tr_txt, 'trial')}, "
                       f"{count_words(pa_txt, 'participant')}, "
                       f"in {len(sparse)} of {len(tasks)} outcome x follow-up predictions): its average effect "
                       "rests on little data")
        if self.synthetic:
            out.append(SYNTHETIC)
        return out

    def _warning_limits(self, bg: pd.DataFrame | None) -> dict:
        out: dict[str, dict] = {}
        if bg is None or not len(bg):
            return out
        min_trials = little_data_trials(self.manifest)
        for r in bg.to_dict("records"):
            name = r["feature"]
            if name not in self._index:
                continue
            d: dict[str, Any] = {}
            lo, hi, share = r.get("p01", ""), r.get("p99", ""), 98
            if lo == "" or hi == "":
                lo, hi, share = r.get("p05", ""), r.get("p95", ""), 90
            if lo != "" and hi != "":
                d["range"] = (float(lo), float(hi), share)
            n_obs = int(float(r.get("n_observed") or 0))
            trials = int(float(r.get("trials_collected") or r.get("trials_observed") or 0))
            if name not in self.baselines and (n_obs < LITTLE_DATA_N or trials < min_trials):
                d["little"] = (n_obs, trials)
            if r.get("levels"):
                counts = json.loads(r["levels"])
                d["rare"] = {k: v for k, v in counts.items() if v < RARE_LEVEL_N}
            out[name] = d
        return out

    def _warning_rules(self) -> list["InputRule"]:
        """The per-input checks of :meth:`_patient_warnings`, worded once at load (one
        :class:`InputRule` per input with a background row)."""
        rules = []
        for name, d in self._limits.items():
            j = self._index[name]
            label = self._label.get(name, name)
            unit = self._unit.get(name)
            u = f" {unit}" if unit and name not in self.baselines else ""
            rng = None
            if "range" in d:
                lo, hi, share = d["range"]
                slo, shi = shown_range(lo, hi)
                rng = (lo, hi, f"{label} = ", f"{u}{OUTSIDE_RANGE}{share}% of the training participants "
                       f"({slo}–{shi}{u}); {EXTRAPOLATES}")
            little = None
            if "little" in d:
                n_obs, trials = d["little"]
                little = (f"{LITTLE_DATA}{label} (observed for {n_obs} training participant{'' if n_obs == 1 else 's'} "
                          f"in {trials} trial{'' if trials == 1 else 's'}); its influence on this prediction is uncertain")
            rare = []
            if d.get("rare"):
                typ = self._types[j]
                cats = self._cats.get(name, [])
                for lvl, cnt in d["rare"].items():
                    code = float(lvl) if typ == "binary" else float(cats.index(lvl)) if lvl in cats else None
                    if code is not None:
                        rare.append((code, f"{RARE_LEVEL}{label} = {lvl} ({cnt}); "
                                           "the prediction rests on little data for this value"))
            rules.append(InputRule(j, rng, little, tuple(rare)))
        return rules

    def _patient_warnings(self, F: np.ndarray) -> list[list[str]]:
        """Per patient, the warnings of the input rules in rule order, each worded by
        :meth:`InputRule.texts` (the one builder, whatever the batch size): for a few patients every
        value is looked at; for many, each rule first picks the rows it may apply to in one array
        operation (:meth:`InputRule.rows`)."""
        n = F.shape[0]
        warns: list[list[str]] = [[] for _ in range(n)]
        cols = F.T.tolist() if n <= SMALL_MAX_ROWS else None
        for rule in self._wrules:
            if cols is not None:
                rows, values = range(n), cols[rule.column]
            else:
                x = F[:, rule.column]
                sel = rule.rows(x)
                rows, values = sel.tolist(), x[sel].tolist()
            for i, v in zip(rows, values):
                texts = rule.texts(v)
                if texts:
                    warns[i] += texts
        return warns

    def _network_warnings(self, comparator: str, tasks: list[Task]) -> list[str]:
        out = []
        have = [t for t in tasks if t.net is not None and comparator in t.net["nodes"]]
        unavailable = [t.task for t in tasks if t not in have]
        out.append(f"{comparator} is not one of the benefit learners' classes: its benefit comes from the one-stage "
                   "IPD network model (node effects and exercise-content interactions, pooled over every trial "
                   "in the network)" + (f" for {', '.join(t.task for t in have)}" if have else ""))
        if unavailable:
            out.append(f"no network model covers {comparator} for {', '.join(unavailable)}: no prediction there")
        ind = [t for t in have if t.net["evidence"][comparator]["evidence"] == "indirect only"]
        if ind:
            out.append(f"no trial compared {self.active} with {comparator} directly ({', '.join(t.task for t in ind)}): "
                       "the comparison rests on indirect evidence only, through the network's other treatments "
                       "(it assumes consistency of direct and indirect evidence)")
        few = [(t.task, t.net["evidence"][comparator]) for t in have
               if t.net["evidence"][comparator]["trials"] < 2 or t.net["evidence"][comparator]["participants"] < 60]
        if few:
            tr = sorted({e["trials"] for _, e in few})
            pa = sorted({e["participants"] for _, e in few})
            tr_txt = f"{tr[0]}" if len(tr) == 1 else f"{tr[0]}-{tr[-1]}"
            pa_txt = f"{pa[0]}" if len(pa) == 1 else f"{pa[0]}-{pa[-1]}"
            out.append(f"few trials included {comparator} ({count_words(tr_txt, 'trial')}, "
                       f"{count_words(pa_txt, 'participant')} on it, in {len(few)} of "
                       f"{len(tasks)} outcome x follow-up predictions): its effect rests on little data")
        if self.synthetic:
            out.append(SYNTHETIC)
        return out

    def _imputation_warned(self, F: np.ndarray, warns: list[list[str]]) -> list[list[str]]:
        """``warns`` with the heavy-imputation warning (predict/imputed.py) first where it applies."""
        cols = [self._index[c] for c in self._covariates]
        share = imputed_inputs.share_threshold(self.manifest)
        for w, extra in zip(warns, imputed_inputs.imputation_warnings(F, cols, share)):
            if extra:
                w.insert(0, extra)
        return warns
