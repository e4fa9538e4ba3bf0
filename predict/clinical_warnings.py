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
from typing import Any, Sequence

import numpy as np
import pandas as pd

from predict import imputed as imputed_inputs
from predict import support
from predict.task import Task

LITTLE_DATA_N = 100  # a covariate observed for fewer training participants (or in < 3 trials) is flagged
LITTLE_DATA_TRIALS = 3
RARE_LEVEL_N = 30  # a binary/categorical level seen in fewer training participants is flagged
SMALL_MAX_ROWS = 128  # up to this many patients are checked per value (no array calls)
SYNTHETIC = "the model was trained on synthetic (simulated) data: not for clinical use"
RARE_TEXT = ("patients like this were rare in the trials (further from the centre of the training data than "
             "{pct:.0f}% of the trial participants): the prediction extrapolates; its intervals were widened "
             "{f:.1f}-fold")


def support_notes(exps: list, F: np.ndarray) -> list[list[str]]:
    """Per patient, the "patients like this were rare" warning (largest widening over the tasks'
    supports, :mod:`predict.support`; none when no task finds the patient rare)."""
    rare, pct, fac = support.rare_patients(exps, F)
    return [[RARE_TEXT.format(pct=min(float(pct[i]), 99.9) if math.isfinite(pct[i]) else 99.0, f=float(fac[i]))]
            if rare[i] else [] for i in range(len(rare))]


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
            for w, note in zip(warns, support_notes([t.exp for t in tasks], F)):
                w += note
        return warns

    def request(self, comparator: str, tasks: list[Task]) -> list[str]:
        """The warnings that apply to every patient of a request: a comparator without a
        prediction for some task, one resting on few trials, a network-only comparator, synthetic
        training data."""
        if comparator in self.network_only:
            return self._network_warnings(comparator, tasks)
        out = []
        unavailable = [t.task for t in tasks if comparator not in t.exp["comparators"]]
        if unavailable:
            out.append(f"no trial compared {self.active} with {comparator} for {', '.join(unavailable)}: "
                       "no prediction there")
        sparse = []
        for t in tasks:
            s = ((t.exp.get("meta") or {}).get("support") or {}).get(comparator)
            if s and s.get("sparse") and s.get("trials", 0) > 0:
                sparse.append((t.task, s["trials"], s["participants"]))
        if sparse:
            tr = sorted({s[1] for s in sparse})
            pa = sorted({s[2] for s in sparse})
            tr_txt = f"{tr[0]}" if len(tr) == 1 else f"{tr[0]}-{tr[-1]}"
            pa_txt = f"{pa[0]}" if len(pa) == 1 else f"{pa[0]}-{pa[-1]}"
            out.append(f"few trials compared {self.active} with {comparator} ({tr_txt} trials, {pa_txt} participants, "
                       f"in {len(sparse)} of {len(tasks)} outcome x follow-up predictions): its average effect "
                       "rests on little data")
        if self.synthetic:
            out.append(SYNTHETIC)
        return out

    def _warning_limits(self, bg: pd.DataFrame | None) -> dict:
        out: dict[str, dict] = {}
        if bg is None or not len(bg):
            return out
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
            if name not in self.baselines and (n_obs < LITTLE_DATA_N or trials < LITTLE_DATA_TRIALS):
                d["little"] = (n_obs, trials)
            if r.get("levels"):
                counts = json.loads(r["levels"])
                d["rare"] = {k: v for k, v in counts.items() if v < RARE_LEVEL_N}
            out[name] = d
        return out

    def _warning_rules(self) -> list[tuple]:
        """The checks of :meth:`_patient_warnings`, prepared once: (column, range or None, text
        pieces, little-data text or None, [(code, text)] for rare levels)."""
        rules = []
        for name, d in self._limits.items():
            j = self._index[name]
            label = self._label.get(name, name)
            unit = self._unit.get(name)
            u = f" {unit}" if unit and name not in self.baselines else ""
            rng = None
            if "range" in d:
                lo, hi, share = d["range"]
                rng = (lo, hi, f"{label} = ", f"{u} is outside the range of {share}% of the training participants "
                       f"({lo:g}–{hi:g}{u}); the prediction extrapolates")
            little = None
            if "little" in d:
                n_obs, trials = d["little"]
                little = (f"the model has little data on {label} (observed for {n_obs} training participants "
                          f"in {trials} trials); its influence on this prediction is uncertain")
            rare = []
            if d.get("rare"):
                typ = self._types[j]
                cats = self._cats.get(name, [])
                for lvl, cnt in d["rare"].items():
                    code = float(lvl) if typ == "binary" else float(cats.index(lvl)) if lvl in cats else None
                    if code is not None:
                        rare.append((code, f"few training participants had {label} = {lvl} ({cnt}); "
                                           "the prediction rests on little data for this value"))
            rules.append((j, rng, little, rare))
        return rules

    def _patient_warnings(self, F: np.ndarray) -> list[list[str]]:
        """Per patient, the warnings of :meth:`_warning_rules` in rule order: per value for a few patients
        (no array calls), column-wise for many; the same texts either way."""
        n = F.shape[0]
        if n <= SMALL_MAX_ROWS:
            out = []
            for row in F.tolist():
                w: list[str] = []
                for j, rng, little, rare in self._wrules:
                    x = row[j]
                    if x != x:
                        continue
                    if rng is not None and (x < rng[0] or x > rng[1]):
                        w.append(f"{rng[2]}{x:g}{rng[3]}")
                    if little is not None:
                        w.append(little)
                    for code, text in rare:
                        if x == code:
                            w.append(text)
                out.append(w)
            return out
        warns: list[list[str]] = [[] for _ in range(n)]
        for j, rng, little, rare in self._wrules:
            x = F[:, j]
            if rng is not None:
                with np.errstate(invalid="ignore"):
                    idx = np.flatnonzero((x < rng[0]) | (x > rng[1]))
                for i in idx:
                    warns[i].append(f"{rng[2]}{x[i]:g}{rng[3]}")
            if little is not None:
                for i in np.flatnonzero(~np.isnan(x)):
                    warns[i].append(little)
            for code, text in rare:
                for i in np.flatnonzero(x == code):
                    warns[i].append(text)
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
            out.append(f"few trials included {comparator} ({tr[0] if len(tr) == 1 else f'{tr[0]}-{tr[-1]}'} trials, "
                       f"{pa[0] if len(pa) == 1 else f'{pa[0]}-{pa[-1]}'} participants on it, in {len(few)} of "
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
