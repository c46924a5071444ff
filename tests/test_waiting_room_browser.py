"""Browser journey at 360 px: parents wait for the opening (with and without JavaScript), see their
place in line in a live region, and reach the planning at the opening; axe checks every step."""

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from portail.extensions import db
from portail.models import Activity, Family, Role, User
from portail.services import openings
from tests.browser_support import Journey, login, new_page
from tests.factories import enrol, make_activity, make_user, subscribe

pytestmark = pytest.mark.browser


def fresh_room(live_server):
    """The live server's waiting room on an empty (fake) Redis."""
    room = live_server.extensions["waiting_room"]
    room.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return room


def family_at_the_centre(emails: list[str]) -> Family:
    """The demo family, its first child enrolled at a holiday centre, a parent account per address."""
    family = db.session.scalar(db.select(Family))
    enrol(family.children[0], make_activity(name="Centre de loisirs"))
    for email in emails:
        first = email.split("@")[0].capitalize()
        subscribe(make_user(email=email, first_name=first, last_name="MARTIN"), family)
    return family


def test_parents_wait_then_reach_the_planning_at_the_opening(browser, live_server):
    fresh_room(live_server)
    with live_server.app_context():
        family = family_at_the_centre(["claire@example.fr", "julien@example.fr"])
        db.session.commit()
        family_id = family.id
    base = live_server.base_url
    page = new_page(browser)
    journey = Journey(page, "waiting-room-360")
    login(page, base, "claire@example.fr")
    quiet = new_page(browser, javascript=False)
    login(quiet, base, "julien@example.fr")

    with live_server.app_context():
        agent = db.session.scalar(db.select(User).where(User.role == Role.AGENT))
        activity = db.session.scalar(db.select(Activity))
        now = datetime.now(UTC)
        opens_at = now.replace(microsecond=0) + timedelta(seconds=7)
        openings.announce(agent, [activity.id], opens_at, now - timedelta(minutes=30), now=now)
        db.session.commit()

    planning = f"{base}/famille/{family_id}/planning"
    page.goto(planning)
    status = page.get_by_role("status")
    assert re.search(r"Votre place dans la file : 1\b", status.inner_text())
    assert status.get_attribute("aria-live") == "polite"
    assert "La réservation ouvre le" in status.inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Salle d'attente des réservations"
    journey.check("attente")

    quiet.goto(planning)
    assert "Votre place dans la file : 2" in quiet.get_by_role("status").inner_text()

    # at the opening, htmx (and the meta refresh without JavaScript) takes each parent in, first come first served
    page.get_by_role("heading", name=re.compile("Activités — Famille MARTIN")).wait_for(timeout=25_000)
    assert datetime.now(UTC) >= opens_at
    journey.check("admis")
    quiet.get_by_role("heading", name=re.compile("Activités — Famille MARTIN")).wait_for(timeout=25_000)
    page.context.close()
    quiet.context.close()


def test_at_an_opening_visitors_wait_at_the_login_form_then_log_in_and_queue_for_the_planning(
    browser, live_server
):
    from portail.waiting_room import store
    from tests.factories import PASSWORD

    room = fresh_room(live_server)
    with live_server.app_context():
        family = family_at_the_centre(["claire@example.fr"])
        agent = db.session.scalar(db.select(User).where(User.role == Role.AGENT))
        activity = db.session.scalar(db.select(Activity))
        now = datetime.now(UTC)
        opens_at = now.replace(microsecond=0) + timedelta(seconds=40)
        opening = openings.announce(agent, [activity.id], opens_at, now, now=now)
        db.session.commit()
        family_id, opening_id, start = family.id, opening.id, opening.queue_from.timestamp()
    eight = dataclasses.replace(room.entrance_tuning, initial_window=8)
    for _ in range(8):  # eight visitors came first and fill a window of 8: a place frees in 10 s
        store.enter(room.client, f"{opening_id}:entree", start, 0, start + 0.1, eight)
    base = live_server.base_url
    page = new_page(browser)
    journey = Journey(page, "waiting-room-entrance-360")
    page.goto(base + "/connexion")
    status = page.get_by_role("status")
    assert "Votre place dans la file" in status.inner_text()
    assert "se connectent au portail dans leur ordre d'arrivée" in status.inner_text()
    assert page.get_by_role("link", name="Connexion des agents").get_attribute("href") == "/connexion/agent"
    journey.check("file-connexion")

    # the line moves (htmx polls the place): the login form comes by itself, then the planning's line
    page.get_by_label("Adresse e-mail").wait_for(timeout=25_000)
    page.get_by_label("Adresse e-mail").fill("claire@example.fr")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state()
    page.goto(f"{base}/famille/{family_id}/planning")
    assert "La réservation ouvre le" in page.get_by_role("status").inner_text()
    journey.check("file-reservations")
    page.context.close()


def test_an_agent_follows_the_line_of_an_opening_on_a_phone(browser, live_server):
    """The staff's Ouvertures list at 360 px while parents queue: tickets, admitted, in visit, pace."""
    from portail.waiting_room import store

    room = fresh_room(live_server)
    with live_server.app_context():
        family_at_the_centre([])
        agent = db.session.scalar(db.select(User).where(User.role == Role.AGENT))
        activity = db.session.scalar(db.select(Activity))
        now = datetime.now(UTC)
        opens_at = now.replace(microsecond=0) - timedelta(seconds=30)
        opening = openings.announce(
            agent, [activity.id], opens_at, opens_at - timedelta(minutes=30), now=now - timedelta(hours=1)
        )  # (announced an hour ago)
        db.session.commit()
        opening_id, at = opening.id, opens_at.timestamp()
    tuning = dataclasses.replace(room.tuning, initial_window=3)
    for _ in range(5):  # five parents took a ticket; three are in at the opening
        store.enter(room.client, opening_id, at, 0, at - 10, tuning)
    store.enter(room.client, opening_id, at, 1, at, tuning)
    page = new_page(browser)
    journey = Journey(page, "ouvertures-360")
    page.goto(live_server.base_url + "/connexion/agent")
    page.get_by_label("Adresse e-mail").fill("agent@example.fr")
    from tests.factories import PASSWORD

    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state()
    page.goto(live_server.base_url + "/gestion/ouvertures")
    row = page.get_by_role("row", name=re.compile("Centre de loisirs"))
    assert "5 tickets, 3 admis" in row.inner_text()
    assert "en cours de visite" in row.inner_text() and "Ouverte" in row.inner_text()
    journey.check("file-en-cours")
    page.context.close()
