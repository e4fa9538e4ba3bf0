"""Study config: the covariates, outcomes, instruments, treatment classes and follow-up
windows of a pooled IPD dataset.

The default (``configs/lbp_default.yaml``) covers the 19 candidate modifiers of the seed
IPD meta-analysis. A user with another study writes their own YAML with the same keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from predict.errors import LbpError
from predict.schema import CovariateSpec, FeatureSchema
from training.instruments import Instrument, registry

DEFAULT_CONFIG = "lbp_default.yaml"
TOP_KEYS = {
    "name", "description", "treatments", "comparisons", "covariates", "outcomes",
    "instruments", "follow_up", "global_recovery", "subgroups",
}


@dataclass(frozen=True)
class OutcomeSpec:
    name: str
    instruments: tuple[str, ...]
    label: str = ""
    recovery_min_points: float | None = None


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

    @property
    def window_names(self) -> list[str]:
        return [w.name for w in self.windows]

    @property
    def comparators(self) -> tuple[str, ...]:
        return tuple(c for c in self.treatment_classes if c != self.active)


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise LbpError(f"{where}: '{key}' is required")
    return d[key]


def parse_config(raw: dict, source: str = "<dict>") -> StudyConfig:
    """Build a :class:`StudyConfig` from parsed YAML, with errors naming the config file."""
    where = f"study config {source}"
    if not isinstance(raw, dict):
        raise LbpError(f"{where}: the top level must be a mapping")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise LbpError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    try:
        tr = _need(raw, "treatments", where)
        classes = tuple(_need(tr, "classes", where + " treatments"))
        active = tr.get("active", "exercise")
        if active not in classes:
            raise LbpError(f"{where}: active treatment {active!r} is not among the classes")
        subtype_classes = tuple(tr.get("subtype_classes", []))
        for c in subtype_classes:
            if c not in classes:
                raise LbpError(f"{where}: subtype class {c!r} is not a treatment class")
        comparisons = {}
        for k, v in (raw.get("comparisons") or {}).items():
            bad = [c for c in v if c not in classes or c == active]
            if bad:
                raise LbpError(f"{where}: comparison {k!r} lists {', '.join(bad)}, not comparator classes")
            comparisons[k] = tuple(v)
        cov = raw.get("covariates") or {}
        if not isinstance(cov, dict):
            raise LbpError(f"{where}: covariates must be a mapping of name to spec")
        schema = FeatureSchema(tuple(CovariateSpec.from_dict(n, d or {}) for n, d in cov.items()))
        instr = registry(raw.get("instruments") or {})
        outcomes = {}
        for name, spec in (_need(raw, "outcomes", where) or {}).items():
            ins = tuple(_need(spec, "instruments", f"{where} outcome {name!r}"))
            bad = [i for i in ins if i not in instr]
            if bad:
                raise LbpError(f"{where}: outcome {name!r} names unknown instruments {', '.join(bad)}")
            outcomes[name] = OutcomeSpec(name, ins, spec.get("label", name), spec.get("recovery_min_points"))
        reserved = {"trial", "participant", "arm", "treatment", "subtype"} | {f"baseline_{o}" for o in outcomes}
        clash = reserved & set(schema.names)
        if clash:
            raise LbpError(f"{where}: covariate names {', '.join(sorted(clash))} are reserved")
        windows = []
        for wname, w in (_need(raw, "follow_up", where) or {}).items():
            win = Window(wname, float(_need(w, "target_week", where)), float(w.get("after", 0)), float(_need(w, "up_to", where)))
            if not (win.after < win.target_week <= win.up_to):
                raise LbpError(f"{where}: follow-up {wname!r} needs after < target_week <= up_to")
            windows.append(win)
        windows.sort(key=lambda w: w.after)
        for a, b in zip(windows, windows[1:]):
            if b.after < a.up_to:
                raise LbpError(f"{where}: follow-up windows {a.name!r} and {b.name!r} overlap")
        gr = raw.get("global_recovery") or {}
        combine = gr.get("combine", "any")
        if combine not in ("any", "all"):
            raise LbpError(f"{where}: global_recovery.combine must be 'any' or 'all'")
        adjust_for = gr.get("adjust_for")
        if adjust_for is not None and adjust_for not in outcomes:
            raise LbpError(f"{where}: global_recovery.adjust_for {adjust_for!r} is not an outcome")
    except (TypeError, AttributeError, ValueError) as exc:
        raise LbpError(f"{where}: malformed ({exc})") from exc
    return StudyConfig(
        name=str(raw.get("name", "study")),
        description=str(raw.get("description", "")),
        covariates=schema,
        outcomes=outcomes,
        instruments=instr,
        treatment_classes=classes,
        active=active,
        subtypes=tuple(tr.get("subtypes", [])),
        subtype_classes=subtype_classes,
        comparisons=comparisons,
        windows=tuple(windows),
        recovery_relative=gr.get("relative"),
        recovery_combine=combine,
        recovery_adjust_for=adjust_for,
        source=source,
        raw=raw,
    )


def load_config(path: str | Path | None = None) -> StudyConfig:
    """Load a study config from ``path``, or the default low back pain config."""
    if path is None:
        text = resources.files("training.configs").joinpath(DEFAULT_CONFIG).read_text("utf-8")
        return parse_config(yaml.safe_load(text), source="default (lbp_default.yaml)")
    path = Path(path)
    if not path.is_file():
        raise LbpError(f"study config {path} not found")
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except UnicodeDecodeError as exc:
        raise LbpError(f"study config {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise LbpError(f"study config {path}: invalid YAML ({exc})") from exc
    return parse_config(raw, source=str(path))


def resolve_config(data: str | Path | None, config: str | Path | None) -> StudyConfig:
    """``--config`` wins; else the dataset folder's ``study.yaml``; else the default."""
    if config is not None:
        return load_config(config)
    if data is not None and (Path(data) / "study.yaml").is_file():
        return load_config(Path(data) / "study.yaml")
    return load_config(None)
