"""The synthetic-data label on every figure of a synthetic model.

:func:`label_png` adds a red band reading :data:`LABEL` above a PNG (any PNG: redrawn card figures
and the training run's plots alike) and marks the file as labelled in a PNG text chunk, so a
figure is never labelled twice. Deterministic: Agg backend, fixed dpi, no software/time metadata.
"""
from __future__ import annotations

import io

LABEL = "SYNTHETIC DATA \u2014 NOT FOR CLINICAL USE"
MARK = "lbp-benefit: synthetic"
BAND_PX = 30
DPI = 110


def is_labelled(png: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return im.info.get("Comment") == MARK


def label_png(png: bytes) -> bytes:
    """``png`` with the synthetic band on top (unchanged if it already has it)."""
    if is_labelled(png):
        return png
    import matplotlib.image as mpimg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    img = mpimg.imread(io.BytesIO(png), format="png")
    h, w = img.shape[:2]
    H = h + BAND_PX
    fig = Figure(figsize=(w / DPI, H / DPI), dpi=DPI)
    ax = fig.add_axes([0, 0, 1, h / H])
    ax.imshow(img, interpolation="none")
    ax.set_axis_off()
    fig.patches.append(Rectangle((0, h / H), 1, BAND_PX / H, transform=fig.transFigure, color="#b00020", zorder=0))
    fig.text(0.5, 1 - BAND_PX / 2 / H, LABEL, color="white", ha="center", va="center", fontsize=11,
             fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None, "Comment": MARK})
    return buf.getvalue()


def label_folder(folder) -> int:
    """Label every ``*.png`` in ``folder`` (recursively) in place; returns how many."""
    from pathlib import Path

    n = 0
    for p in sorted(Path(folder).rglob("*.png")):
        data = p.read_bytes()
        new = label_png(data)
        if new is not data:
            p.write_bytes(new)
            n += 1
    return n
