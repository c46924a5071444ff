"""Browser journey of a whole request withdrawn (issue 16, item 5): at 360 px a parent opens Mes
demandes, follows "Retirer la demande", reads the days listed, confirms and reads the flash; the same
from the request's history without JavaScript."""

import re

import pytest

from portail.extensions import db
from portail.formatting import french_date
from tests.browser_support import enrolled_martins, logged_in, login, new_page
from tests.factories import submit_request

pytestmark = pytest.mark.browser


def test_a_parent_withdraws_a_12_day_request_from_mes_demandes_in_one_confirmation(browser, live_server):
    from portail.models import LineState, Request, RequestKind, utcnow
    from portail.services.outbox import commit

    with live_server.app_context():
        family, activity, claire, days = enrolled_martins()
        lea, tom = family.children
        days = days[:12]
        period = submit_request(
            family,
            claire,
            lea,
            activity,
            RequestKind.RESERVATION,
            days,
            utcnow(),
            period=(days[0], days[-1], "12345"),
        )
        single = submit_request(family, claire, tom, activity, RequestKind.RESERVATION, [days[0]], utcnow())
        commit()
        period_id, single_id = period.id, single.id

    base = live_server.base_url
    parent, journey = logged_in(browser, base, "claire@example.fr", "retrait-demande")
    parent.goto(f"{base}/mon-espace/demandes")
    journey.check("mes-demandes")
    row = parent.locator("tr", has=parent.locator(f"a[href$='/demandes/{period_id}']"))
    row.get_by_role("link", name=re.compile("Retirer la demande")).click()
    parent.get_by_role(
        "heading", name="Retirer la demande de réservation — Léa, Restauration scolaire"
    ).wait_for()
    listed = parent.get_by_role("region", name="12 jours seront retirés").get_by_role("listitem")
    assert listed.all_inner_texts() == [french_date(day, weekday=True) for day in days]
    journey.check("confirmation")
    parent.get_by_role("button", name="Confirmer le retrait").click()
    parent.get_by_text("Demande retirée : 12 jours libérés.").wait_for()
    row = parent.locator("tr", has=parent.locator(f"a[href$='/demandes/{period_id}']"))
    assert "Annulée" in row.inner_text() and "Retirer la demande" not in row.inner_text()
    journey.check("demande-retiree")

    # Without JavaScript (axe needs it: checked above on the same pages), from the history of the other
    # request: the same confirmation, and back to the history.
    plain = new_page(browser, javascript=False)
    login(plain, base, "claire@example.fr")
    plain.goto(f"{base}/mon-espace/demandes/{single_id}")
    plain.get_by_role("link", name="Retirer la demande").click()
    assert plain.get_by_role("region", name="1 jour sera retiré").get_by_role(
        "listitem"
    ).all_inner_texts() == [french_date(days[0], weekday=True)]
    plain.get_by_role("button", name="Confirmer le retrait").click()
    plain.get_by_text("Demande retirée : 1 jour libéré.").wait_for()
    assert "État : Annulée" in plain.inner_text("main")

    with live_server.app_context():
        for request_id in (period_id, single_id):
            assert {line.state for line in db.session.get(Request, request_id).lines} == {LineState.WITHDRAWN}
