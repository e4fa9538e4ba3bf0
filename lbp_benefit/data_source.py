"""Where a command's data comes from: the user's dataset folder, or the embedded default
(the calibrated simulator, synthetic)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from training.dataset import Dataset, load_dataset

SYNTHETIC_NOTE = ("SYNTHETIC DATA: the embedded default is the calibrated simulator (scenario hayden2020); "
                  "results are not for clinical use.")


def load_source(data: Optional[Path], config: Optional[Path], seed: int = 1, drop_invalid: bool = False,
                strict: bool = False) -> tuple[Dataset, bool]:
    """(dataset, is_synthetic). Without ``--data`` the default scenario is simulated and read back
    through the same loader as user data. ``strict``: warnings are errors."""
    if data is not None:
        return load_dataset(data, config, drop_invalid=drop_invalid, strict=strict), False
    from training.simulate import simulate_dataset

    sim = simulate_dataset("hayden2020", seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix="lbp-default-"))
    sim.write(tmp)
    return load_dataset(tmp, config), True
