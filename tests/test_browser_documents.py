"""Browser journey of the pièces justificatives: a parent sends a PDF and a photo for a child, an
agent refuses one and validates the other, the parent replaces the refused file."""

import re

import pytest

from portail.extensions import db
from tests.browser_support import logged_in
from tests.factories import PDF, jpeg_with_exif, make_user, subscribe

pytestmark = pytest.mark.browser


def test_parent_sends_documents_agent_decides_parent_replaces_the_refused_one(browser, live_server, tmp_path):
    from portail.models import DocumentScope, DocumentType, Family, Validity
    from portail.services.outbox import commit

    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        db.session.add_all(
            [
                DocumentType(
                    name="Carnet de vaccinations", scope=DocumentScope.CHILD, validity=Validity.NONE
                ),
                DocumentType(
                    name="Attestation d'assurance", scope=DocumentScope.CHILD, validity=Validity.SCHOOL_YEAR
                ),
            ]
        )
        commit()
        family_id, lea = family.id, family.children[0]
        lea_id = lea.id
    pdf, photo = tmp_path / "assurance.pdf", tmp_path / "carnet.jpg"
    pdf.write_bytes(PDF)
    photo.write_bytes(jpeg_with_exif())
    base = live_server.base_url

    parent, journey = logged_in(browser, base, "claire@example.fr", "pieces-parent")
    parent.goto(f"{base}/famille/{family_id}/pieces")
    journey.check("a-fournir")
    parent.get_by_label("Ajouter le fichier : Attestation d'assurance (Léa)").set_input_files(str(pdf))
    parent.locator(f"#piece-2-{lea_id}").get_by_role("button", name="Envoyer").click()
    parent.get_by_text("est envoyé").wait_for()
    parent.get_by_label("Ajouter le fichier : Carnet de vaccinations (Léa)").set_input_files(str(photo))
    parent.locator(f"#piece-1-{lea_id}").get_by_role("button", name="Envoyer").click()
    parent.get_by_text("est envoyé").wait_for()
    assert parent.locator(".document", has_text="En attente de validation").count() >= 2
    journey.check("en-attente")

    agent, staff = logged_in(browser, base, "agent@example.fr", "pieces-agent", width=1280)
    agent.get_by_role("link", name="Pièces", exact=True).click()
    agent.get_by_text("2 documents en attente").wait_for()
    staff.check("file")
    agent.get_by_role("link", name="Carnet de vaccinations").click()
    assert agent.locator("img.preview-image").evaluate("img => img.naturalWidth") > 0, (
        "the photo is previewed"
    )
    staff.check("apercu")
    agent.get_by_label("Motif").select_option("Document illisible")
    agent.get_by_label(re.compile("Précision pour la famille")).fill("La photo est floue.")
    agent.get_by_role("button", name="Refuser le document").click()
    agent.get_by_text("Document refusé").wait_for()
    agent.get_by_role("link", name="Attestation d'assurance").click()
    agent.get_by_role("button", name="Valider le document").click()
    agent.get_by_text("Document validé").wait_for()

    parent.reload()
    insurance, vaccines = parent.locator(f"#piece-2-{lea_id}"), parent.locator(f"#piece-1-{lea_id}")
    assert "État : Validé" in insurance.inner_text() and "Valable jusqu'au" in insurance.inner_text()
    assert "État : Refusé" in vaccines.inner_text() and "La photo est floue." in vaccines.inner_text()
    journey.check("decisions")
    parent.get_by_label("Remplacer le fichier : Carnet de vaccinations (Léa)").set_input_files(str(photo))
    vaccines.get_by_role("button", name="Envoyer").click()
    parent.get_by_text("est envoyé").wait_for()
    assert "En attente de validation" in parent.locator(f"#piece-1-{lea_id}").inner_text()
    journey.check("remplace")
