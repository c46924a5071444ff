"""Browser journey of a calendar address (issue 19, part 3): at 360 px a parent opens Mon compte >
Calendrier, creates the address of one child's days, reads it in its read-only field, and the
address answers the ICS of that child's reserved days; then deletes it after the confirmation."""

import urllib.request
from urllib.error import HTTPError

import pytest
from icalendar import Calendar

from portail.extensions import db
from tests.browser_support import enrolled_martins, logged_in
from tests.factories import book

pytestmark = pytest.mark.browser


def test_a_parent_creates_a_childs_calendar_address_and_its_feed_answers(browser, live_server):
    with live_server.app_context():
        family, activity, _claire, days = enrolled_martins()
        lea, tom = family.children
        book(lea, activity, days[:3])
        book(tom, activity, days[:1])
        db.session.commit()

    base = live_server.base_url
    parent, journey = logged_in(browser, base, "claire@example.fr", "calendrier-ics")
    parent.goto(f"{base}/mon-espace/compte")
    parent.get_by_role("link", name="Ajouter les jours à mon agenda").click()
    parent.get_by_role("heading", name="Calendrier", level=1).wait_for()
    journey.check("calendrier")
    parent.get_by_role("button", name="Créer l'adresse").click()
    parent.get_by_text("Choisissez les jours à afficher : toute la famille ou un enfant.").first.wait_for()
    journey.check("erreur")
    parent.get_by_role("radio", name="Léa").check()
    parent.get_by_role("button", name="Créer l'adresse").click()
    parent.get_by_role("heading", name="Votre adresse d'agenda").wait_for()
    journey.check("adresse")
    field = parent.get_by_label("Adresse de l'agenda")
    assert field.get_attribute("readonly") is not None
    url = field.input_value()
    assert url.startswith(base + "/calendrier/") and url.endswith(".ics")
    assert (
        parent.get_by_role("link", name="Ouvrir dans mon agenda").get_attribute("href")
        == "webcal://" + url.split("://", 1)[1]
    )

    with urllib.request.urlopen(url) as response:  # a calendar app: no session
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        calendar = Calendar.from_ical(response.read())
    summaries = [str(event["summary"]) for event in calendar.walk("VEVENT")]
    assert summaries == ["Léa — Restauration scolaire"] * 3

    parent.get_by_role("link", name="← Calendrier").click()
    parent.get_by_role("link", name="Supprimer l'adresse de Léa").click()
    parent.get_by_role("heading", name="Supprimer l'adresse d'agenda ?").wait_for()
    journey.check("confirmer-suppression")
    parent.get_by_role("button", name="Oui, supprimer l'adresse").click()
    parent.get_by_text("L'adresse d'agenda est supprimée").wait_for()
    journey.check("supprimee")
    with pytest.raises(HTTPError) as refused:
        urllib.request.urlopen(url)
    assert refused.value.code == 404
