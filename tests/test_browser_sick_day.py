"""Browser journey of a sick day at 360 px: Enfant malade from the planning's agenda, what will be billed,
a medical certificate sent with it, the declaration then opened from its cell; axe at every step."""

import re
from datetime import timedelta

import pytest

from portail.extensions import db
from portail.formatting import PARIS
from tests.browser_support import logged_in
from tests.factories import PDF, add_tariff, book, enrol, make_activity, make_user, subscribe

pytestmark = pytest.mark.browser


def test_parent_declares_a_sick_day_with_a_certificate_and_sees_what_is_billed(
    browser, live_server, tmp_path
):
    from portail.models import Family, SickDeclaration, utcnow

    today = utcnow().astimezone(PARIS).date()
    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        lea = family.children[0]
        # open every day (the test runs any day), its absence deadline two working days before: passed
        activity = make_activity(start_date=today - timedelta(days=10), weekdays="1234567")
        enrol(lea, activity)
        add_tariff(activity, valid_from=today - timedelta(days=10))
        book(lea, activity, [today, today + timedelta(days=1)])
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        db.session.commit()
        family_id, lea_id, activity_id = family.id, lea.id, activity.id
    certificate = tmp_path / "certificat.pdf"
    certificate.write_bytes(PDF)
    base = live_server.base_url
    page, journey = logged_in(browser, base, "claire@example.fr", "enfant-malade-360")
    page.goto(f"{base}/famille/{family_id}/planning?vue=agenda&date={today.isoformat()}")
    journey.check("agenda")
    cell = page.locator(f"#cell-{lea_id}-{activity_id}-{today.isoformat()}")
    url_before = page.url
    cell.get_by_role("link", name=re.compile("^Enfant malade")).click()
    cell.get_by_text(re.compile("Déclarer Léa malade le")).wait_for()
    # what will be billed, before sending: the first day of a sickness is the carence
    assert "Restauration scolaire : facturé 5,10\u00a0€ (carence)" in cell.inner_text()
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.textContent.includes('Confirmer')"
    )
    journey.check("confirmation")
    cell.get_by_label(re.compile("Certificat médical")).set_input_files(str(certificate))
    cell.get_by_role("button", name="Confirmer : enfant malade").click()
    cell.get_by_role("link", name=re.compile("^Déclaration et certificat")).wait_for()
    assert "Enfant malade" in cell.locator(".state").inner_text()
    assert page.url == url_before, "the cell was swapped in place, without a page load"
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.textContent.includes('Déclaration et certificat')"
    )
    page.wait_for_function("() => document.getElementById('annonce').textContent.includes('Enfant malade')")
    journey.check("declare")
    cell.get_by_role("link", name=re.compile("^Déclaration et certificat")).click()
    cell.get_by_text(re.compile("Certificat médical envoyé le")).wait_for()
    assert "certificat.pdf" in cell.inner_text()
    journey.check("declaration")
    # tomorrow, the same sickness: free with the certificate sent in time
    tomorrow = page.locator(f"#cell-{lea_id}-{activity_id}-{(today + timedelta(days=1)).isoformat()}")
    tomorrow.get_by_role("link", name=re.compile("^Enfant malade")).click()
    tomorrow.get_by_text(re.compile("non facturé")).wait_for()
    journey.check("demain")
    page.keyboard.press("Escape")
    tomorrow.get_by_role("link", name=re.compile("^Enfant malade")).wait_for()
    with live_server.app_context():
        [declaration] = db.session.scalars(db.select(SickDeclaration)).all()
        assert declaration.document is not None and declaration.document.original_name == "certificat.pdf"
    # the page a sick day is without JavaScript (or from the list of declarations)
    page.goto(f"{base}/famille/{family_id}/planning/malade?enfant={lea_id}&jour={today.isoformat()}")
    page.get_by_role("heading", name=re.compile("Enfant malade — Léa")).wait_for()
    journey.check("page")
    # the list of the family's declarations
    page.get_by_role("link", name="Toutes les déclarations « Enfant malade »").click()
    page.get_by_role("heading", name=re.compile("Enfant malade : déclarations")).wait_for()
    journey.check("liste")


def test_without_javascript_a_sick_day_is_a_page(browser, live_server):
    from portail.models import Family, utcnow
    from tests.browser_support import ARTIFACTS, login, new_page

    today = utcnow().astimezone(PARIS).date()
    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        lea = family.children[0]
        activity = make_activity(start_date=today - timedelta(days=10), weekdays="1234567")
        enrol(lea, activity)
        add_tariff(activity, valid_from=today - timedelta(days=10))
        book(lea, activity, [today])
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        db.session.commit()
        family_id, lea_id, activity_id = family.id, lea.id, activity.id
    # (axe needs JavaScript: the same page is checked in the journey above)
    page = new_page(browser, javascript=False)
    login(page, live_server.base_url, "claire@example.fr")
    page.goto(f"{live_server.base_url}/famille/{family_id}/planning?vue=agenda&date={today.isoformat()}")
    page.locator(f"#cell-{lea_id}-{activity_id}-{today.isoformat()}").get_by_role(
        "link", name=re.compile("^Enfant malade")
    ).click()
    page.get_by_role("heading", name=re.compile("Enfant malade — Léa")).wait_for()
    assert "facturé 5,10\u00a0€ (carence)" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "enfant-malade-sans-js-360-page.png"), full_page=True)
    page.get_by_role("button", name="Confirmer : enfant malade").click()
    page.get_by_text(re.compile("« Enfant malade » est enregistré pour Léa")).wait_for()
    assert "Déclaration et certificat" in page.inner_text("main")
