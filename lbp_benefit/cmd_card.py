"""``lbp-benefit card``: regenerate a model's card (Markdown, JSON, CHAI XML, PNG figures) from its artifact.

The artifact is loaded with :func:`predict.artifact.load_artifact` (every file hash-verified);
the card is rebuilt from the artifact's ``report/`` files and its manifest with
:func:`training.cards.build_card`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Optional

import typer

REPORT_PREFIX = "report/"


def card_from_artifact(model: Path, *, figure_prefix: str = "", owner: Path | None = None):
    """Load ``model`` (a folder or .zip), verify it, and build its card from ``report/`` and the
    manifest. Raises :class:`predict.errors.LbpError` on a bad artifact or missing report files."""
    from predict.artifact import load_artifact
    from predict.errors import LbpError
    from training.cards import build_card
    from training.cards.owner import load_owner

    owner_facts = load_owner(owner) if owner is not None else None
    art = load_artifact(model)
    report = {n[len(REPORT_PREFIX):]: b for n, b in art.files.items() if n.startswith(REPORT_PREFIX)}
    if not report:
        raise LbpError(f"{model}: the artifact has no {REPORT_PREFIX} files; a card cannot be rebuilt from it")
    manifest = {k: v for k, v in art.manifest.items() if k != "files"}
    with tempfile.TemporaryDirectory(prefix="lbp-card-") as tmp:
        root = Path(tmp)
        for name, data in report.items():
            rel = PurePosixPath(name)  # names were checked by load_artifact (plain relative paths)
            p = root.joinpath(*rel.parts)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return build_card(root, manifest, figure_prefix=figure_prefix, owner=owner_facts)


FORMATS = ("md", "json", "chai-xml")


def card(
    model: Path = typer.Option(..., "--model", help="Model artifact (folder or .zip) to describe."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write card.md, card.json, card.chai.xml and the "
                                                           "PNG figures (default: print the card in --format)."),
    fmt: str = typer.Option("md", "--format", help="What to print without --out: md (Markdown), json (Model Card "
                                                   "Toolkit v0.0.2 + TRIPOD+AI + HTI-1 extensions) or chai-xml "
                                                   "(CHAI Applied Model Card v0.2, validated against its XSD)."),
    owner: Optional[Path] = typer.Option(None, "--owner", help="YAML file of the model owner's statements (developer "
                                                               "contact, funding, conflicts, monitoring, updates; keys "
                                                               "as training/cards/owner_default.yaml). Default: the "
                                                               "synthetic default's statements for a synthetic model."),
) -> None:
    """Regenerate the model card (Markdown, JSON, CHAI XML, figures) from a model artifact."""
    import json

    from predict.errors import LbpError
    from training.cards import write_card
    from training.cards.chai import checked_xml

    if fmt not in FORMATS:
        raise LbpError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    c = card_from_artifact(model, owner=owner)
    if out is None:
        text = {"md": lambda: c.markdown, "json": lambda: json.dumps(c.json, indent=2, ensure_ascii=False) + "\n",
                "chai-xml": lambda: checked_xml(c.json)}[fmt]()
        typer.echo(text, nl=False)
        return
    paths = write_card(c, out)
    typer.echo(f"wrote {len(paths)} files to {out}/ (card.md, card.json, card.chai.xml, {len(c.figures)} figure(s))")
