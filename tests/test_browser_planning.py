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
        # every child switched off: a week with nothing to show (its planning still a labelled region)
        page.goto(f"{base}/famille/{family_id}/planning?vue=semaine&date={target.isoformat()}&filtre=1")
        journey.check("semaine-vide")
        every = f"filtre=1&enfant={lea_id}&enfant={tom_id}&activite={activity_id}"  # (all shown again)
        page.goto(f"{base}/famille/{family_id}/planning?vue=semaine&date={target.isoformat()}&{every}")
        page.get_by_role("link", name="Mois", exact=True).click()
        if width == 1280:
            continue
        page.get_by_text("Affichés :").click()  # the switches' disclosure
        page.get_by_role("switch", name=re.compile("Tom")).click()  # (the page reloads at once: no uncheck())
        page.wait_for_url(re.compile("filtre=1"))
        assert (
            page.locator(f"[id^='cell-{tom_id}-']").count() == 0
            and page.locator(f"[id^='cell-{lea_id}-']").count() > 0
        )
        journey.check("tom-masque")
        # on a phone the month is a grid of marks: a tap on the day opens its agenda, the switches kept
        page.locator(f"a.day-link[href$='{target.isoformat()}']").click()
        page.wait_for_url(re.compile("filtre=1.*jour="))
        assert page.locator(f"[id^='cell-{tom_id}-']").count() == 0
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


@pytest.fixture
def demo_server(tmp_path):
    """The app with the demo loaded (the MARTIN family of the README's tour), on a free port."""
    import threading

    from werkzeug.serving import make_server

    from portail import demo
    from tests.conftest import make_app, tables

    app = make_app(f"sqlite:///{tmp_path / 'demo.sqlite'}", WTF_CSRF_ENABLED=True)
    with tables(app):
        demo.load()
        db.session.commit()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        app.base_url = f"http://127.0.0.1:{server.server_port}"
        try:
            yield app
        finally:
            server.shutdown()


def test_on_a_phone_the_planning_opens_on_today_and_a_day_is_reserved_in_two_taps(browser, demo_server):
    from portail.demo import DEMO_PASSWORD
    from portail.formatting import PARIS, french_day
    from portail.models import Family, utcnow

    with demo_server.app_context():
        family_id = db.session.scalar(db.select(Family.id).where(Family.name == "Famille MARTIN"))
    base = demo_server.base_url
    page = new_page(browser, width=360)
    journey = Journey(page, "agenda-360")
    page.goto(base + "/connexion")
    page.get_by_label("Adresse e-mail").fill("claire.martin@demo.fr")
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state()
    page.goto(f"{base}/famille/{family_id}/planning")  # no view asked: a phone gets the agenda
    today = utcnow().astimezone(PARIS).date()
    heading = page.locator(".day-title").first
    assert heading.inner_text().startswith(french_day(today))
    assert heading.bounding_box()["y"] < 740, "today's day on the first screen"
    journey.check("premier-ecran")
    # the first day with something to do: its Réserver, then Confirmer (two taps), nothing skipped
    action = page.locator(".planning .cell-action", has_text="Réserver").first
    day = action.locator("xpath=ancestor::section[contains(@class, 'day')]")
    days_before = day.evaluate("d => [...d.parentNode.querySelectorAll('section.day')].indexOf(d)")
    earlier = page.locator("section.day").nth(max(days_before - 1, 0))
    if days_before:
        assert earlier.locator(".cell-action", has_text="Réserver").count() == 0
    cell_id = action.locator("xpath=ancestor::div[contains(@class, 'cell')]").get_attribute("id")
    action.click()
    page.locator(f"#{cell_id}").get_by_role("button", name="Confirmer").click()
    page.locator(f"#{cell_id}").get_by_text(re.compile("Réservation demandée|Réservé")).wait_for()
    assert "pour " in page.locator("#annonce").inner_text()
    journey.check("reserve-en-deux-gestes")
    # the month on a phone: a grid of marks, short enough to take in; a day opens its agenda
    page.get_by_role("link", name="Mois", exact=True).click()
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 2500, f"month at 360 px: {height} px"
    journey.check("mois-grille")
    page.locator(".day-link").nth(14).click()
    assert "jour=" in page.url and page.locator(".views [aria-current]").inner_text() == "Agenda"
    journey.check("jour-ouvert")
    # the switches survive Suivant and a change of view
    page.get_by_text("Affichés :").click()
    page.get_by_role("switch", name=re.compile("Tom")).click()  # (the page reloads at once: no uncheck())
    page.wait_for_url(re.compile("filtre=1"))
    page.get_by_role("link", name="Suivant →").click()
    page.get_by_role("link", name="7 jours").click()
    assert "filtre=1" in page.url and "Tom" not in page.locator(".planning").inner_text()
    journey.check("filtre-garde")
    page.context.close()


def test_by_keyboard_alone_a_day_is_reserved_and_the_focus_follows(browser, live_server):
    """Skip link, at most 5 Tabs to the first Réserver, Enter, Enter; Escape cancels; never <body>."""
    from portail.formatting import PARIS, french_day
    from portail.models import Family, utcnow
    from tests.browser_support import login

    today = utcnow().astimezone(PARIS).date()
    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        activity = make_activity(start_date=today - timedelta(days=60), end_date=today + timedelta(days=300))
        enrol(family.children[1], activity)  # Tom
        subscribe(make_user(email="claire@example.fr"), family)
        db.session.commit()
        family_id = family.id
    page = new_page(browser, width=1280)
    journey = Journey(page, "clavier")
    login(page, live_server.base_url, "claire@example.fr")
    page.goto(f"{live_server.base_url}/famille/{family_id}/planning?vue=agenda")

    def focused() -> str:
        return page.evaluate(
            "() => { const e = document.activeElement; return e.tagName + ' ' + (e.innerText || '').trim(); }"
        )

    page.keyboard.press("Tab")
    assert focused() == "A Aller au planning"
    journey.check("lien-d-evitement")
    page.keyboard.press("Enter")
    presses = 0
    while presses < 5 and not focused().startswith("A Réserver"):
        page.keyboard.press("Tab")
        presses += 1
    assert focused().startswith("A Réserver"), f"after 5 Tabs: {focused()}"
    journey.check(f"reserver-en-{presses}-tabulations")
    # Escape cancels the confirmation and gives the focus back to the cell's action
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.textContent === 'Confirmer'")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.activeElement.classList.contains('cell-action')")
    assert focused().startswith("A Réserver")
    # Enter, Enter: reserved; the focus stays on the cell, the live region says what was done
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.textContent === 'Confirmer'")
    journey.check("confirmation-focalisee")
    cell = page.evaluate("document.activeElement.closest('.cell').id")
    day = date_of(cell)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.activeElement !== document.body && !document.activeElement.closest('form')"
    )
    assert page.evaluate("document.activeElement.closest('.cell') !== null")
    page.locator(f"#{cell}").get_by_text("Réservation demandée").wait_for()
    said = page.locator("#annonce").inner_text()
    assert said == f"Réservation demandée pour Tom, {french_day(day)} — Restauration scolaire", said
    journey.check("reservation-annoncee")
    # the focus ring: ink, 3 px, against the white page (≥ 3:1 on both sides)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert outline == "rgb(27, 27, 27)", outline
    page.context.close()


def date_of(cell_id: str):
    from datetime import date

    return date.fromisoformat(cell_id[-10:])


def test_after_a_failed_send_the_period_form_keeps_the_focus_where_the_parent_types(browser, live_server):
    """The error summary takes the focus once (after the send), then follows the form without taking it
    back; each preview is swapped inside a live region that stays in place."""
    from portail.models import Family, utcnow
    from tests.browser_support import login

    today = utcnow().date()
    with live_server.app_context():
        family = db.session.scalar(db.select(Family))
        activity = make_activity(start_date=today - timedelta(days=60), end_date=today + timedelta(days=300))
        enrol(family.children[0], activity)
        subscribe(make_user(email="claire@example.fr"), family)
        db.session.commit()
        family_id, activity_id = family.id, activity.id
    page = new_page(browser, width=360)
    journey = Journey(page, "periode-clavier")
    login(page, live_server.base_url, "claire@example.fr")
    page.goto(f"{live_server.base_url}/famille/{family_id}/planning/periode")
    page.get_by_role("button", name="Envoyer la demande").click()
    page.wait_for_function("() => document.activeElement.classList.contains('error-summary')")
    live_region = page.locator("#apercu-contenu").element_handle()
    assert "4 erreurs à corriger" in page.locator(".error-summary").inner_text()
    journey.check("erreurs")
    box = page.get_by_label("Léa MARTIN")
    box.focus()
    page.keyboard.press("Space")
    page.get_by_label("Activité").select_option(str(activity_id))
    page.locator(".error-summary", has_text="2 erreurs à corriger").wait_for()
    # the fields put right lose their error message, the others keep theirs
    messages = page.locator(".error-message").all_inner_texts()
    assert "Choisissez au moins un enfant." not in messages and "Choisissez une activité." not in messages
    assert "Cochez au moins un jour de la semaine." in messages
    page.get_by_label("Lundi").focus()
    page.keyboard.press("Space")
    page.locator(".error-summary", has_text="1 erreur à corriger").wait_for()
    assert page.evaluate("document.activeElement.value") == "1", "the focus stays on the box just ticked"
    start = today + timedelta(days=14)
    page.get_by_label("Du").fill(start.isoformat())
    page.get_by_label("Au").fill((start + timedelta(days=13)).isoformat())
    page.locator("#apercu-contenu h3").wait_for()
    assert page.locator(".error-summary").count() == 0
    assert page.locator(".error-message, .field-error").count() == 0
    # the same live region as at the start, its content replaced
    assert page.evaluate("(region) => region.isConnected", live_region)
    journey.check("apercu-sans-erreur")
    page.context.close()
