"""Browser journey of a service cancellation (issue 17, part 4): at 360 px an agent declares a strike on
the canteen, reads what it takes, confirms, finds it in the list and undoes it; the parent's planning
shows the day cancelled; axe at every step."""

import re
from datetime import date

import pytest
import sqlalchemy as sa

from portail.extensions import db
from tests.browser_support import logged_in
from tests.factories import book, enrolled_child, make_activity, make_user, next_weekday, subscribe

pytestmark = pytest.mark.browser


def test_an_agent_declares_a_strike_the_parent_sees_it_and_the_agent_undoes_it(browser, live_server):
    from portail.models import Booking as BookingRow
    from portail.models import BookingState, Role
    from portail.services.outbox import commit

    monday = next_weekday(1)
    with live_server.app_context():
        canteen = make_activity(name="Restauration scolaire", site="Groupe scolaire Jules Ferry")
        family, lea = enrolled_child(canteen, "Léa", family_name="Famille MARTIN")
        book(lea, canteen, [monday])
        subscribe(make_user(email="claire@example.fr", first_name="Claire"), family)
        make_user(email="nadia@example.fr", role=Role.AGENT, first_name="Nadia", last_name="AGENT")
        commit()
        family_id, lea_id, canteen_id = family.id, lea.id, canteen.id

    base = live_server.base_url
    agent, journey = logged_in(browser, base, "nadia@example.fr", "annulation")
    agent.get_by_role("link", name="Annulations").click()
    journey.check("formulaire")
    agent.get_by_label("Activité").select_option(label="Restauration scolaire — Groupe scolaire Jules Ferry")
    agent.get_by_label("Premier jour annulé").fill(monday.isoformat())
    agent.get_by_role("radio", name="Grève").check()
    agent.get_by_role("button", name="Voir les jours concernés").click()
    agent.get_by_role("heading", name="Confirmer l'annulation").wait_for()
    assert "1 enfant" in agent.inner_text("main")
    journey.check("apercu")
    agent.get_by_role("button", name="Confirmer l'annulation").click()
    agent.get_by_text(re.compile("Service annulé")).wait_for()
    journey.check("enregistree")

    parent, parent_journey = logged_in(browser, base, "claire@example.fr", "annulation-parent")
    parent.goto(f"{base}/famille/{family_id}/planning?vue=agenda&date={monday.isoformat()}")
    parent.get_by_text("Annulé par la mairie (Grève)").first.wait_for()
    parent_journey.check("planning")

    agent.get_by_role("button", name=re.compile("Annuler l'annulation")).click()
    agent.get_by_text(re.compile("est levée : les jours sont rétablis")).wait_for()
    journey.check("levee")
    with live_server.app_context():
        state = db.session.scalar(
            sa.select(BookingRow.state).where(
                BookingRow.child_id == lea_id, BookingRow.activity_id == canteen_id, BookingRow.day == monday
            )
        )
        assert state is BookingState.RESERVED and isinstance(monday, date)
