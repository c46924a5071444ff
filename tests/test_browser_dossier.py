"""Browser journey of the Dossier Famille: a parent's changes in yellow, an agent's decisions."""

import re
from datetime import date

import pytest

from portail.extensions import db
from tests.browser_support import logged_in
from tests.factories import make_user, subscribe

pytestmark = pytest.mark.browser


def test_parent_changes_are_pending_in_yellow_until_an_agent_decides(browser, live_server):
    from portail.models import Family

    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        guardian, lea = family.guardians[0], family.children[0]
        guardian.address_line1, guardian.postcode, guardian.city = "12 rue des Écoles", "75005", "Paris"
        lea.allergies = "Arachides"
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        db.session.commit()
        family_id, lea_id = family.id, lea.id
    base = live_server.base_url
    parent, journey = logged_in(browser, base, "claire@example.fr", "dossier-parent")

    parent.goto(f"{base}/famille/{family_id}/responsables")
    journey.check("responsables")
    parent.get_by_role("link", name="Modifier : Adresse").click()
    journey.check("adresse-formulaire")
    parent.get_by_label("Adresse", exact=True).fill("8 avenue du Parc")
    parent.get_by_label("Code postal").fill("7501")
    parent.get_by_role("button", name="Envoyer ma demande").click()
    assert parent.locator(".error-summary").is_visible()
    journey.check("adresse-erreur")
    parent.get_by_label("Code postal").fill("75014")
    parent.get_by_role("button", name="Envoyer ma demande").click()
    parent.wait_for_url(re.compile("/responsables$"))
    pending = parent.locator(".pending")
    assert (
        pending.count() == 1
        and "En attente de validation" in pending.inner_text()
        and "8 avenue du Parc" in pending.inner_text()
    )
    assert (
        parent.evaluate("getComputedStyle(document.querySelector('.pending')).backgroundColor")
        == "rgb(255, 243, 176)"
    )
    journey.check("adresse-en-attente")

    parent.goto(f"{base}/famille/{family_id}/enfants/{lea_id}/health")
    parent.get_by_label("Allergies").fill("Arachides, kiwi")
    parent.get_by_role("button", name="Envoyer ma demande").click()
    parent.wait_for_url(re.compile(f"/enfants/{lea_id}$"))
    assert "Arachides, kiwi" in parent.locator(".pending").inner_text()
    journey.check("allergies-en-attente")

    agent, desk = logged_in(browser, base, "agent@example.fr", "dossier-agent", width=1280)
    agent.get_by_role("link", name="Modifications de dossiers", exact=True).click()
    assert "2 demandes en attente" in agent.content()
    desk.check("file")
    agent.get_by_role("link", name=re.compile("Adresse")).click()
    desk.check("adresse-diff")
    agent.get_by_role("button", name="Accepter la modification").click()
    agent.wait_for_url(re.compile("/gestion/dossiers$"))
    agent.get_by_role("link", name=re.compile("Données sanitaires")).click()
    desk.check("sante-diff")
    agent.get_by_label("Motif").select_option("Justificatif manquant")
    agent.get_by_label("Message à la famille").fill("Merci de fournir le certificat de l'allergologue.")
    agent.get_by_role("button", name="Refuser la modification").click()
    agent.wait_for_url(re.compile("/gestion/dossiers$"))
    assert "0 demande en attente" in agent.content()

    parent.goto(f"{base}/famille/{family_id}/responsables")
    page = parent.content()
    assert (
        "8 avenue du Parc" in page
        and "12 rue des Écoles" not in page
        and parent.locator(".pending").count() == 0
    )
    journey.check("adresse-acceptee")
    parent.goto(f"{base}/famille/{family_id}/enfants/{lea_id}")
    assert "Arachides" in parent.content() and "Arachides, kiwi" not in parent.content()
    parent.goto(f"{base}/famille/{family_id}/historique")
    assert "Justificatif manquant — Merci de fournir le certificat de l" in parent.content()
    journey.check("historique")
    parent.goto(base + "/dev/mailbox")
    mails = parent.locator("tbody tr").all_inner_texts()
    decisions = [row for row in mails if "claire@example.fr" in row and "modification du dossier" in row]
    assert len(decisions) == 2, mails
    journey.check("boite-mail")
    assert date.today()
