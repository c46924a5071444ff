"""The PDF of the attestation de frais de garde (fpdf2, DejaVu Sans embedded as on the invoices): one
family's, or the whole year's in one document, one page per family, for the town to print and post."""

from dataclasses import dataclass
from datetime import date

from fpdf import FPDF

from portail.formatting import euros, french_date
from portail.services.billing.attestation import Attestation, Holder, born_since
from portail.services.printing import NEXT, document, fit

TITLE = "Attestation de frais de garde — année {year}"
LEGAL = (
    "Attestation délivrée pour le crédit d'impôt au titre des frais de garde des jeunes enfants "
    "(article 200 quater B du code général des impôts). Les montants sont ceux effectivement payés du "
    "1er janvier au 31 décembre {year} pour l'accueil des enfants (accueils périscolaires et de loisirs). "
    "En sont exclus les repas (restauration scolaire : la cantine n'est pas un frais de garde), les "
    "majorations et les absences facturées. Les aides reçues pour la garde de ces enfants (complément "
    "de libre choix du mode de garde de la CAF, aide de l'employeur) sont à déduire du montant déclaré."
)


@dataclass(frozen=True)
class Town:
    """The issuer printed at the top: the town's name, postal address (lines) and SIRET."""

    name: str
    address: str
    siret: str


def town(config) -> Town:
    """The town as the settings describe it (TOWN_NAME, TOWN_ADDRESS, TOWN_SIRET)."""
    return Town(config["TOWN_NAME"], config.get("TOWN_ADDRESS", ""), config.get("TOWN_SIRET", ""))


def render(attestation: Attestation, holder: Holder, town: Town, issued: date) -> bytes:
    """One family's attestation of a year: a one-page A4 PDF."""
    pdf = document(TITLE.format(year=attestation.year), town.name)
    _page(pdf, attestation, holder, town, issued)
    return bytes(pdf.output())


def render_all(
    attestations: list[Attestation], holders: dict[int, Holder], town: Town, issued: date, progress=None
) -> bytes:
    """The attestations of many families in one document, a page each (the font embedded once);
    `progress(done)` is called every 100 pages."""
    year = attestations[0].year if attestations else issued.year
    pdf = document(TITLE.format(year=year), town.name)
    for done, attestation in enumerate(attestations, start=1):
        _page(pdf, attestation, holders[attestation.family_id], town, issued)
        if progress is not None and done % 100 == 0:
            progress(done)
    return bytes(pdf.output())


def _page(pdf: FPDF, attestation: Attestation, holder: Holder, town: Town, issued: date) -> None:
    year = attestation.year
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 9, town.name, **NEXT)
    pdf.set_font("DejaVu", "", 10)
    for part in town.address.splitlines():
        pdf.cell(0, 5, part, **NEXT)
    if town.siret:
        pdf.cell(0, 5, f"SIRET : {town.siret}", **NEXT)
    pdf.cell(0, 5, "Service enfance — régie de recettes", **NEXT)
    pdf.ln(8)
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(0, 9, TITLE.format(year=year), align="C", **NEXT)
    pdf.ln(5)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(0, 6, holder.name, **NEXT)
    pdf.set_font("DejaVu", "", 10)
    if holder.responsables:
        pdf.cell(0, 5, "Responsables : " + ", ".join(holder.responsables), **NEXT)
    for part in holder.address:
        pdf.cell(0, 5, part, **NEXT)
    pdf.ln(5)
    payers = " et ".join(holder.responsables) or holder.name
    paid, their = ("ont payé", "leurs") if len(holder.responsables) > 1 else ("a payé", "ses")
    pdf.multi_cell(
        0,
        5,
        f"Le régisseur du service enfance de {town.name} atteste que {payers} ({holder.name}) {paid}, "
        f"du 1er janvier au 31 décembre {year}, pour la garde de {their} enfants de moins de six ans au "
        f"1er janvier {year} (nés à compter du {french_date(born_since(year))}), les sommes suivantes :",
        **NEXT,
    )
    pdf.ln(3)
    widths = (90, 50, 40)
    pdf.set_font("DejaVu", "B", 10)
    for width, heading in zip(widths, ("Enfant", "Date de naissance", f"Payé en {year}"), strict=True):
        pdf.cell(width, 7, heading, border=1, align="R" if width == widths[-1] else "L")
    pdf.ln()
    pdf.set_font("DejaVu", "", 10)
    for child in attestation.children:
        pdf.cell(widths[0], 7, fit(pdf, child.name, widths[0]), border=1)
        pdf.cell(widths[1], 7, french_date(child.birth_date), border=1)
        pdf.cell(widths[2], 7, euros(child.cents), border=1, align="R", **NEXT)
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(sum(widths[:-1]), 8, "Total", border=1, align="R")
    pdf.cell(widths[-1], 8, euros(attestation.total_cents), border=1, align="R", **NEXT)
    pdf.ln(5)
    pdf.set_font("DejaVu", "", 8)
    pdf.multi_cell(0, 4, LEGAL.format(year=year), **NEXT)
    pdf.ln(8)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(0, 5, f"Fait le {french_date(issued)}", align="R", **NEXT)
    pdf.ln(2)
    pdf.cell(0, 5, "Le régisseur", align="R", **NEXT)
