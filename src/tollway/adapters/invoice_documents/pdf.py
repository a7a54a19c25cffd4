"""The invoice as PDF (fpdf2), in any script the installed fonts cover.

Fonts are embedded (subset to the glyphs used), found at run time in the places Linux distributions put
them (docs/billing.md, "Invoice documents", says which packages):

- DejaVu Sans, regular and bold: Latin, Greek, Cyrillic, Arabic, Hebrew, Armenian, Georgian, many symbols;
- WenQuanYi Micro Hei (or Noto Sans CJK) for Chinese, Japanese and Korean, as a fallback font;
- Symbola for emoji (black and white) and the symbols DejaVu lacks, as a fallback font.

With uharfbuzz installed, a document with text in a script that needs it (Arabic, Hebrew, Indic, Thai, ...) is
shaped (Arabic letters joined) and laid out by the Unicode bidirectional algorithm, so right-to-left scripts
read in their direction. Every piece of text that comes from a user is
set in a wrapping cell: a long name or address breaks into lines, and onto further pages, within the margins.
Without DejaVu the PDF falls back to the core Helvetica font, which is Latin-1 only (other characters '?').
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpdf import FPDF

    from tollway.billing.invoicing.document import InvoiceView

ROOTS = ("/usr/share/fonts", "/usr/local/share/fonts")
# paths tried in order under each root (Debian and Ubuntu first, then Alpine, Arch, Fedora)
REGULAR = (
    "truetype/dejavu/DejaVuSans.ttf",
    "dejavu/DejaVuSans.ttf",
    "TTF/DejaVuSans.ttf",
    "dejavu-sans-fonts/DejaVuSans.ttf",
)
BOLD = tuple(path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf") for path in REGULAR)
FALLBACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "cjk",
        (
            "truetype/wqy/wqy-microhei.ttc",
            "wqy-microhei/wqy-microhei.ttc",
            "opentype/noto/NotoSansCJK-Regular.ttc",
            "noto-cjk/NotoSansCJK-Regular.ttc",
        ),
    ),
    (
        "symbols",
        (
            "truetype/ancient-scripts/Symbola_hint.ttf",
            "truetype/symbola/Symbola.ttf",
            "TTF/Symbola.ttf",
            "gdouros-symbola/Symbola.ttf",
        ),
    ),
)
FAMILY = "dejavu"
LINE_MM = 5.0


@dataclass(frozen=True)
class Fonts:
    """The font files an invoice PDF embeds; `regular` None: the core Helvetica, Latin-1 only."""

    regular: Path | None = None
    bold: Path | None = None
    fallbacks: tuple[tuple[str, Path], ...] = ()
    shaping: bool = False  # uharfbuzz is installed: text is shaped and laid out right-to-left where it is

    @property
    def unicode(self) -> bool:
        return self.regular is not None


def find_fonts(roots: Sequence[str] = ROOTS) -> Fonts:
    """The fonts installed under `roots` (the distributions' font folders)."""

    def first(paths: Sequence[str]) -> Path | None:
        for root in roots:
            for path in paths:
                candidate = Path(root) / path
                if candidate.is_file():
                    return candidate
        return None

    fallbacks = tuple((name, found) for name, paths in FALLBACKS if (found := first(paths)) is not None)
    return Fonts(
        regular=first(REGULAR),
        bold=first(BOLD),
        fallbacks=fallbacks,
        shaping=importlib.util.find_spec("uharfbuzz") is not None,
    )


class _Writer:
    """Sets text in the fonts found: `text()` makes a string printable in the current font."""

    def __init__(self, pdf: FPDF, fonts: Fonts, characters: set[str]) -> None:
        self.pdf = pdf
        self._fonts = fonts
        if fonts.regular is not None:
            pdf.add_font(FAMILY, "", fonts.regular)
            pdf.add_font(FAMILY, "B", fonts.bold or fonts.regular)
            # A fallback font is read only when DejaVu lacks a character of the document (a CJK font file is
            # large: reading it costs a quarter of a second per document)
            from fpdf.fonts import TTFFont

            text_font = pdf.fonts[FAMILY]
            assert isinstance(text_font, TTFFont)
            covered = text_font.cmap
            if any(ord(c) not in covered for c in characters if c.isprintable()):
                for name, path in fonts.fallbacks:
                    pdf.add_font(name, "", path)
            if len(pdf.fonts) > 2:
                # exact_match=False: a bold CJK or emoji character is taken from the regular fallback face
                pdf.set_fallback_fonts([name for name, _ in fonts.fallbacks], exact_match=False)
            if fonts.shaping and any(_complex(c) for c in characters):
                pdf.set_text_shaping(use_shaping_engine=True)

    def font(self, style: str, size: float) -> None:
        self.pdf.set_font(FAMILY if self._fonts.unicode else "Helvetica", style, size)

    def text(self, value: str) -> str:
        if self._fonts.unicode:
            return value
        return _latin(value)


def render_pdf(document: InvoiceView, fonts: Fonts | None = None) -> bytes:
    """The invoice as PDF bytes, in `fonts` (default: those installed, found now)."""
    # fpdf2 is imported here, not at the top: it costs every `tollway` start (serve, CLI) about 0.4 s of CPU.
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    # every character the document shows (its repr keeps printable characters as they are)
    out = _Writer(pdf, fonts if fonts is not None else find_fonts(), set(repr(document)))
    text = out.text
    pdf.set_title(f"Invoice {document.number}")
    pdf.set_author(document.seller.name)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.epw

    out.font("B", 22)
    pdf.set_text_color(37, 99, 235)
    pdf.cell(width / 2, 10, "Invoice", new_x=XPos.RIGHT, new_y=YPos.TOP)
    out.font("B", 11)
    pdf.set_text_color(31, 41, 51)
    pdf.multi_cell(width / 2, 10, text(document.seller.name), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    out.font("", 10)
    seller_lines = [*_address_lines(document.seller.address), document.seller.email]
    top = pdf.get_y()
    pdf.multi_cell(
        width / 2, LINE_MM, text(f"{document.number} ({document.status})"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    below_number = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.multi_cell(
        width / 2,
        LINE_MM,
        text("\n".join(x for x in seller_lines if x)),
        align="R",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_y(max(pdf.get_y(), below_number) if pdf.page == 1 else pdf.get_y())
    pdf.ln(6)

    out.font("B", 9)
    pdf.cell(width, LINE_MM, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    out.font("B", 11)
    pdf.multi_cell(width, 6, text(document.customer.name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    out.font("", 10)
    for row in document.customer.lines:
        pdf.multi_cell(width, LINE_MM, text(row), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    with pdf.table(col_widths=(1, 1, 1, 1), text_align="LEFT", first_row_as_headings=True) as facts:
        facts.row(("Billing period", "Issued", "Due", "Amount due"))
        facts.row(tuple(text(x) for x in (document.period, document.issued, document.due, document.amount_due)))
    pdf.ln(4)

    out.font("", 9)
    with pdf.table(
        col_widths=(40, 22, 14, 12, 12),
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        first_row_as_headings=True,
    ) as table:
        table.row(("Description", "Service period", "Quantity", "Rate", "Amount"))
        for line in document.lines:
            table.row(
                tuple(
                    text(x)
                    for x in (f"{line.title}\n{line.description}", line.period, line.quantity, line.rate, line.amount)
                )
            )
            for detail in line.details:
                detail_row = table.row()
                detail_row.cell(text("    " + detail.text), colspan=4)
                detail_row.cell(text(detail.amount))
    pdf.ln(4)
    out.font("", 10)
    pdf.cell(width * 0.8, 6, "Subtotal", align="R", new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.cell(width * 0.2, 6, text(document.subtotal), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    out.font("B", 12)
    pdf.cell(width * 0.8, 8, text(f"Total ({document.currency})"), align="R", new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.cell(width * 0.2, 8, text(document.total), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


# Scripts that need shaping (joined letters, reordering, marks) or right-to-left layout: Hebrew, Arabic, Syriac,
# Thaana, N'Ko, Indic, Thai, Lao, Tibetan, Myanmar, Khmer, ..., their presentation forms, and the historic
# right-to-left blocks. A document without any is set without shaping: it changes nothing there but costs
# several times the layout time.
COMPLEX = ((0x0590, 0x1CFF), (0xFB1D, 0xFEFF), (0x10800, 0x10FFF), (0x1E800, 0x1EFFF))


def _complex(character: str) -> bool:
    code = ord(character)
    return any(low <= code <= high for low, high in COMPLEX)


def _address_lines(address: str) -> Sequence[str]:
    return [part.strip() for part in address.replace("\n", ",").split(",") if part.strip()]


def _latin(text: str) -> str:
    """The core fonts are Latin-1: currency signs outside it become their code, the rest '?'."""
    text = text.replace("€", "EUR ").replace("–", "-").replace("—", "-")
    return text.encode("latin-1", "replace").decode("latin-1")
