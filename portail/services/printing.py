"""What the PDFs share (invoices, headcounts): an fpdf2 document with DejaVu Sans embedded (accents
and € render), the move to the next line, and a value shortened to its column."""

from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

FONTS = Path(__file__).resolve().parents[1] / "fonts"
NEXT = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


def document(title: str, author: str, orientation: str = "P") -> FPDF:
    """An A4 document with its title, author and the DejaVu Sans fonts (regular and bold)."""
    pdf = FPDF(orientation=orientation, format="A4")
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    return pdf


def fit(pdf: FPDF, text: str, width: float) -> str:
    """Shorten a value that would overflow its column."""
    if pdf.get_string_width(text) <= width - 2:
        return text
    while text and pdf.get_string_width(text + "…") > width - 2:
        text = text[:-1]
    return text + "…"
