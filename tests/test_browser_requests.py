"""Browser journey of request processing: an agent refuses a day with a message and bulk-accepts a
period; the parent sees the new message on Mes demandes until the history is opened."""

import re

import pytest

from portail.extensions import db
from portail.formatting import french_date
from tests.browser_support import enrolled_martins, logged_in
from tests.factories import submit_request

pytestmark = pytest.mark.browser


def test_agent_decides_and_the_parent_sees_the_new_message_until_opening_the_history(browser, live_server):
    from portail.models import (
        LineState,
        Request,
        RequestKind,
        utcnow,
    )
    from portail.services.outbox import commit

    with live_server.app_context():
        family, activity, claire, days = enrolled_martins()
        lea, tom = family.children
        single = submit_request(family, claire, lea, activity, RequestKind.RESERVATION, [days[0]], utcnow())
        period = submit_request(
            family,
            claire,
            tom,
            activity,
            RequestKind.RESERVATION,
            days[:20],
            utcnow(),
            period=(days[0], days[19], "12345"),
        )
        commit()
        single_id, period_id, refused_day = single.id, period.id, days[0]

    base = live_server.base_url
    agent, staff = logged_in(browser, base, "agent@example.fr", "demandes-agent", width=1280)
    agent.get_by_role("link", name="Demandes", exact=True).click()
    agent.get_by_text("21 jours demandés en attente").wait_for()
    staff.check("file")
    agent.get_by_label("Famille ou enfant").fill("Léa")
    agent.get_by_role("button", name="Filtrer").click()
    agent.get_by_label("Motif en cas de refus").select_option("Complet")
    agent.get_by_label(re.compile("Message à la famille")).fill("Plus de place ce jour-là, désolés.")
    agent.get_by_role("button", name=f"Refuser Léa, {french_date(refused_day, year=False)}").click()
    agent.get_by_text("1 jour refusé.").wait_for()
    staff.check("refus")
    agent.get_by_label("Famille ou enfant").fill("Tom")
    agent.get_by_role("button", name="Filtrer").click()
    agent.get_by_label("Tout sélectionner").check()
    assert agent.locator("input[name=ligne]:checked").count() == 20
    agent.get_by_role("button", name="Accepter la sélection").click()
    agent.get_by_text("20 jours acceptés.").wait_for()
    staff.check("acceptation-groupee")
    agent.goto(f"{base}/gestion/demandes/{single_id}")
    assert "Plus de place ce jour-là, désolés." in agent.content()
    staff.check("demande")

    parent, journey = logged_in(browser, base, "claire@example.fr", "demandes-parent")
    parent.goto(f"{base}/mon-espace/demandes")
    row = parent.locator("tr", has=parent.locator(f"a[href$='/demandes/{single_id}']"))
    assert "1 nouveau(x) message(s)" in row.inner_text() and "Refusée" in row.inner_text()
    period_row = parent.locator("tr", has=parent.locator(f"a[href$='/demandes/{period_id}']"))
    assert "Acceptée" in period_row.inner_text() and "nouveau" in period_row.inner_text()
    journey.check("mes-demandes")
    row.get_by_role("link", name=re.compile("Historique")).click()
    parent.get_by_text("Plus de place ce jour-là, désolés.").wait_for()
    assert "motif : Complet" in parent.content()
    journey.check("historique")
    parent.get_by_role("link", name="← Mes demandes").click()
    row = parent.locator("tr", has=parent.locator(f"a[href$='/demandes/{single_id}']"))
    assert "nouveau(x) message(s)" not in row.inner_text()
    with live_server.app_context():
        states = {line.state for line in db.session.get(Request, period_id).lines}
        assert states == {LineState.ACCEPTED}
