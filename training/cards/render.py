"""Markdown rendering of the card: the synthetic banner first, then every section in order."""
from __future__ import annotations

from training.cards import text as T
from training.cards.content import Section
from training.cards.inputs import CardInputs
from training.cards.study import study_words


def banner(inp: CardInputs) -> str | None:
    return T.SYNTHETIC_BANNER if inp.synthetic else None


def render_markdown(inp: CardInputs, sections: list[Section]) -> str:
    lines: list[str] = []
    b = banner(inp)
    if b:
        lines += [b, ""]
    lines += [f"# Model card: {inp.manifest.get('model_id')}", ""]
    if not b:
        lines += [T.REAL_NOTICE, ""]
    lines += [study_words(inp.manifest, inp.synthetic).title, ""]
    lines += ["**Contents:** " + " · ".join(f"[{s.title}](#{_anchor(n + 1, s.title)})" for n, s in enumerate(sections)), ""]
    for n, s in enumerate(sections, start=1):
        lines += [f"## {n}. {s.title}", ""]
        lines += s.md
        lines += [""]
    if b:
        lines += ["---", "", b, ""]
    return "\n".join(_strip(lines)).rstrip() + "\n"


def _anchor(n: int, title: str) -> str:
    """GitHub-style anchor of '## n. title'."""
    raw = f"{n}. {title}".lower()
    keep = "".join(ch for ch in raw if ch.isalnum() or ch in " -_")
    return keep.replace(" ", "-")


def _strip(lines: list[str]) -> list[str]:
    """Collapse runs of blank lines."""
    out: list[str] = []
    for ln in lines:
        ln = ln.rstrip()
        if ln == "" and out and out[-1] == "":
            continue
        out.append(ln)
    return out
