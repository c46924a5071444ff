"""Browser journey of the planning: switches, one-click request swapped in place, period form, list."""

import re
from datetime import timedelta

import pytest

from portail.extensions import db
from tests.browser_support import Journey, new_page
from tests.factories import PASSWORD, enrol, make_activity, make_user, subscribe

pytestmark = pytest.mark.browser


def test_parent_books_a_day_in_one_click_then_absences_for_a_period(browser, live_server):
    from portail.models import Booking, BookingState, Family, utcnow

    today = utcnow().date()
    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        lea, tom = family.children
        activity = make_activity(start_date=today - timedelta(days=60), end_date=today + timedelta(days=300))
        for child in (lea, tom):
            enrol(child, activity)
        next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        tuesdays = [
            next_month + timedelta(days=i)
            for i in range(31)
            if (next_month + timedelta(days=i)).month == next_month.month
            and (next_month + timedelta(days=i)).isoweekday() == 2
        ]
        for day in tuesdays:
            db.session.add(
                Booking(child_id=lea.id, activity_id=activity.id, day=day, state=BookingState.RESERVED)
            )
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), family)
        db.session.commit()
        family_id, lea_id, tom_id, activity_id = family.id, lea.id, tom.id, activity.id
    target = today + timedelta(days=10)
    while target.isoweekday() > 5:
        target += timedelta(days=1)
    base = live_server.base_url
    for width in (360, 1280):
        page = new_page(browser, width=width)
        journey = Journey(page, f"planning-{width}")
        page.goto(base + "/connexion")
        page.get_by_label("Adresse e-mail").fill("claire@example.fr")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.goto(f"{base}/famille/{family_id}/planning?vue=mois&date={target.isoformat()}")
        journey.check("mois")
        for view in ("7 jours", "5 jours"):
            page.get_by_role("link", name=view).click()
            journey.check(view[-8:-1].replace(" ", ""))
        page.get_by_role("link", name="Mois", exact=True).click()
        if width == 1280:
            continue
        page.get_by_role("switch", name=re.compile("Tom")).uncheck()
        page.wait_for_url(re.compile("filtre=1"))
        assert (
            page.locator(f"[id^='cell-{tom_id}-']").count() == 0
            and page.locator(f"[id^='cell-{lea_id}-']").count() > 0
        )
        journey.check("tom-masque")
        cell_id = f"cell-{lea_id}-{activity_id}-{target.isoformat()}"
        url_before = page.url
        page.locator(f"#{cell_id}").get_by_role("link", name=re.compile("Réserver")).click()
        page.get_by_text(
            re.compile("Confirmer la demande de réservation du .* pour Léa — Restauration scolaire")
        ).wait_for()
        journey.check("confirmation")
        page.locator(f"#{cell_id}").get_by_role("button", name="Confirmer").click()
        page.locator(f"#{cell_id}").get_by_text("Réservation demandée").wait_for()
        assert page.url == url_before, "the cell was swapped in place, without a page load"
        journey.check("reservation-demandee")
        page.get_by_role("link", name="Réservations").click()
        page.get_by_label("Léa MARTIN").check()
        page.get_by_label("Activité").select_option(str(activity_id))
        page.get_by_label("Du").fill(next_month.isoformat())
        page.get_by_label("Au").fill(tuesdays[-1].isoformat())
        page.get_by_label("Mardi").check()
        page.get_by_label("Absence").check()
        heading = page.locator("#apercu h3", has_text="d'absence")  # the absence preview, not an earlier one
        heading.wait_for()
        requested = int(re.search(r"(\d+) jours? d'absence demandés?", heading.inner_text()).group(1))
        assert 1 <= requested <= len(tuesdays)  # a Tuesday already past its absence deadline is excluded
        journey.check("formulaire-apercu")
        page.get_by_role("button", name="Envoyer la demande").click()
        page.wait_for_url(re.compile("/demandes"))
        page.get_by_label("Enfant").select_option(str(lea_id))
        page.get_by_role("button", name="Filtrer").click()
        assert "Absence" in page.content() and (f"{requested} jours" in page.content() or requested == 1)
        journey.check("liste")


def test_a_family_without_enrolment_sees_why_and_whom_to_contact_on_a_phone(browser, live_server):
    from portail.models import Family
    from tests.browser_support import login

    with live_server.app_context():
        family = db.session.scalar(db.select(Family))  # the MARTIN family, enrolled in nothing yet
        subscribe(make_user(email="claire@example.fr"), family)
        db.session.commit()
        family_id = family.id
    live_server.config["SERVICE_CONTACT"] = "05 55 12 34 56, enfance@commune.fr"
    page = new_page(browser)
    journey = Journey(page, "sans-inscription-360")
    login(page, live_server.base_url, "claire@example.fr")
    for url, label in (
        (f"/famille/{family_id}/planning", "planning"),
        (f"/famille/{family_id}/planning/periode", "periode"),
    ):
        page.goto(live_server.base_url + url)
        status = page.get_by_role("status")
        assert "Aucune inscription pour le moment" in status.inner_text()
        assert "(05 55 12 34 56, enfance@commune.fr)" in status.inner_text()
        assert status.bounding_box()["y"] < 740  # on the first screen of a phone
        journey.check(label)
    page.context.close()
