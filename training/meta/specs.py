"""Which models a replication fits: overall effects and interactions over outcomes,
follow-ups and comparison sets."""
from __future__ import annotations

from predict.errors import LbpError
from training.config import StudyConfig
from training.meta.design import ModelSpec


def modifiers(cfg: StudyConfig) -> list[str]:
    """Candidate modifiers: every declared covariate plus the baseline of every outcome that has one."""
    return list(cfg.covariates.names) + [f"baseline_{o}" for o in cfg.baseline_outcomes]


def outcomes(cfg: StudyConfig, available: set[str]) -> list[str]:
    return [o for o in list(cfg.outcomes) + [cfg.recovery_name] if o in available]


def spec_for(cfg: StudyConfig, outcome: str, follow_up: str, comparison: str, comparators, modifier=None,
             adjusted: bool = False) -> ModelSpec:
    """A model spec with the study's outcome kind, baseline and adjustment set."""
    return ModelSpec(outcome, follow_up, comparison, tuple(comparators), modifier, adjusted,
                     cfg.outcome_type(outcome) == "binary", adjust_for=tuple(cfg.adjust_for),
                     baseline=cfg.has_baseline(outcome), levels=categorical_levels(cfg, [modifier, *cfg.adjust_for]))


def categorical_levels(cfg: StudyConfig, names) -> tuple:
    """((name, (reference, other levels...)), ...) for the categorical covariates among ``names``."""
    out = []
    for name in dict.fromkeys(n for n in names if n):
        c = cfg.covariates[name] if name in cfg.covariates.names else None
        if c is not None and c.type == "categorical":
            ref = c.reference if c.reference in c.categories else c.categories[0]
            out.append((name, (ref, *[x for x in c.categories if x != ref])))
    return tuple(out)


def comparison_sets(cfg: StudyConfig) -> dict[str, tuple[str, ...]]:
    if cfg.comparisons:
        return dict(cfg.comparisons)
    return {"any_comparator": tuple(cfg.comparators)}


def all_specs(cfg: StudyConfig, available_outcomes: set[str], follow_ups: list[str] | None = None,
              comparisons: list[str] | None = None, interactions: bool = True,
              only_modifiers: list[str] | None = None) -> list[ModelSpec]:
    sets = comparison_sets(cfg)
    unknown = [c for c in (comparisons or []) if c not in sets] + [m for m in (only_modifiers or []) if m not in modifiers(cfg)]
    if unknown:
        raise LbpError(f"unknown comparison set or modifier: {', '.join(unknown)} "
                       f"(comparisons: {', '.join(sets)}; modifiers: {', '.join(modifiers(cfg))})")
    follow_ups = follow_ups or cfg.window_names
    chosen = comparisons or list(sets)
    specs = []
    for o in outcomes(cfg, available_outcomes):
        own = getattr(cfg.outcome(o), "follow_up", None)
        for w in [w for w in follow_ups if own is None or w in own]:
            for c in chosen:
                specs.append(spec_for(cfg, o, w, c, sets[c]))
                if not interactions:
                    continue
                for m in (only_modifiers or modifiers(cfg)):
                    for adj in (False, True):
                        specs.append(spec_for(cfg, o, w, c, sets[c], m, adj))
    return specs
