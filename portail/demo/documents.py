"""Demo pièces justificatives: the usual document types, and MARTIN / BERNARD files in each state."""

import io
from datetime import timedelta

import sqlalchemy as sa
from PIL import Image, ImageDraw
from pypdf import PdfWriter

from portail.extensions import db
from portail.models import DocumentScope, DocumentState, DocumentType, Family, User, Validity, utcnow
from portail.services import documents

TYPES = [
    (
        "Justificatif de domicile",
        "Facture d'énergie ou d'eau, quittance de loyer de moins de 3 mois.",
        DocumentScope.FAMILY,
        True,
        Validity.ONE_YEAR,
    ),
    (
        "Attestation CAF (quotient familial)",
        "Attestation de quotient familial de l'année en cours.",
        DocumentScope.FAMILY,
        True,
        Validity.SCHOOL_YEAR,
    ),
    (
        "Attestation d'assurance extrascolaire",
        "Responsabilité civile couvrant les activités de l'enfant.",
        DocumentScope.CHILD,
        True,
        Validity.SCHOOL_YEAR,
    ),
    (
        "Carnet de vaccinations",
        "Pages des vaccinations obligatoires, avec le nom de l'enfant.",
        DocumentScope.CHILD,
        True,
        Validity.NONE,
    ),
    (
        "Projet d'accueil individualisé (PAI)",
        "Seulement si votre enfant a un PAI.",
        DocumentScope.CHILD,
        False,
        Validity.SCHOOL_YEAR,
    ),
]


def blank_pdf() -> bytes:
    """A one-page blank A4 PDF: a supporting document's file in the demo (and the tests)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _photo(text: str) -> bytes:
    image = Image.new("RGB", (600, 400), (245, 245, 240))
    ImageDraw.Draw(image).text((40, 180), text, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def load(families: dict[str, Family]) -> None:
    """Document types, and files: validated, soon expired, pending (PDF and photo), refused (the caller commits)."""
    kinds = [DocumentType(name=n, description=d, scope=s, required=r, validity=v) for n, d, s, r, v in TYPES]
    db.session.add_all(kinds)
    db.session.flush()
    home, caf, insurance, vaccines, _pai = kinds
    martin, bernard = families["MRTNA52846"], families["BRNRD73925"]
    claire = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
    sophie = db.session.scalar(sa.select(User).where(User.email == "sophie.bernard@demo.fr"))
    agent = db.session.scalar(sa.select(User).where(User.email == "agent@demo.fr"))
    now = utcnow()
    lea, tom = martin.children
    validated = documents.submit(
        martin, claire, home, None, blank_pdf(), "facture-electricite.pdf", now - timedelta(days=40)
    )
    _decide(validated, agent, DocumentState.VALIDATED, now, valid_until=(now + timedelta(days=320)).date())
    soon = documents.submit(
        martin, claire, caf, None, blank_pdf(), "attestation-caf.pdf", now - timedelta(days=300)
    )
    _decide(soon, agent, DocumentState.VALIDATED, now, valid_until=(now + timedelta(days=20)).date())
    documents.submit(
        martin,
        claire,
        vaccines,
        lea,
        _photo("Carnet de vaccinations - Lea MARTIN"),
        "carnet-lea.jpg",
        now - timedelta(hours=5),
    )
    refused = documents.submit(
        martin, claire, insurance, tom, blank_pdf(), "assurance-tom.pdf", now - timedelta(days=3)
    )
    _decide(
        refused,
        agent,
        DocumentState.REFUSED,
        now,
        reason="Document périmé — l'attestation est celle de l'an dernier.",
    )
    documents.submit(bernard, sophie, home, None, blank_pdf(), "quittance-loyer.pdf", now - timedelta(days=1))


def _decide(document, agent: User, state: DocumentState, now, valid_until=None, reason=None) -> None:
    document.state, document.decided_by_id, document.decided_at = state, agent.id, now - timedelta(days=1)
    document.valid_until, document.reason = valid_until, reason
