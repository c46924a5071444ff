"""Browser journey at 360 px of direct debit: Claire sends the mandate without ticking the consent
(the error page's headings are an outline), signs it, then stops it — a page asks her to confirm
first, and it works without JavaScript. axe at every step."""

import re

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Family, SepaMandate
from portail.services.outbox import commit
from tests.browser_support import logged_in, login, new_page
from tests.factories import make_user, subscribe

pytestmark = pytest.mark.browser

CONSENT = "J'ai lu le mandat ci-dessus et j'autorise la commune à prélever mes factures sur ce compte"


def headings(page) -> list[tuple[int, str]]:
    """The page's headings in order: (level, text)."""
    return [
        (int(tag[1]), text.strip())
        for tag, text in page.locator("h1, h2, h3, h4, h5, h6").evaluate_all(
            "nodes => nodes.map(node => [node.tagName, node.innerText])"
        )
    ]


def in_force(app) -> list[SepaMandate]:
    with app.app_context():
        return db.session.scalars(sa.select(SepaMandate).where(SepaMandate.revoked_at.is_(None))).all()


def test_a_parent_signs_the_mandate_after_an_error_then_confirms_stopping_it(browser, live_server):
    with live_server.app_context():
        family = db.session.scalar(sa.select(Family))
        guardian = family.guardians[0]
        guardian.iban, guardian.bic, guardian.bank_holder = (
            "FR7630006000011234567890189",
            "AGRIFRPPXXX",
            "Claire MARTIN",
        )
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        commit()
        family_id = family.id
    base = live_server.base_url
    page, journey = logged_in(browser, base, "claire@example.fr", "prelevement")
    page.goto(f"{base}/facturation/")
    section = page.get_by_role("region", name="Prélèvement automatique")
    section.get_by_role("heading", name="Mandat de prélèvement SEPA", level=4).wait_for()
    journey.check("espace-facturation")

    # Sent without the consent: the page of the mandate, with the error summary.
    page.get_by_role("button", name="Signer le mandat et payer par prélèvement").click()
    page.get_by_role("link", name=re.compile("Cochez la case d'autorisation")).wait_for()
    assert headings(page) == [
        (1, "Prélèvement automatique — Famille MARTIN"),
        (2, "1 erreur à corriger"),
        (2, "Mandat de prélèvement SEPA"),
    ]
    journey.check("mandat-erreur")
    page.get_by_label(CONSENT).check()
    page.get_by_role("button", name="Signer le mandat et payer par prélèvement").click()
    page.get_by_text("Le prélèvement est en place").wait_for()
    journey.check("mandat-signe")
    [mandate] = in_force(live_server)

    # Stopping asks first; "Non" keeps the mandate.
    page.get_by_role("link", name=re.compile("^Arrêter le prélèvement")).click()
    page.get_by_role("heading", name="Arrêter le prélèvement automatique ?", level=1).wait_for()
    assert mandate.reference in page.inner_text("main")
    journey.check("arret-confirmation")
    page.get_by_role("link", name="Non, garder le prélèvement").click()
    page.get_by_text("Référence du mandat (RUM)").wait_for()
    assert [m.id for m in in_force(live_server)] == [mandate.id]

    # Without JavaScript: the link, the page, the button.
    plain = new_page(browser, javascript=False)
    login(plain, base, "claire@example.fr")
    plain.goto(f"{base}/facturation/")
    plain.get_by_role("link", name=re.compile("^Arrêter le prélèvement")).click()
    assert plain.url == f"{base}/facturation/{family_id}/prelevement/arreter"
    plain.get_by_role("button", name="Oui, arrêter le prélèvement").click()
    plain.get_by_text("Le prélèvement est arrêté").wait_for()
    assert in_force(live_server) == []
    plain.context.close()

    page.reload()
    page.get_by_role("button", name="Signer le mandat et payer par prélèvement").wait_for()
    journey.check("arrete")
