"""Which models a replication fits: overall effects and interactions over outcomes,
follow-ups and comparison sets."""
from __future__ import annotations

from predict.errors import LbpError
from training.config import StudyConfig
from training.harmonise import RECOVERY
from training.meta.design import ModelSpec


def modifiers(cfg: StudyConfig) -> list[str]:
    """Candidate modifiers: every declared covariate plus the baseline of every outcome."""
    return list(cfg.covariates.names) + [f"baseline_{o}" for o in cfg.outcomes]


def outcomes(cfg: StudyConfig, available: set[str]) -> list[str]:
    return [o for o in list(cfg.outcomes) + [RECOVERY] if o in available]


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
        binary = o == RECOVERY
        for w in follow_ups:
            for c in chosen:
                specs.append(ModelSpec(o, w, c, sets[c], None, False, binary))
                if not interactions:
                    continue
                for m in (only_modifiers or modifiers(cfg)):
                    for adj in (False, True):
                        specs.append(ModelSpec(o, w, c, sets[c], m, adj, binary))
    return specs
