"""The help screens read like a well-made typer/click tool: flags shown as flags (no ``<bool>``
value), help texts without line breaks in mid-sentence, square brackets kept (``[spark]``), and
every command and option documented."""
from __future__ import annotations

import inspect
import re

import pytest
import typer
from typer.testing import CliRunner

from lbp_benefit.cli import app

ROOT = typer.main.get_command(app)
BOX = re.compile(r"[│╭╮╰╯─]")


def _commands(cmd, path: tuple[str, ...] = ()) -> list:
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):  # a group (typer vendors its own click: duck-typed)
        for name, sub in cmd.commands.items():
            out += _commands(sub, path + (name,))
    return out


COMMANDS = _commands(ROOT)


def _help(path: tuple[str, ...], width: int = 400) -> str:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width), "TERMINAL_WIDTH": str(width)},
                           terminal_width=width)
    assert r.exit_code == 0, r.output
    return r.output


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_flags_show_no_value_and_every_option_is_documented(path, cmd):
    text = _help(path)
    assert "<bool>" not in text
    for p in cmd.params:
        if p.param_type_name == "option" and not p.hidden:
            assert p.help, f"{' '.join(path)} {p.opts[0]} has no help text"
            if p.is_flag:  # the option's row goes straight from its name(s) to its help text
                row = next(line for line in text.splitlines() if re.search(re.escape(p.opts[0]) + r"\s", line))
                after = BOX.sub(" ", row.split(p.opts[0], 1)[1]).split()
                after = [w for w in after if not w.startswith("--no-")]
                assert after and _flat(p.help).startswith(after[0]), row


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_paragraphs_are_not_broken_mid_sentence(path, cmd):
    """On a wide terminal every paragraph of the command's help, and every option's help, stands on
    one line: a line break written into a docstring must not reach the screen."""
    text = _help(path)
    lines = [_flat(BOX.sub(" ", line)) for line in text.splitlines()]
    for para in inspect.cleandoc(cmd.help or "").split("\n\n")[:1]:
        flat = _flat(para.replace("`", ""))
        assert any(flat in line for line in lines), f"{' '.join(path)}: help paragraph broken:\n{text}"
    if path:  # the command list of the parent shows the first sentence(s) on one line too
        parent = _help(path[:-1])
        row = [line for line in parent.splitlines() if BOX.sub(" ", line).split()[:1] == [path[-1]]]
        assert len(row) == 1
        nxt = parent.splitlines()[parent.splitlines().index(row[0]) + 1]
        siblings = dict(COMMANDS)[path[:-1]].commands
        assert nxt.strip().startswith("╰") or BOX.sub(" ", nxt).split()[0] in siblings, \
            f"{path[-1]}: description continues on a second line:\n{parent}"


def test_square_brackets_survive_rich_markup():
    assert "needs the [spark] extra" in _flat(BOX.sub(" ", _help(("score",))))
