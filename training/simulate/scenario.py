"""Scenarios: the simulator's parameters, read from YAML in ``training/scenarios``.

A scenario holds everything the data-generating process needs: the trial design (trials,
arms, instruments, follow-up weeks, which covariates each trial measured), the case-mix
model, the outcome model (natural course, prognostic effects, treatment effects,
heterogeneity, effect modifiers) and the observation process (missed visits and items).
The default, ``hayden2020``, copies the published numbers it needs (each with its source).

A scenario may start from another with ``base: NAME`` and override keys; mappings merge
key by key, anything else (lists, numbers) replaces the base value.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from predict.errors import LbpError
from training.config import StudyConfig, load_config
from training.instruments import BUILTIN

COVARIATES: tuple[str, ...] = (
    "age", "female", "education_beyond_high_school", "current_smoker", "physically_active", "bmi",
    "lbp_history", "employed", "sick_leave_12m", "heavy_physical_work", "general_health", "mental_health",
    "fear_avoidance", "social_support", "episode_months", "leg_pain", "lbp_medication",
)
OUTCOMES: tuple[str, ...] = ("pain", "function")
BASELINES: tuple[str, ...] = tuple(f"baseline_{o}" for o in OUTCOMES)
LATENT: tuple[str, ...] = COVARIATES + BASELINES
FOLLOW_UPS: tuple[str, ...] = ("short", "moderate", "long")
RECOVERY = "global_recovery"
KINDS = ("normal", "binary", "lognormal", "shifted_lognormal")
TERMS = ("linear", "poly2", "log1p", "hinge", "product")


@dataclass(frozen=True)
class Arm:
    label: str
    treatment: str
    n: int
    subtype: str | None = None


@dataclass(frozen=True)
class Trial:
    id: str
    arms: tuple[Arm, ...]
    instruments: dict  # outcome -> instrument code or None (not collected)
    weeks: dict  # follow-up -> tuple of weeks (main = closest to the target week)
    setting: str = ""
    country: str = ""
    casemix: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(a.n for a in self.arms)

    def measures(self, outcome: str, follow_up: str | None = None) -> bool:
        if self.instruments.get(outcome) is None:
            return False
        return follow_up is None or bool(self.weeks.get(follow_up))


@dataclass
class Scenario:
    """A loaded, validated scenario. ``raw`` is the merged YAML."""

    name: str
    description: str
    raw: dict
    trials: tuple[Trial, ...]
    availability: dict  # covariate -> frozenset of trial ids that measured it
    config: StudyConfig
    digest: str
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_participants(self) -> int:
        return sum(t.size for t in self.trials)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.treatment_classes

    @property
    def comparators(self) -> tuple[str, ...]:
        return self.config.comparators

    @property
    def published(self) -> dict | None:
        return self.raw.get("published")

    def target_week(self, follow_up: str) -> float:
        return {w.name: w.target_week for w in self.config.windows}[follow_up]

    def precision(self, instrument: str) -> float:
        return float(self.raw["precision"][instrument])

    def grid_step(self, instrument: str | None) -> float:
        """Spacing of the instrument's rounded values on the 0–100 scale (0 = not rounded)."""
        if instrument is None:
            return 0.0
        ins = BUILTIN[instrument]
        return 100.0 * self.precision(instrument) / (ins.max - ins.min)

    def scaled(self, n_participants: int | None) -> "Scenario":
        """The same scenario with every arm resized in proportion so that the total is
        ``n_participants`` (largest-remainder rounding, at least one per arm)."""
        if n_participants is None or n_participants == self.n_participants:
            return self
        arms = [(i, j, a.n) for i, t in enumerate(self.trials) for j, a in enumerate(t.arms)]
        if n_participants < len(arms):
            raise LbpError(f"--participants {n_participants}: the scenario has {len(arms)} arms; give at least that many")
        sizes = np.array([n for _, _, n in arms], dtype=float)
        exact = sizes * (n_participants / sizes.sum())
        new = np.maximum(np.floor(exact).astype(np.int64), 1)
        short = n_participants - int(new.sum())
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        k = 0
        while short != 0:
            idx = order[k % len(order)]
            if short > 0:
                new[idx] += 1
                short -= 1
            elif new[idx] > 1:
                new[idx] -= 1
                short += 1
            k += 1
        trials = list(self.trials)
        for (i, j, _), n in zip(arms, new):
            t = trials[i]
            arms_t = list(t.arms)
            arms_t[j] = replace(arms_t[j], n=int(n))
            trials[i] = replace(t, arms=tuple(arms_t))
        return Scenario(self.name, self.description, self.raw, tuple(trials), self.availability, self.config,
                        self.digest + f"/n={n_participants}")


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    files = resources.files("training.scenarios").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def _read(name: str) -> tuple[dict, str]:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        text = p.read_text("utf-8")
    else:
        res = resources.files("training.scenarios").joinpath(f"{name}.yaml")
        if not res.is_file():
            raise LbpError(f"unknown scenario {name!r}; available: {', '.join(list_scenarios())} (or a path to a .yaml file)")
        text = res.read_text("utf-8")
    try:
        raw = _parse(text)
    except yaml.YAMLError as exc:
        raise LbpError(f"scenario {name}: invalid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise LbpError(f"scenario {name}: the top level must be a mapping")
    return raw, text


_PARSED: dict = {}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    """Parse YAML (C loader when available), caching by content; callers get a deep copy."""
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _PARSED:
        _PARSED[key] = yaml.load(text, Loader=_LOADER)
    return copy.deepcopy(_PARSED[key])


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _resolve(name: str, seen: tuple[str, ...] = ()) -> tuple[dict, str]:
    if name in seen:
        raise LbpError(f"scenario {name}: 'base' loops ({' -> '.join(seen + (name,))})")
    raw, text = _read(name)
    base = raw.pop("base", None)
    if base is None:
        return raw, text
    braw, btext = _resolve(str(base), seen + (name,))
    return _merge(braw, raw), btext + "\n---\n" + text


def load_scenario(name: str = "hayden2020") -> Scenario:
    """Load a shipped scenario by name (or a YAML file by path), resolving ``base``."""
    if isinstance(name, Scenario):
        return name
    raw, text = _resolve(str(name))
    return _build(raw, hashlib.sha256(text.encode()).hexdigest()[:16], str(name))


def _need(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise LbpError(f"scenario {where}: '{key}' is required")
    return d[key]


def _build(raw: dict, digest: str, where: str) -> Scenario:
    cfg = load_config()
    classes = cfg.treatment_classes
    windows = {w.name: w for w in cfg.windows}
    if tuple(windows) != FOLLOW_UPS:
        raise LbpError(f"scenario {where}: the default config's follow-ups must be {FOLLOW_UPS}")
    trials = []
    for i, t in enumerate(_need(raw, "trials", where) or []):
        tid = str(_need(t, "id", f"{where} trial #{i + 1}"))
        arms = []
        for a in _need(t, "arms", f"{where} trial {tid}"):
            tr = a.get("treatment")
            if tr not in classes:
                raise LbpError(f"scenario {where}: trial {tid} arm {a.get('arm')!r}: unknown treatment {tr!r}")
            st = a.get("subtype")
            if st is not None and (st not in cfg.subtypes or tr not in cfg.subtype_classes):
                raise LbpError(f"scenario {where}: trial {tid} arm {a.get('arm')!r}: subtype {st!r} not allowed")
            n = int(a.get("n", 0))
            if n < 1:
                raise LbpError(f"scenario {where}: trial {tid} arm {a.get('arm')!r}: n must be >= 1")
            arms.append(Arm(str(a["arm"]), tr, n, st))
        if len({a.label for a in arms}) != len(arms):
            raise LbpError(f"scenario {where}: trial {tid}: arm labels repeat")
        instr = {}
        for o in OUTCOMES:
            code = t.get(o)
            if code is not None and (code not in BUILTIN or code not in cfg.outcomes[o].instruments):
                raise LbpError(f"scenario {where}: trial {tid}: {o} instrument {code!r} is not a {o} instrument")
            instr[o] = code
        if instr["pain"] is None and instr["function"] is None:
            raise LbpError(f"scenario {where}: trial {tid} measures neither pain nor function")
        weeks = {}
        for f, wk in (t.get("weeks") or {}).items():
            if f not in windows:
                raise LbpError(f"scenario {where}: trial {tid}: unknown follow-up {f!r}")
            wk = tuple(float(x) for x in wk)
            w = windows[f]
            if not all(w.after < x <= w.up_to for x in wk) or len(set(wk)) != len(wk):
                raise LbpError(f"scenario {where}: trial {tid}: weeks {wk} not distinct and inside the {f} window")
            d = [abs(x - w.target_week) for x in wk]
            if sorted(d)[:2].count(min(d)) > 1:
                raise LbpError(f"scenario {where}: trial {tid}: two {f} weeks equally close to the target")
            weeks[f] = tuple(sorted(wk, key=lambda x: (abs(x - w.target_week), x)))  # main first
        if "short" not in weeks:
            raise LbpError(f"scenario {where}: trial {tid}: every trial has a short-term follow-up")
        cm = dict(t.get("casemix") or {})
        bad = set(cm) - set(LATENT)
        if bad:
            raise LbpError(f"scenario {where}: trial {tid}: casemix names unknown variables {sorted(bad)}")
        trials.append(Trial(tid, tuple(arms), instr, weeks, str(t.get("setting", "")), str(t.get("country", "")), cm))
    if not trials:
        raise LbpError(f"scenario {where}: no trials")
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        raise LbpError(f"scenario {where}: trial ids repeat")
    avail = {}
    spec = raw.get("covariate_trials") or {}
    for c in COVARIATES:
        v = spec.get(c, "all")
        if v == "all":
            avail[c] = frozenset(ids)
        else:
            unknown = set(map(str, v)) - set(ids)
            if unknown:
                raise LbpError(f"scenario {where}: covariate_trials.{c} names unknown trials {sorted(unknown)}")
            avail[c] = frozenset(map(str, v))
    cov = _need(raw, "covariates", where)
    for c in LATENT:
        s = _need(cov, c, f"{where} covariates")
        if s.get("kind") not in KINDS:
            raise LbpError(f"scenario {where}: covariate {c}: kind must be one of {KINDS}")
    names = list(LATENT)
    R = np.eye(len(names))
    for a, b, r in raw.get("correlations") or []:
        if a not in names or b not in names or a == b or not -1 < float(r) < 1:
            raise LbpError(f"scenario {where}: bad correlation [{a}, {b}, {r}]")
        R[names.index(a), names.index(b)] = R[names.index(b), names.index(a)] = float(r)
    if np.linalg.eigvalsh(R).min() <= 1e-8:
        raise LbpError(f"scenario {where}: the latent correlation matrix is not positive definite")
    for c in classes:
        if c != cfg.active and c not in _need(raw, "effects", where):
            raise LbpError(f"scenario {where}: effects.{c} is required")
    for key in ("modifiers", "prognostic", "extra_modifiers"):
        for term in raw.get(key) or []:
            if term.get("term") not in TERMS:
                raise LbpError(f"scenario {where}: {key}: unknown term {term.get('term')!r}")
            for v in (term.get("vars") or [term.get("var")]):
                if v not in LATENT:
                    raise LbpError(f"scenario {where}: {key}: unknown variable {v!r}")
    for code in BUILTIN:
        _need(_need(raw, "precision", where), code, f"{where} precision")
    for o in OUTCOMES:
        spec_o = _need(_need(raw, "outcomes", where), o, f"{where} outcomes")
        for k in ("natural_course", "sd"):
            for f in FOLLOW_UPS:
                _need(_need(spec_o, k, f"{where} outcomes.{o}"), f, f"{where} outcomes.{o}.{k}")
        if not all(math.isfinite(float(v)) for v in spec_o["sd"].values()):
            raise LbpError(f"scenario {where}: outcomes.{o}.sd must be numbers")
    return Scenario(str(raw.get("name", where)), str(raw.get("description", "")), raw, tuple(trials), avail, cfg, digest)
