"""The PDF of an invoice or credit note (fpdf2, DejaVu Sans embedded: accents and € render)."""

from portail.formatting import euros, french_date, month_label
from portail.models import Invoice, InvoiceKind
from portail.services.printing import NEXT, document, fit


def render(invoice: Invoice, town: str, state: str, paid_cents: int) -> bytes:
    """A one-invoice A4 PDF: the town, the payer, the lines, the total, what is left to pay."""
    pdf = document(
        f"{'Avoir' if invoice.kind is InvoiceKind.CREDIT_NOTE else 'Facture'} {invoice.number}", town
    )
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 10, town, **NEXT)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(0, 6, "Service enfance — Portail Famille", **NEXT)
    pdf.ln(4)
    title = "Avoir" if invoice.kind is InvoiceKind.CREDIT_NOTE else "Facture"
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 9, f"{title} n° {invoice.number}", **NEXT)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(0, 6, f"Période : {month_label(invoice.month)}", **NEXT)
    pdf.cell(
        0,
        6,
        f"Émise le {french_date(invoice.issued_at)}"
        + (
            ""
            if invoice.kind is InvoiceKind.CREDIT_NOTE
            else f" — à régler avant le {french_date(invoice.due_date)}"
        ),
        **NEXT,
    )
    if invoice.corrects is not None:
        pdf.cell(0, 6, f"Annule la facture n° {invoice.corrects.number}", **NEXT)
    pdf.cell(
        0,
        6,
        f"Quotient familial appliqué : {invoice.quotient if invoice.quotient is not None else 'non fourni (tranche la plus haute)'}",
        **NEXT,
    )
    pdf.ln(3)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(0, 6, invoice.family_name, **NEXT)
    pdf.set_font("DejaVu", "", 10)
    for part in [invoice.payer, *invoice.address.splitlines()]:
        if part:
            pdf.cell(0, 5, part, **NEXT)
    pdf.ln(5)
    widths = (42, 46, 44, 14, 22, 22)
    pdf.set_font("DejaVu", "B", 9)
    for width, heading in zip(
        widths, ("Enfant", "Activité", "Détail", "Jours", "Prix unit.", "Montant"), strict=True
    ):
        pdf.cell(
            width, 7, heading, border=1, align="R" if heading in ("Jours", "Prix unit.", "Montant") else "L"
        )
    pdf.ln()
    pdf.set_font("DejaVu", "", 9)
    for line in invoice.lines:
        values = (
            line.child_name,
            line.activity_name,
            line.label,
            str(line.days),
            euros(line.unit_price_cents),
            euros(line.amount_cents),
        )
        for index, (width, value) in enumerate(zip(widths, values, strict=True)):
            pdf.cell(width, 7, fit(pdf, value, width), border=1, align="R" if index >= 3 else "L")
        pdf.ln()
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(sum(widths[:-1]), 8, "Total", border=1, align="R")
    pdf.cell(widths[-1], 8, euros(invoice.total_cents), border=1, align="R", **NEXT)
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 10)
    if invoice.kind is InvoiceKind.INVOICE:
        pdf.cell(
            0,
            6,
            f"Déjà réglé : {euros(paid_cents)} — reste à payer : {euros(max(invoice.total_cents - paid_cents, 0))} — état : {state}",
            **NEXT,
        )
        pdf.ln(2)
        pdf.multi_cell(
            0,
            5,
            "Règlement par carte, chèque, espèces ou prélèvement auprès du service enfance, en rappelant le numéro de la facture.",
            **NEXT,
        )
    return bytes(pdf.output())
