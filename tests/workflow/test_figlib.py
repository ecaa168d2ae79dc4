"""notebooks/figlib.py without the workflow: PDF fonts are TrueType (Type 42), never Type 3."""

import sys

import pytest

from .helpers import REPO

sys.path.insert(0, str(REPO / "notebooks"))
figlib = pytest.importorskip("figlib")


def pdf_fonts_are_truetype(data: bytes) -> bool:
    """Every embedded font is a TrueType program (FontFile2), none is a Type 3 font."""
    return b"/Type3" not in data and b"/FontFile2" in data


def test_saved_pdf_embeds_truetype_fonts(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_xlabel("ranks p [-]")
    ax.set_ylabel("time per step [s]")
    fig.suptitle("fonts: TrueType only")
    with plt.rc_context({"pdf.fonttype": 3}):  # whatever the caller's settings
        pdf, png = figlib.save(fig, tmp_path, "fonts")
    plt.close(fig)
    assert pdf_fonts_are_truetype(pdf.read_bytes())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
