"""Study config: the covariates, outcomes, instruments, treatment classes and follow-up
windows of a pooled IPD dataset.

The default (``configs/lbp_default.yaml``) covers the 19 candidate modifiers of the seed
IPD meta-analysis. A user with another study writes their own YAML (schema:
:mod:`training.config_schema`, printed by ``lbp-benefit config schema``; a draft from the data:
``lbp-benefit config init --data DIR``). Every mistake is one line naming the file and key path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from predict.errors import LbpError
from predict.yaml_file import load_yaml
from predict.schema import CovariateSpec, FeatureSchema
from training import config_schema as S
from training.instruments import Instrument, registry

DEFAULT_CONFIG = "lbp_default.yaml"
RECOVERY = "global_recovery"
EVENT = "event"  # built-in 0/1 instrument of binary outcomes
TOP_KEYS = set(S.StudySchema.model_fields)


@dataclass(frozen=True)
class OutcomeSpec:
    name: str
    instruments: tuple[str, ...]
    label: str = ""
    recovery_min_points: float | None = None
    kind: str = "continuous"  # 'continuous' | 'binary'
    baseline: bool = True
    direction: str = "higher_is_worse"  # binary: is the event bad (higher_is_worse) or good
    follow_up: tuple[str, ...] | None = None  # windows analysed (None: all)
    smallest_worthwhile: dict | None = None  # {'absolute': x} or {'relative': f}
    derived: bool = False


@dataclass(frozen=True)
class Window:
    """A follow-up window: measurements with ``after < week <= up_to``; the one closest to
    ``target_week`` is used (ties go to the earlier week)."""

    name: str
    target_week: float
    after: float
    up_to: float


@dataclass(frozen=True)
class StudyConfig:
    name: str
    covariates: FeatureSchema
    outcomes: dict[str, OutcomeSpec]
    instruments: dict[str, Instrument]
    treatment_classes: tuple[str, ...]
    active: str
    subtypes: tuple[str, ...]
    subtype_classes: tuple[str, ...]
    comparisons: dict[str, tuple[str, ...]]
    windows: tuple[Window, ...]
    recovery_relative: float | None
    recovery_combine: str
    recovery_adjust_for: str | None
    description: str = ""
    source: str = "default"
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    adjust_for: tuple[str, ...] = ()
    intervention_label: str = ""
    comparator_label: str = "comparator"
    min_trial_size: int = 10
    plausible: dict = field(default_factory=dict)  # covariate -> (low, high) soft range
    recovery: OutcomeSpec | None = None  # the derived global-recovery outcome, when configured
    subgroups: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainOptions: missing, imputations, class_shrinkage

    @property
    def window_names(self) -> list[str]:
        return [w.name for w in self.windows]

    @property
    def comparators(self) -> tuple[str, ...]:
        return tuple(c for c in self.treatment_classes if c != self.active)

    @property
    def recovery_name(self) -> str:
        return self.recovery.name if self.recovery is not None else RECOVERY

    @property
    def recovery_sources(self) -> list[str]:
        """Outcomes whose improvement defines global recovery (those with minimum points)."""
        return [o for o, s in self.outcomes.items() if s.recovery_min_points is not None]

    @property
    def all_outcomes(self) -> dict[str, OutcomeSpec]:
        """Measured outcomes, then the derived recovery outcome (if configured)."""
        return {**self.outcomes, **({self.recovery.name: self.recovery} if self.recovery is not None else {})}

    def outcome(self, name: str) -> OutcomeSpec | None:
        return self.all_outcomes.get(name)

    def outcome_type(self, name: str) -> str:
        """'binary' or 'continuous' for a measured or derived outcome (unknown names: continuous,
        except the legacy name ``global_recovery``)."""
        spec = self.outcome(name)
        if spec is None:
            return "binary" if name == RECOVERY else "continuous"
        return spec.kind

    def has_baseline(self, name: str) -> bool:
        spec = self.outcome(name)
        if spec is None:
            return True
        if spec.derived:
            return self.recovery_adjust_for is not None
        return spec.baseline

    @property
    def baseline_outcomes(self) -> list[str]:
        """Measured outcomes with a week-0 baseline (these give ``baseline_<outcome>`` features)."""
        return [o for o, s in self.outcomes.items() if s.baseline]


def _near(word: str, options) -> str:
    near = S.nearest(str(word), list(options))
    return f" (did you mean '{near[0]}'?)" if near else (f" (choose from {', '.join(map(str, options))})" if options else "")


def parse_config(raw: dict, source: str = "<dict>") -> StudyConfig:
    """Build a :class:`StudyConfig` from parsed YAML. Raises :class:`LbpError` with one line per
    mistake, each naming the config file and the key path."""
    where = f"study config {source}"
    if not isinstance(raw, dict):
        raise LbpError(f"{where}: the top level must be a mapping of keys (name, treatments, outcomes, ...)")
    try:
        m = S.StudySchema.model_validate(raw)
    except ValidationError as exc:
        raise LbpError("\n".join(S.format_errors(exc, source))) from None
    errors: list[str] = []

    def err(path: str, text: str) -> None:
        errors.append(f"{where}: {path}: {text}")

    tr = m.treatments
    comparisons = {}
    for k, v in m.comparisons.items():
        for c in v:
            if c not in tr.classes or c == tr.active:
                err(f"comparisons.{k}", f"{c!r} is not a comparator class{_near(c, [x for x in tr.classes if x != tr.active])}")
        comparisons[k] = tuple(v)
    try:
        instr = registry({k: v.model_dump() for k, v in m.instruments.items()} | {})
    except LbpError as exc:
        raise LbpError(f"{where}: instruments: {exc}") from None
    instr.setdefault(EVENT, Instrument(EVENT, 0.0, 1.0, "higher_is_worse", "Event (1 = happened, 0 = did not)"))
    specs = []
    for name, c in m.covariates.items():
        try:
            specs.append(CovariateSpec(
                name=name, type=c.type, label=c.label or name, unit=c.unit, range=c.range,
                categories=tuple(c.categories) if c.categories else None,
                reference=(c.reference if c.reference is not None else (c.categories[0] if c.type == "categorical" else None)),
                description=c.description, missing=c.missing))
        except LbpError as exc:
            err(f"covariates.{name}", str(exc))
    plausible = {n: tuple(c.plausible) for n, c in m.covariates.items() if c.plausible is not None}
    windows = sorted((Window(n, w.target_week, w.after, w.up_to) for n, w in m.follow_up.items()), key=lambda w: w.after)
    for a, b in zip(windows, windows[1:]):
        if b.after < a.up_to:
            err(f"follow_up.{b.name}", f"overlaps window {a.name!r} (after {b.after:g} < its up_to {a.up_to:g})")
    gr = m.global_recovery
    min_points = dict(gr.min_points or {}) if gr is not None else {}
    outcomes = {}
    for name, o in m.outcomes.items():
        base = o.baseline if o.baseline is not None else (o.kind == "continuous")
        ins = tuple(o.instruments) if o.instruments else (EVENT,)
        for i in ins:
            if i not in instr:
                err(f"outcomes.{name}.instruments", f"unknown instrument {i!r}; declare it under 'instruments:'{_near(i, instr)}")
            elif o.kind == "binary" and (instr[i].min, instr[i].max) != (0.0, 1.0):
                err(f"outcomes.{name}.instruments", f"a binary outcome needs a 0/1 instrument; {i!r} is {instr[i].min:g}-{instr[i].max:g}")
        for w in o.follow_up or []:
            if w not in m.follow_up:
                err(f"outcomes.{name}.follow_up", f"unknown window {w!r}{_near(w, m.follow_up)}")
        pts = o.recovery_min_points if o.recovery_min_points is not None else min_points.get(name)
        outcomes[name] = OutcomeSpec(
            name, ins, o.label or name, pts, o.kind, base, o.direction or "higher_is_worse",
            tuple(o.follow_up) if o.follow_up else None,
            o.smallest_worthwhile.model_dump(exclude_none=True) if o.smallest_worthwhile else None)
    for k in min_points:
        if k not in outcomes:
            err("global_recovery.min_points", f"{k!r} is not an outcome{_near(k, outcomes)}")
        elif outcomes[k].kind != "continuous" or not outcomes[k].baseline:
            err("global_recovery.min_points", f"{k!r} must be a continuous outcome with a baseline")
    recovery, adjust = None, None
    if gr is not None:
        adjust = gr.adjust_for
        if adjust is not None and adjust not in outcomes:
            err("global_recovery.adjust_for", f"{adjust!r} is not an outcome{_near(adjust, outcomes)}")
        elif adjust is not None and not outcomes[adjust].baseline:
            err("global_recovery.adjust_for", f"outcome {adjust!r} has no baseline to adjust for")
        sources = [o for o, s in outcomes.items() if s.recovery_min_points is not None]
        if gr.relative is not None and sources:
            if gr.name in outcomes:
                err("global_recovery.name", f"{gr.name!r} is already a measured outcome")
            recovery = OutcomeSpec(gr.name, (), gr.label or "Global recovery (1 = recovered)", None, "binary",
                                   adjust is not None, "higher_is_better", None,
                                   gr.smallest_worthwhile.model_dump(exclude_none=True) if gr.smallest_worthwhile else None,
                                   derived=True)
    names = [s.name for s in specs]
    for a in m.adjust_for:
        if a not in names:
            err("adjust_for", f"{a!r} is not a declared covariate{_near(a, names)}")
    for k in m.subgroups:
        if k not in names:
            err(f"subgroups.{k}", f"not a declared covariate{_near(k, names)}")
    reserved = {"trial", "participant", "arm", "treatment", "subtype", "treat", "value", "baseline", "outcome",
                "follow_up", "week", "instrument", "error"} | {f"baseline_{o}" for o in outcomes}
    for n in sorted(reserved & set(names)):
        err(f"covariates.{n}", "this name is reserved (a data column or a baseline feature); rename the covariate")
    if errors:
        raise LbpError("\n".join(errors))
    try:
        schema = FeatureSchema(tuple(specs))
    except LbpError as exc:
        raise LbpError(f"{where}: covariates: {exc}") from None
    return StudyConfig(
        name=m.name, description=m.description, covariates=schema, outcomes=outcomes, instruments=instr,
        treatment_classes=tuple(tr.classes), active=tr.active, subtypes=tuple(tr.subtypes),
        subtype_classes=tuple(tr.subtype_classes), comparisons=comparisons, windows=tuple(windows),
        recovery_relative=gr.relative if gr is not None else None,
        recovery_combine=gr.combine if gr is not None else "any", recovery_adjust_for=adjust,
        source=source, raw=raw, adjust_for=tuple(m.adjust_for),
        intervention_label=tr.intervention_label or tr.active.replace("_", " "),
        comparator_label=tr.comparator_label or "comparator", min_trial_size=m.min_trial_size,
        plausible=plausible, recovery=recovery, subgroups={k: list(v) for k, v in m.subgroups.items()},
        train=m.train.model_dump(),
    )


def load_config(path: str | Path | None = None) -> StudyConfig:
    """Load a study config from ``path``, or the default low back pain config."""
    if path is None:
        text = resources.files("training.configs").joinpath(DEFAULT_CONFIG).read_text("utf-8")
        return parse_config(yaml.safe_load(text), source="default (lbp_default.yaml)")
    path = Path(path)
    if not path.is_file():
        raise LbpError(f"study config {path} not found")
    return parse_config(load_yaml(path, "study config"), source=str(path))


def resolve_config(data: str | Path | None, config: str | Path | None) -> StudyConfig:
    """``--config`` wins; else the dataset folder's ``study.yaml``; else the default."""
    if config is not None:
        return load_config(config)
    if data is not None and (Path(data) / "study.yaml").is_file():
        return load_config(Path(data) / "study.yaml")
    return load_config(None)
