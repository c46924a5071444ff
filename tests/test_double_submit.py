"""Double submission: identical POSTs at the same moment (a double click, two tabs) give one
request, one row and one mail, and every copy gets a normal answer (the current state), never a 500.

Each test fires the same POST from separate clients sharing one session (two tabs), in real
threads. `collide` holds every copy at a barrier just before its first write, once each copy has
read the state: they all read it before any of them writes, which is the race a double click
makes, every time instead of by chance.
"""

import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portail.extensions import db
from portail.models import Booking, OutboxMessage, Request, RequestLine, utcnow
from portail.services import outbox
from tests.factories import enrol, make_activity, make_family, make_user, subscribe

pytestmark = pytest.mark.both_dbs

COPIES = 2


@pytest.fixture(autouse=True)
def _mails_stay_in_the_outbox(monkeypatch):
    """The mails stay in the outbox, counted there (their delivery is another test's concern)."""
    monkeypatch.setattr(outbox, "enqueue_many", lambda *args, **kwargs: None)


def collide(monkeypatch, owner, name: str, parties: int = COPIES) -> None:
    """Hold the first call of `owner.name` in each thread until every copy has reached it."""
    original = getattr(owner, name)
    barrier = threading.Barrier(parties)
    arrived = threading.local()

    def held(*args, **kwargs):
        if not getattr(arrived, "done", False):
            arrived.done = True
            barrier.wait(timeout=20)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)


def tabs(app, client, count: int = COPIES) -> list:
    """`count` clients with the logged-in session of `client` (tabs of one browser)."""
    cookie = client.get_cookie("session")
    copies = []
    for _ in range(count):
        tab = app.test_client()
        tab.set_cookie("session", cookie.value)
        copies.append(tab)
    return copies


def fire(clients: list, path: str, **kwargs) -> list:
    """The same POST from every client at once; each answer's status and text (500: an exception)."""
    start = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def send(index: int) -> None:
        try:
            start.wait(timeout=20)
            response = clients[index].post(path, **kwargs)
            answers[index] = (response.status_code, response.get_data(as_text=True), response.location)
        except Exception as error:  # noqa: BLE001 - an exception is the 500 a parent would see
            answers[index] = (500, repr(error), None)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(answer is not None for answer in answers), "a request never answered"
    db.session.expire_all()
    return answers


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def next_weekday(iso: int, weeks_ahead: int = 3) -> date:
    today = utcnow().date() + timedelta(weeks=weeks_ahead)
    return today + timedelta(days=(iso - today.isoweekday()) % 7)


@pytest.fixture
def family_setup(app, auth):
    """A parent logged in, subscribed to a family whose child is enrolled in a manual activity."""
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    parent = make_user()
    subscribe(parent, family)
    activity = make_activity()
    enrol(family.children[0], activity)
    db.session.commit()
    auth.login("parent@example.fr")
    return family, family.children[0], activity


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_a_cell_clicked_twice_at_once_makes_one_request_and_both_get_the_cell(
    app, client, monkeypatch, family_setup, htmx
):
    from portail.services import bookings

    family, child, activity = family_setup
    day = next_weekday(2)
    collide(monkeypatch, bookings, "submit")
    clients = tabs(app, client)
    answers = fire(
        clients,
        f"/famille/{family.id}/planning/cellule",
        data={"enfant": child.id, "activite": activity.id, "jour": day.isoformat(), "action": "reserve"},
        headers={"HX-Request": "true"} if htmx else {},
    )
    if htmx:
        for status, text, _ in answers:
            assert status == 200 and "<html" not in text and "Réservation demandée" in text, text
    else:
        assert [status for status, _, _ in answers] == [302] * COPIES, answers
        for tab, (_, _, location) in zip(clients, answers, strict=True):
            page = tab.get(location).get_data(as_text=True)
            assert "demande est enregistrée" in page or "demande est déjà enregistrée" in page, page
            assert "Aucun jour" not in page
    assert count(Request) == 1 and count(RequestLine) == 1 and count(Booking) == 1
    assert count(OutboxMessage, OutboxMessage.template == "booking_receipt") == 1


def test_a_period_sent_twice_at_once_makes_one_request_and_both_get_a_page(
    app, client, monkeypatch, family_setup
):
    from portail.services import bookings

    family, child, activity = family_setup
    start = next_weekday(1)
    collide(monkeypatch, bookings, "submit")
    clients = tabs(app, client)
    answers = fire(
        clients,
        f"/famille/{family.id}/planning/periode",
        data={
            "enfant": str(child.id),
            "activite": str(activity.id),
            "du": start.isoformat(),
            "au": (start + timedelta(days=13)).isoformat(),
            "jours": ["1", "4"],
            "type": "reservation",
        },
    )
    assert [status for status, _, _ in answers] == [302] * COPIES, answers
    for tab, (_, _, location) in zip(clients, answers, strict=True):
        page = tab.get(location).get_data(as_text=True)
        assert "1 demande enregistrée" in page or "Cette demande est déjà enregistrée" in page, page
    assert count(Request) == 1 and count(RequestLine) == 4
    assert count(OutboxMessage, OutboxMessage.template == "booking_receipt") == 1
