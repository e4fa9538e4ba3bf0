"""The small example dataset shipped with the package: 4 synthetic trials in the IPD data format
(for demos and tests; regenerate with ``scripts/make_example_data.py``)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_data_dir() -> Path:
    """Folder of the shipped example dataset."""
    return Path(str(resources.files(__name__)))
