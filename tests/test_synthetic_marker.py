"""The synthetic label on exported files: tables (a 'synthetic' column) and SVG figures (a band;
`lbp-benefit replicate` labels its forest plots with :func:`training.synthetic_label.label_folder`)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd

from predict.synthetic_marker import COLUMN, LABEL, mark_table


def test_tables_of_a_synthetic_model_say_so_on_every_row():
    df = pd.DataFrame({"participant": ["a", "b"], "x": [1.0, 2.0]})
    out = mark_table(df, True)
    assert list(out.columns) == [COLUMN, "participant", "x"] and out[COLUMN].tolist() == [True, True]
    assert list(mark_table(out, True).columns) == list(out.columns)  # never twice
    assert mark_table(df, False) is df  # a real model's table: unchanged


def test_svg_figures_get_the_band_once_and_stay_valid(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.synthetic_label import label_folder, label_svg, svg_is_labelled

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "f.svg")
    fig.savefig(tmp_path / "f.png", dpi=50)
    plt.close(fig)
    before = ET.fromstring((tmp_path / "f.svg").read_bytes())
    assert label_folder(tmp_path) == 2 and label_folder(tmp_path) == 0  # PNG and SVG, once
    text = (tmp_path / "f.svg").read_text("utf-8")
    assert svg_is_labelled(text) and label_svg(text) == text
    root = ET.fromstring(text.encode("utf-8"))
    ns = "{http://www.w3.org/2000/svg}"
    band = [t for t in root.iter(f"{ns}text") if t.text == LABEL]
    assert len(band) == 1
    vb0 = [float(v) for v in before.attrib["viewBox"].split()]
    vb1 = [float(v) for v in root.attrib["viewBox"].split()]
    assert vb1[2] == vb0[2] and vb1[3] > vb0[3]  # taller by the band; the figure moved under it
    h0, h1 = float(before.attrib["height"].rstrip("pt")), float(root.attrib["height"].rstrip("pt"))
    assert abs(h1 / h0 - vb1[3] / vb0[3]) < 1e-6
