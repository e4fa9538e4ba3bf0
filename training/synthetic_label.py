"""The synthetic-data label on every figure of a synthetic model.

:func:`label_png` adds a red band reading :data:`LABEL` above a PNG (any PNG: redrawn card figures
and the training run's plots alike) and marks the file as labelled in a PNG text chunk, so a
figure is never labelled twice. Deterministic: Agg backend, fixed dpi, no software/time metadata.
:func:`label_svg` does the same for an SVG (a band drawn above the figure, the mark in its
``<metadata>``). The wording is :data:`predict.synthetic_marker.LABEL` (one owner for figures and
tables).
"""
from __future__ import annotations

import io
import re

from predict.synthetic_marker import LABEL

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


def svg_is_labelled(svg: str) -> bool:
    return f"<metadata>{MARK}</metadata>" in svg


_LEN = re.compile(r"^\s*([0-9.]+)\s*([a-z%]*)\s*$")


def label_svg(svg: str) -> str:
    """``svg`` (an SVG document as text, e.g. matplotlib's) with the synthetic band on top: the
    canvas grows by a band of :data:`BAND_PX` (in the view box's units, scaled to the height), the
    figure moves down under it, and ``<metadata>`` holds the mark (unchanged if already labelled)."""
    if svg_is_labelled(svg):
        return svg
    m = re.search(r"<svg\b[^>]*>", svg)
    if m is None:
        raise ValueError("not an SVG document (no <svg> element)")
    tag = m.group(0)
    vb = re.search(r'viewBox="([^"]+)"', tag)
    if vb is None:
        raise ValueError("SVG without a viewBox: cannot add the synthetic band")
    x0, y0, w, h = (float(v) for v in vb.group(1).replace(",", " ").split())
    band = max(18.0, 0.06 * h)
    new_tag = tag.replace(vb.group(0), f'viewBox="{x0:g} {y0:g} {w:g} {h + band:g}"')
    hm = re.search(r'height="([^"]+)"', new_tag)
    if hm is not None:
        val = _LEN.match(hm.group(1))
        if val:
            num, unit = float(val.group(1)), val.group(2)
            new_tag = new_tag.replace(hm.group(0), f'height="{num * (h + band) / h:g}{unit}"', 1)
    head = (f"<metadata>{MARK}</metadata>"
            f'<rect x="{x0:g}" y="{y0:g}" width="{w:g}" height="{band:g}" fill="#b00020"/>'
            f'<text x="{x0 + w / 2:g}" y="{y0 + band / 2:g}" fill="#ffffff" font-family="DejaVu Sans, sans-serif" '
            f'font-size="{0.55 * band:g}" font-weight="bold" text-anchor="middle" dominant-baseline="central">'
            f"{LABEL}</text>"
            f'<g transform="translate(0 {band:g})">')
    end = svg.rfind("</svg>")
    return svg[:m.start()] + new_tag + head + svg[m.end():end] + "</g>" + svg[end:]


def label_folder(folder) -> int:
    """Label every ``*.png`` and ``*.svg`` in ``folder`` (recursively) in place; returns how many."""
    from pathlib import Path

    n = 0
    for p in sorted(Path(folder).rglob("*.png")):
        data = p.read_bytes()
        new = label_png(data)
        if new is not data:
            p.write_bytes(new)
            n += 1
    for p in sorted(Path(folder).rglob("*.svg")):
        text = p.read_text("utf-8")
        new_text = label_svg(text)
        if new_text != text:
            p.write_text(new_text, "utf-8")
            n += 1
    return n
