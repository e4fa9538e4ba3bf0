"""Reading a user's YAML (or JSON) file, with one clear error naming the file.

The one owner of what every configuration reader does first: an unreadable file, text that is not
UTF-8 and invalid YAML each become an :class:`~predict.errors.LbpError` that names the file and
what it is for. Used by the study config and the model owner's file (``training``) and by the CDS
Hooks code registry and trusted-issuers file (``serving``); here because both may import
``predict`` and neither may import the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from predict.errors import LbpError


def load_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of the YAML file at ``path`` (JSON is YAML too). ``what`` names the file
    in errors ("study config", "the CDS code registry"): ``cannot read <what> <path>: <reason>``,
    ``<what> <path>: not UTF-8 text (...)`` or ``<what> <path>: invalid YAML (...)``."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise LbpError(f"{what} {p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise LbpError(f"cannot read {what} {p}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LbpError(f"{what} {p}: invalid YAML ({exc})") from exc
