"""Generated model cards (Markdown + JSON + PNG figures) for exported benefit models.

``build_card(report_dir, manifest)`` reads the training run's non-participant-level summaries
(``run.json``, ``tasks.csv``, ``class_support.csv``, ``iecv/<task>/*.csv``, ``plots/*.png``,
``attrition.csv``, ``covariate_availability.csv``, optional ``subgroup_performance.csv``) and the
artifact manifest, and returns a :class:`Card`. The JSON holds a Google Model Card Toolkit schema
v0.0.2 document under ``model_card`` and namespaced extensions (``extensions.lbp_benefit``,
``extensions.tripod_ai``, ``extensions.onc_hti1``). See docs/model-card.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from predict.errors import LbpError


@dataclass
class Card:
    markdown: str
    json: dict  # JSON-able
    figures: dict[str, bytes] = field(default_factory=dict)  # PNG bytes by file name (stored under card/<name>)


def build_card(report_dir: Path, manifest: dict, *, figure_prefix: str = "", owner: dict | None = None) -> Card:
    """Build the model card from a training run's report folder and the artifact manifest.

    ``figure_prefix`` is prepended to figure links in the Markdown (default ``""``: the PNGs sit
    beside ``card.md``, as in the artifact's ``card/`` folder and ``lbp-benefit card --out``).
    Raises :class:`predict.errors.LbpError` if a required input is missing or malformed.
    Deterministic given the same inputs (the manifest's ``created`` time appears as given).
    ``owner``: the model owner's statements (:func:`training.cards.owner.load_owner`); default: the
    packaged statements for a synthetic model, none (said "not stated") for a real one.
    """
    from training.cards.content import build_sections
    from training.cards.figures import build_figures
    from training.cards.inputs import read_inputs
    from training.cards.render import banner, render_markdown
    from training.cards.schema import card_json, validate_mct_v002

    from training.cards.owner import load_owner

    inp = read_inputs(report_dir, manifest)
    if owner is None and inp.synthetic:
        owner = load_owner()
    figures = build_figures(inp)
    sections = build_sections(inp, figures, figure_prefix, owner)
    md = render_markdown(inp, sections)
    listed = [f["name"] for f in next(s for s in sections if s.id == "figures").data["figures"]]
    js = card_json(inp, sections, listed, banner(inp))
    problems = validate_mct_v002(js["model_card"])
    if problems:  # pragma: no cover - a bug, not a user error
        raise LbpError("model card: the generated MCT v0.0.2 document is invalid: " + "; ".join(problems[:5]))
    return Card(md, js, {k: figures[k] for k in sorted(figures)})


def write_card(card: Card, out: Path) -> list[Path]:
    """Write ``card.md``, ``card.json``, ``card.chai.xml`` (CHAI Applied Model Card v0.2, validated
    against its XSD) and the figures into folder ``out``; return the paths."""
    import json

    from training.cards.chai import checked_xml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "card.md", out / "card.json", out / "card.chai.xml"]
    paths[0].write_text(card.markdown, "utf-8")
    paths[1].write_text(json.dumps(card.json, indent=2, ensure_ascii=False) + "\n", "utf-8")
    paths[2].write_text(checked_xml(card.json), "utf-8")
    for name, data in sorted(card.figures.items()):
        p = out / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def __getattr__(name: str):
    if name == "subgroup_performance":
        from training.cards.subgroups import subgroup_performance

        return subgroup_performance
    raise AttributeError(name)


__all__ = ["Card", "build_card", "write_card", "subgroup_performance"]
