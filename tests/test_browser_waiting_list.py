"""Browser journey of a full day's waiting list (issue 19, part 1) at 360 px: Léa's mother joins the line
from the cell (the confirmation says the hold time and the price) and sees her rank; the family ahead
leaves the line, then a family with a place withdraws: the place is offered to Léa, on the cell (its
live refresh) and by mail with its deadline; her mother confirms and the day is reserved. axe at every
step, the focus kept in the cell after each swap; without JavaScript, the line is joined through the
confirmation page."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from tests.browser_support import ARTIFACTS, Journey, login, new_page
from tests.factories import (
    add_tariff,
    enrol,
    enrolled_child,
    make_activity,
    make_user,
    next_weekday,
    subscribe,
)

pytestmark = pytest.mark.browser

HOLD = "2 h"  # the activity's hold time (120 minutes, the default), as the confirmation words it
# How far below the sticky period bar the cell's top is (negative: hidden under it), once settled.
UNDER_THE_BAR = """(id) => new Promise((done) => setTimeout(() => done(
  document.getElementById(id).getBoundingClientRect().top
  - document.querySelector('.planning-bar').getBoundingClientRect().bottom), 100))"""
FOCUS_IN_CELL = "(id) => { const e = document.activeElement; return !!e && e !== document.body && !!e.closest('#' + id); }"


def full_day_with_a_line(app, *, second_family: bool) -> dict:
    """In the live server's app: the evening care (automatic, 1 place, a waiting list, priced) in which
    Léa MARTIN is enrolled, her mother Claire subscribed; its place taken two weeks ahead by Hugo
    DURAND and, if `second_family`, Inès PETIT first in its line. The ids and the day."""
    from portail import bookings
    from portail.models import Family, RequestKind, ValidationMode, utcnow
    from portail.services.outbox import commit

    day = next_weekday(2)
    zone = app.config["SCHOOL_ZONE"]
    with app.app_context():
        activity = make_activity(
            name="Accueil du soir",
            validation_mode=ValidationMode.AUTOMATIC,
            capacity=1,
            waiting_list=True,
        )
        add_tariff(activity, valid_from=utcnow().date() - timedelta(days=60))
        martin = db.session.scalar(sa.select(Family).where(Family.name == "Famille MARTIN"))
        lea = martin.children[0]
        enrol(lea, activity)
        subscribe(make_user(email="claire@example.fr", first_name="Claire", last_name="MARTIN"), martin)
        durand, hugo = enrolled_child(activity, "Hugo", family_name="Famille DURAND")
        paul = make_user(email="paul.durand@example.fr", first_name="Paul", last_name="DURAND")
        subscribe(paul, durand)
        bookings.submit(durand.id, paul, hugo, activity, RequestKind.RESERVATION, [day], utcnow(), zone)
        ids = {"family": martin.id, "lea": lea.id, "activity": activity.id, "hugo": hugo.id, "paul": paul.id}
        if second_family:
            petit, ines = enrolled_child(activity, "Inès", family_name="Famille PETIT")
            sophie = make_user(email="sophie.petit@example.fr", first_name="Sophie", last_name="PETIT")
            subscribe(sophie, petit)
            submitted = bookings.submit(
                petit.id, sophie, ines, activity, RequestKind.RESERVATION, [day], utcnow(), zone, waiting=True
            )
            assert submitted.days[day][0].value == "waiting"
            ids |= {"ines": ines.id, "sophie": sophie.id}
        commit()
    return ids | {"day": day, "zone": zone}


def test_a_parent_joins_a_full_days_line_is_offered_the_place_freed_and_takes_it(browser, live_server):
    from portail import bookings
    from portail.formatting import french_day
    from portail.models import Activity, Child, RequestKind, User, utcnow
    from portail.services.outbox import commit

    ids = full_day_with_a_line(live_server, second_family=True)
    day, base = ids["day"], live_server.base_url
    cell_id = f"cell-{ids['lea']}-{ids['activity']}-{day.isoformat()}"
    page = new_page(browser)
    journey = Journey(page, "liste-attente")
    login(page, base, "claire@example.fr")
    page.goto(f"{base}/famille/{ids['family']}/planning?vue=agenda&date={day.isoformat()}")
    cell = page.locator(f"#{cell_id}")

    def focus_in_cell() -> bool:
        """The focus in the cell once htmx has settled its swap (it lands there within a few ms)."""
        page.wait_for_function(FOCUS_IN_CELL, arg=cell_id, timeout=3000)
        return True

    def refresh_live_cell() -> None:
        """What the page does when shown again (or every minute): the cells in line ask the server."""
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")

    # the day is full: it says so, and offers its waiting list
    assert "Complet" in cell.inner_text()
    journey.check("jour-complet")
    join = cell.get_by_role("link", name=re.compile("S'inscrire sur la liste d'attente"))
    # (opened from the bottom of a small screen: the long confirmation, taller than the room under the
    # sticky bar, must start below it, not slide under it)
    size = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 480})
    page.evaluate("document.querySelector('main').style.paddingBottom = '100vh'")  # (room to scroll)
    join.evaluate(
        "(link) => window.scrollBy(0, link.getBoundingClientRect().bottom - window.innerHeight + 4)"
    )
    join.click()
    question = cell.get_by_text(
        f"Inscrire Léa sur la liste d'attente du {french_day(day)} — Accueil du soir ?"
    )
    question.wait_for()
    assert page.evaluate(UNDER_THE_BAR, cell_id) >= 0, "the question shows below the sticky period bar"
    page.set_viewport_size(size)
    cost = cell.locator(".cost").inner_text()
    assert f"aurez {HOLD} pour la confirmer" in cost, cost
    assert re.search(
        r"Si la place vous est attribuée, prix de ce jour pour votre famille : \d+,\d\d\s€", cost
    ), cost
    assert focus_in_cell() and page.evaluate("document.activeElement.textContent") == "Confirmer"
    journey.check("confirmation-inscription")
    cell.get_by_role("button", name="Confirmer").click()
    cell.get_by_text("Liste d'attente — 2e").wait_for()
    assert focus_in_cell(), "the focus stays in the cell after joining"
    assert cell.get_by_role("link", name=re.compile("Quitter la liste d'attente")).count() == 1
    assert "Liste d'attente — 2e pour Léa" in page.locator("#annonce").inner_text()
    journey.check("liste-attente-2e")
    assert cell.get_attribute("data-vu") == "waiting.2.False", "the cell in line is kept live"

    # nothing changed: the cell asks again, the server answers 204 and nothing is swapped
    before = cell.element_handle()
    with page.expect_response(re.compile("/planning/cellule\\?.*vu=")) as asked:
        refresh_live_cell()
    assert asked.value.status == 204
    assert page.evaluate("(cell) => cell.isConnected", before)

    # the family ahead leaves the line: Léa is first
    with live_server.app_context():
        ines, activity = db.session.get(Child, ids["ines"]), db.session.get(Activity, ids["activity"])
        bookings.withdraw(ines, activity, day, db.session.get(User, ids["sophie"]), utcnow(), ids["zone"])
        commit()
    refresh_live_cell()
    cell.get_by_text("Liste d'attente — 1er").wait_for()
    assert focus_in_cell(), "the focus stays in the cell through its live refresh"
    assert "Liste d'attente — 1er" in page.locator("#annonce").inner_text()
    journey.check("liste-attente-1er")

    # the family with the place withdraws (an absence in time): the place is offered to Léa at once
    with live_server.app_context():
        hugo, activity = db.session.get(Child, ids["hugo"]), db.session.get(Activity, ids["activity"])
        paul = db.session.get(User, ids["paul"])
        bookings.submit(
            hugo.family_id, paul, hugo, activity, RequestKind.ABSENCE, [day], utcnow(), ids["zone"]
        )
        commit()
    refresh_live_cell()
    offer = cell.get_by_text(re.compile("Une place s'est libérée — à confirmer avant (\\d\\d:\\d\\d|.+)"))
    offer.wait_for()
    assert focus_in_cell(), "the focus stays in the cell through its live refresh"
    deadline = re.search("à confirmer avant (.+)", offer.inner_text()).group(1)
    assert cell.get_by_role("link", name=re.compile("Confirmer la place")).count() == 1
    assert cell.get_by_role("link", name=re.compile("^Refuser la place")).count() == 1
    assert "Une place s'est libérée" in page.locator("#annonce").inner_text()
    journey.check("place-proposee")
    planning_url = page.url

    # …and by mail, with its deadline
    page.goto(base + "/dev/mailbox")
    mail = page.get_by_role("link", name=re.compile("Liste d'attente : une place s'est libérée"))
    assert mail.count() == 1
    journey.check("boite-mail")
    mail.click()
    body = page.inner_text("main")
    assert "claire@example.fr" in body and "Enfant : Léa" in body and "Accueil du soir" in body
    held = re.search("La place vous est réservée jusqu'au (.+?)\\. Confirmez-la sur le planning", body)
    assert held and held.group(1).endswith(deadline), (body, deadline)
    journey.check("mail-place-liberee")

    # she confirms: the day is hers
    page.goto(planning_url)
    cell.get_by_role("link", name=re.compile("Confirmer la place")).click()
    cell.get_by_text(
        f"Confirmer la place proposée le {french_day(day)} pour Léa — Accueil du soir ?"
    ).wait_for()
    assert f"Une place s'est libérée — à confirmer avant {deadline}." in cell.inner_text()
    assert focus_in_cell() and page.evaluate("document.activeElement.textContent") == "Confirmer"
    assert re.search(r"Prix de ce jour pour votre famille : \d+,\d\d\s€", cell.inner_text())
    journey.check("confirmation-place")
    cell.get_by_role("button", name="Confirmer").click()
    cell.get_by_text("Réservé").wait_for()
    assert focus_in_cell(), "the focus stays in the cell after confirming the place"
    assert cell.get_attribute("data-vu") is None, "a reserved day is no longer asked again"
    journey.check("reserve")
    page.context.close()


def test_the_focus_stays_in_a_cell_swapped_by_its_live_refresh(browser, live_server):
    """A keyboard user on the cell's link when the place is offered keeps the focus in the cell."""
    from portail import bookings
    from portail.models import Activity, Child, RequestKind, User, utcnow
    from portail.services.outbox import commit

    ids = full_day_with_a_line(live_server, second_family=False)
    day, base = ids["day"], live_server.base_url
    cell_id = f"cell-{ids['lea']}-{ids['activity']}-{day.isoformat()}"
    page = new_page(browser)
    login(page, base, "claire@example.fr")
    page.goto(f"{base}/famille/{ids['family']}/planning?vue=agenda&date={day.isoformat()}")
    cell = page.locator(f"#{cell_id}")
    cell.get_by_role("link", name=re.compile("S'inscrire")).click()
    cell.get_by_role("button", name="Confirmer").click()
    cell.get_by_text("Liste d'attente — 1er").wait_for()
    cell.get_by_role("link", name=re.compile("Quitter la liste d'attente")).focus()
    # (then the parent scrolls away, the focus left in the cell: the refresh must not bring her back)
    page.evaluate("document.querySelector('main').style.paddingBottom = '200vh'")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    with live_server.app_context():
        hugo, activity = db.session.get(Child, ids["hugo"]), db.session.get(Activity, ids["activity"])
        bookings.submit(
            hugo.family_id,
            db.session.get(User, ids["paul"]),
            hugo,
            activity,
            RequestKind.ABSENCE,
            [day],
            utcnow(),
            ids["zone"],
        )
        commit()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    cell.get_by_text(re.compile("Une place s'est libérée")).wait_for()
    page.wait_for_function(FOCUS_IN_CELL, arg=cell_id, timeout=3000)  # (once htmx has settled the swap)
    assert page.evaluate("window.scrollY") == scrolled, "the refresh did not move the page"
    page.context.close()


def test_a_live_refresh_moves_no_page_and_announces_every_cell_it_changed(browser, live_server):
    """Léa in line on two days; both places freed while her mother reads further down the page: one
    round of refreshes swaps both cells, announces both (not the last only), and does not scroll."""
    from portail import bookings
    from portail.models import Activity, Child, RequestKind, User, utcnow
    from portail.services.outbox import commit

    ids = full_day_with_a_line(live_server, second_family=False)
    first, base = ids["day"], live_server.base_url
    days = [first, first + timedelta(days=1)]
    with live_server.app_context():
        hugo, activity = db.session.get(Child, ids["hugo"]), db.session.get(Activity, ids["activity"])
        lea, paul = db.session.get(Child, ids["lea"]), db.session.get(User, ids["paul"])
        zone = ids["zone"]
        bookings.submit(
            hugo.family_id, paul, hugo, activity, RequestKind.RESERVATION, days[1:], utcnow(), zone
        )
        bookings.submit(
            lea.family_id, None, lea, activity, RequestKind.RESERVATION, days, utcnow(), zone, waiting=True
        )
        commit()
    page = new_page(browser)
    login(page, base, "claire@example.fr")
    page.goto(f"{base}/famille/{ids['family']}/planning?vue=agenda&date={first.isoformat()}")
    cells = [page.locator(f"#cell-{ids['lea']}-{ids['activity']}-{day.isoformat()}") for day in days]
    for cell in cells:
        cell.get_by_text("Liste d'attente — 1er").wait_for()
    page.evaluate("document.querySelector('main').style.paddingBottom = '200vh'")  # (room to scroll)
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, document.body.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    assert page.evaluate(UNDER_THE_BAR, cells[0].get_attribute("id")) < 0, "the cells are above the screen"
    with live_server.app_context():
        hugo = db.session.get(Child, ids["hugo"])
        bookings.submit(
            hugo.family_id,
            db.session.get(User, ids["paul"]),
            hugo,
            db.session.get(Activity, ids["activity"]),
            RequestKind.ABSENCE,
            days,
            utcnow(),
            ids["zone"],
        )
        commit()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    for cell in cells:
        cell.get_by_text(re.compile("Une place s'est libérée")).wait_for()
    page.wait_for_timeout(200)  # (htmx settles the swaps)
    assert page.evaluate("window.scrollY") == scrolled, "a refreshed cell does not move the page"
    said = page.locator("#annonce p").all_inner_texts()
    assert len(said) == 2 and all("Une place s'est libérée" in line for line in said), said
    page.context.close()


def test_without_javascript_a_parent_joins_the_line_through_the_confirmation_page(browser, live_server):
    """The same line joined through the confirmation page and the planning reloaded (axe needs
    JavaScript: each page is checked again in a page that has it, at the same address)."""
    from tests.browser_support import logged_in

    ids = full_day_with_a_line(live_server, second_family=False)
    day, base = ids["day"], live_server.base_url
    cell_id = f"cell-{ids['lea']}-{ids['activity']}-{day.isoformat()}"
    checker, journey = logged_in(browser, base, "claire@example.fr", "liste-attente-sans-js")
    page = new_page(browser, javascript=False)
    login(page, base, "claire@example.fr")

    def check(label: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"liste-attente-sans-js-{label}-page.png"), full_page=True)
        checker.goto(page.url)
        journey.check(label)

    page.goto(f"{base}/famille/{ids['family']}/planning?vue=agenda&date={day.isoformat()}")
    page.locator(f"#{cell_id}").get_by_role(
        "link", name=re.compile("S'inscrire sur la liste d'attente")
    ).click()
    page.get_by_role("heading", name="Confirmer la demande").wait_for()
    assert "/planning/confirmer" in page.url
    text = page.inner_text("main")
    assert (
        f"aurez {HOLD} pour la confirmer" in text
        and "Si la place vous est attribuée, prix de ce jour pour votre famille" in text
    )
    check("page-confirmation")
    page.get_by_role("button", name="Confirmer").click()
    page.wait_for_url(re.compile("/planning\\?"))
    said = page.locator(".flash, [role=status], [role=alert]").first.inner_text()
    assert "Liste d'attente — 1er pour Léa" in said, said
    assert "Liste d'attente — 1er" in page.locator(f"#{cell_id}").text_content()
    check("planning-apres")
    page.goto(f"{base}/famille/{ids['family']}/planning?vue=agenda&date={day.isoformat()}")
    assert "Liste d'attente — 1er" in page.locator(f"#{cell_id}").inner_text()
    assert (
        page.locator(f"#{cell_id}").get_by_role("link", name=re.compile("Quitter la liste d'attente")).count()
        == 1
    )
    check("agenda-apres")
    page.context.close()
    checker.context.close()
