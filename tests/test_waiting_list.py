"""The waiting list of a full day: joining it (from a cell or the period form) with a live rank, the
place freed offered at once to the first in line and held, confirmed, declined, expired or closed at
the deadline and passed on; an activity validated by hand hands it to the agent's queue."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.bookings import rules
from portail.bookings.facts import BOOKINGS
from portail.bookings.transitions import LIST_CLOSED, OFFER_LAPSED
from portail.extensions import db
from portail.models import (
    ActivityDay,
    Booking,
    BookingState,
    EventKind,
    LineState,
    OutboxMessage,
    RequestEvent,
    RequestKind,
    RequestLine,
    ValidationMode,
    WaitingEnd,
    WaitingEntry,
)
from portail.services import calendar_feeds
from tests.factories import (
    cell_form,
    enrolled_child,
    make_activity,
    make_user,
    next_weekday,
    period_form,
    subscribe,
)
from tests.support import queries_for

pytestmark = pytest.mark.both_dbs
ZONE = "C"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def line(app):
    """An automatic activity of one place with a waiting list (2 h to confirm); the Thursday in two
    weeks reserved by the MARTIN family; BERNARD, Léa's (DUPONT) and PETIT families enrolled, each
    with a parent."""
    activity = make_activity(
        name="Centre de loisirs",
        validation_mode=ValidationMode.AUTOMATIC,
        capacity=1,
        waiting_list=True,
        offer_hold_minutes=120,
    )
    children = {}
    for name, family_name, email in (
        ("Hugo", "MARTIN", "martin@example.fr"),
        ("Jade", "BERNARD", "bernard@example.fr"),
        ("Léa", "DUPONT", "parent@example.fr"),
        ("Noé", "PETIT", "petit@example.fr"),
    ):
        family, child = enrolled_child(activity, name, f"Famille {family_name}")
        subscribe(make_user(email=email, first_name=name), family)
        children[name] = (family, child)
    day = next_weekday(4)
    family, child = children["Hugo"]
    bookings.submit(family.id, None, child, activity, RequestKind.RESERVATION, [day], now_utc(), ZONE)
    db.session.commit()
    return activity, day, children


def join(children, name, activity, day, now=None):
    family, child = children[name]
    return bookings.with_retries(
        lambda: bookings.submit(
            family.id,
            None,
            child,
            activity,
            RequestKind.RESERVATION,
            [day],
            now or now_utc(),
            ZONE,
            waiting=True,
        )
    )


def absent(children, name, activity, day, now=None):
    family, child = children[name]
    bookings.with_retries(
        lambda: bookings.submit(
            family.id, None, child, activity, RequestKind.ABSENCE, [day], now or now_utc(), ZONE
        )
    )


def state(children, name, activity, day):
    child = children[name][1]
    return db.session.scalar(
        sa.select(Booking.state).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
        )
    )


def ranks(children, activity, day) -> dict[str, int]:
    """Each waiting child's rank in the line, as the planning reads it (facts.BOOKINGS), by first name."""
    names = {child.id: name for name, (_family, child) in children.items()}
    rows = db.session.connection().execute(
        BOOKINGS, {"ids": list(names), "activities": [activity.id], "start": day, "end": day}
    )
    return {
        names[child_id]: rank
        for child_id, _activity, _day, _state, _reason, rank, until in rows
        if rank is not None and until is None
    }


def db_order(activity, day) -> list[int]:
    """The line's children in the database's order (queue_key, then id)."""
    return list(
        db.session.scalars(
            sa.select(WaitingEntry.child_id)
            .where(
                WaitingEntry.activity_id == activity.id,
                WaitingEntry.day == day,
                WaitingEntry.ended_at.is_(None),
                WaitingEntry.offered_at.is_(None),
            )
            .order_by(WaitingEntry.queue_key, WaitingEntry.id)
        )
    )


def booked(activity, day) -> int:
    return db.session.scalar(
        sa.select(ActivityDay.booked).where(ActivityDay.activity_id == activity.id, ActivityDay.day == day)
    )


def mails_to(template: str) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(OutboxMessage.recipient)
            .where(OutboxMessage.template == template)
            .order_by(OutboxMessage.id)
        )
    )


def entry_of(children, name, activity, day) -> WaitingEntry:
    child = children[name][1]
    return db.session.scalars(
        sa.select(WaitingEntry)
        .where(
            WaitingEntry.child_id == child.id,
            WaitingEntry.activity_id == activity.id,
            WaitingEntry.day == day,
        )
        .order_by(WaitingEntry.id.desc())
        .execution_options(populate_existing=True)
    ).first()


def cell_text(client, children, name, activity, day) -> str:
    family, child = children[name]
    response = client.get(
        f"/famille/{family.id}/planning/cellule",
        query_string=cell_form(child, activity, day),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    return " ".join(unescape(response.get_data(as_text=True)).split())


def test_the_ranks_on_the_planning_cost_no_query_more(client, auth, line):
    """A month or an agenda showing a day in line (its rank read with its booking) runs the same
    queries as without: no query per cell, none more for the waiting list."""
    activity, day, children = line
    auth.login("parent@example.fr")
    family, _child = children["Léa"]
    urls = [f"/famille/{family.id}/planning?vue={view}&date={day.isoformat()}" for view in ("mois", "agenda")]
    for url in urls:
        client.get(url)  # (the view is remembered once)
    before = [queries_for(client, url) for url in urls]
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    db.session.commit()
    assert [queries_for(client, url) for url in urls] == before
    for url in urls:
        assert "Liste d'attente — 2e" in unescape(client.get(url).get_data(as_text=True))


def test_a_full_day_offers_its_waiting_list_and_each_child_joins_at_its_rank(client, auth, line):
    activity, day, children = line
    auth.login("parent@example.fr")
    text = cell_text(client, children, "Léa", activity, day)
    assert "Complet" in text and "S'inscrire sur la liste d'attente" in text and "Réserver" not in text
    join(children, "Jade", activity, day)
    family, child = children["Léa"]
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "join"),
        headers={"HX-Request": "true"},
    )
    html = " ".join(unescape(response.get_data(as_text=True)).split())
    assert "Liste d'attente — 2e" in html and "Quitter la liste d'attente" in html
    assert "Liste d'attente — 2e pour Léa" in html  # (the live region says it)
    assert "Liste d'attente ouverte jusqu'au" in html
    assert state(children, "Léa", activity, day) is BookingState.WAITING
    # leaving it: its confirmation says until when the list is open, as the cell does
    leave = client.get(
        f"/famille/{family.id}/planning/confirmer",
        query_string=cell_form(child, activity, day, "withdraw"),
        headers={"HX-Request": "true"},
    )
    said = unescape(leave.get_data(as_text=True))
    assert "Liste d'attente ouverte jusqu'au" in said and "Modifiable" not in said
    assert ranks(children, activity, day) == {"Jade": 1, "Léa": 2}
    # the line is no booking: the day's counter still counts Hugo alone, the request waits in its history
    assert booked(activity, day) == 1
    line_row = db.session.scalars(
        sa.select(RequestLine)
        .join(RequestLine.request)
        .where(RequestLine.day == day, RequestLine.request.has(child_id=child.id))
    ).one()
    assert line_row.state is LineState.WAITING and line_row.decided_at is None
    # the same click again: the day is already in line, said calmly, nothing doubled
    again = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "join"),
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 200
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WaitingEntry)) == 2


def test_without_the_option_a_full_day_is_only_complet(client, auth, line):
    activity, day, children = line
    activity.waiting_list = False
    db.session.commit()
    auth.login("parent@example.fr")
    text = cell_text(client, children, "Léa", activity, day)
    assert "Complet" in text and "liste d'attente" not in text
    with pytest.raises(bookings.BookingError, match="Complet"):
        join(children, "Léa", activity, day)


def test_a_place_freed_is_offered_at_once_to_the_first_in_line_and_held(client, auth, line):
    activity, day, children = line
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    now = now_utc()
    absent(children, "Hugo", activity, day, now)
    assert state(children, "Jade", activity, day) is BookingState.OFFERED
    entry = entry_of(children, "Jade", activity, day)
    assert entry.offered_at == now and entry.offer_expires_at == now + timedelta(hours=2)
    assert booked(activity, day) == 1  # the place freed is held for Jade: nobody else can take it
    assert ranks(children, activity, day) == {"Léa": 1}
    assert mails_to("waiting_offer") == ["bernard@example.fr"]
    history = db.session.scalars(
        sa.select(RequestEvent.summary).where(
            RequestEvent.request_id == entry.request_id, RequestEvent.kind == EventKind.WAITING_LIST
        )
    ).all()
    assert any("Une place s'est libérée" in summary and "à confirmer avant" in summary for summary in history)
    # Noé, not in line, cannot take the place held
    auth.login("petit@example.fr")
    text = cell_text(client, children, "Noé", activity, day)
    assert "Complet" in text and "Réserver<" not in text
    # the mail says until when
    message = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "waiting_offer")
    ).one()
    assert message.context["until"] and message.context["manual"] is False
    family, _child = children["Jade"]
    _family, jade = children["Jade"]
    assert message.context["planning_link"].endswith(
        f"/famille/{family.id}/planning?jour={day.isoformat()}#cell-{jade.id}-{activity.id}-{day.isoformat()}"
    )


def test_an_offer_asked_again_is_unchanged_when_a_child_is_moved_ahead_in_its_line(client, auth, line):
    """An offer does not show a rank: a child put at the head of the line behind it changes nothing
    the offered cell shows (204 to its live refresh, nothing announced again)."""
    activity, day, children = line
    for name in ("Jade", "Léa", "Noé"):
        join(children, name, activity, day)
    absent(children, "Hugo", activity, day)
    assert state(children, "Jade", activity, day) is BookingState.OFFERED
    family, child = children["Jade"]
    auth.login("bernard@example.fr")
    page = client.get(f"/famille/{family.id}/planning", query_string={"vue": "agenda", "date": day})
    shown = re.search(rf'id="cell-{child.id}-{activity.id}-{day}" data-vu="([^"]+)"', page.text).group(1)
    noe = entry_of(children, "Noé", activity, day)
    bookings.with_retries(lambda: bookings.promote(noe.id, make_user(email="agent@example.fr"), now_utc()))
    assert ranks(children, activity, day) == {"Noé": 1, "Léa": 2}
    again = client.get(
        f"/famille/{family.id}/planning/cellule",
        query_string=cell_form(child, activity, day) | {"vu": shown},
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 204


def test_the_family_confirms_the_place_offered_and_the_day_is_reserved(client, auth, line):
    activity, day, children = line
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    absent(children, "Hugo", activity, day)
    # Léa's parent is offered the place after Jade's family gives it up
    family, child = children["Jade"]
    bookings.with_retries(lambda: bookings.decline_offer(child, activity, day, None, now_utc()))
    assert state(children, "Jade", activity, day) is None
    assert entry_of(children, "Jade", activity, day).end is WaitingEnd.DECLINED
    assert state(children, "Léa", activity, day) is BookingState.OFFERED
    auth.login("parent@example.fr")
    text = cell_text(client, children, "Léa", activity, day)
    assert "Une place s'est libérée — à confirmer avant" in text
    assert "Confirmer la place" in text and "Refuser la place" in text
    family, child = children["Léa"]
    confirmation = client.get(
        f"/famille/{family.id}/planning/confirmer",
        query_string=cell_form(child, activity, day, "confirm"),
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "Confirmer la place proposée" in confirmation
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "confirm"),
        headers={"HX-Request": "true"},
    )
    assert "Réservé" in unescape(response.get_data(as_text=True))
    assert state(children, "Léa", activity, day) is BookingState.RESERVED
    assert booked(activity, day) == 1
    assert entry_of(children, "Léa", activity, day).end is WaitingEnd.CONFIRMED
    line_state = db.session.scalar(
        sa.select(RequestLine.state).where(
            RequestLine.request_id == entry_of(children, "Léa", activity, day).request_id
        )
    )
    assert line_state is LineState.ACCEPTED
    # a second click on Confirmer (two tabs): the current state, never an error page
    again = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "confirm"),
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 200 and "Réservé" in unescape(again.get_data(as_text=True))


def test_confirming_at_the_offers_end_is_refused_in_french_to_the_second(line):
    activity, day, children = line
    join(children, "Jade", activity, day)
    now = now_utc()
    absent(children, "Hugo", activity, day, now)
    until = entry_of(children, "Jade", activity, day).offer_expires_at
    child = children["Jade"][1]
    with pytest.raises(bookings.BookingError, match="Le délai pour confirmer cette place est dépassé"):
        bookings.confirm_offer(child, activity, day, None, until)
    db.session.rollback()
    bookings.with_retries(
        lambda: bookings.confirm_offer(child, activity, day, None, until - timedelta(seconds=1))
    )
    assert state(children, "Jade", activity, day) is BookingState.RESERVED


def test_an_offer_not_confirmed_in_time_passes_to_the_next_in_line_once(line):
    activity, day, children = line
    for name in ("Jade", "Léa", "Noé"):
        join(children, name, activity, day)
    absent(children, "Hugo", activity, day)
    until = entry_of(children, "Jade", activity, day).offer_expires_at
    assert bookings.tend_lines(until - timedelta(seconds=1))["expired"] == 0
    assert bookings.tend_lines(until) == {"expired": 1, "closed": 0, "offered": 0}
    assert state(children, "Jade", activity, day) is BookingState.REFUSED
    assert entry_of(children, "Jade", activity, day).end is WaitingEnd.EXPIRED
    jade_line = db.session.scalars(
        sa.select(RequestLine).where(
            RequestLine.request_id == entry_of(children, "Jade", activity, day).request_id
        )
    ).one()
    assert (jade_line.state, jade_line.reason) == (LineState.REFUSED, OFFER_LAPSED)
    assert state(children, "Léa", activity, day) is BookingState.OFFERED
    assert ranks(children, activity, day) == {"Noé": 1}
    assert booked(activity, day) == 1
    assert mails_to("waiting_ended") == ["bernard@example.fr"]
    assert mails_to("waiting_offer") == ["bernard@example.fr", "parent@example.fr"]
    # run again: nothing passes twice
    assert bookings.tend_lines(until + timedelta(seconds=30)) == {"expired": 0, "closed": 0, "offered": 0}
    assert mails_to("waiting_offer") == ["bernard@example.fr", "parent@example.fr"]


def test_an_offer_never_lasts_past_the_booking_deadline_and_the_line_closes_at_it(line):
    activity, day, children = line
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    deadline = rules.booking_deadline(activity, day)
    absent(children, "Hugo", activity, day, deadline - timedelta(minutes=30))
    assert entry_of(children, "Jade", activity, day).offer_expires_at == deadline
    assert bookings.tend_lines(deadline) == {"expired": 1, "closed": 1, "offered": 0}
    # past the deadline nobody is offered the place: Léa's day is closed, refused as complete
    assert state(children, "Jade", activity, day) is BookingState.REFUSED
    assert state(children, "Léa", activity, day) is BookingState.REFUSED
    assert entry_of(children, "Léa", activity, day).end is WaitingEnd.CLOSED
    lea_line = db.session.scalars(
        sa.select(RequestLine).where(
            RequestLine.request_id == entry_of(children, "Léa", activity, day).request_id
        )
    ).one()
    assert lea_line.reason == LIST_CLOSED
    assert booked(activity, day) == 0
    assert sorted(mails_to("waiting_ended")) == ["bernard@example.fr", "parent@example.fr"]


def test_the_rank_shown_is_the_rank_in_the_database_after_joins_withdrawals_and_promotions(
    client, auth, line
):
    activity, day, children = line
    agent = make_user(email="agent@example.fr")
    for name in ("Jade", "Léa", "Noé"):
        join(children, name, activity, day)
    assert ranks(children, activity, day) == {"Jade": 1, "Léa": 2, "Noé": 3}
    names = {child.id: name for name, (_f, child) in children.items()}
    assert [names[i] for i in db_order(activity, day)] == ["Jade", "Léa", "Noé"]
    # Jade's family leaves the list from the cell: the others move up
    family, child = children["Jade"]
    auth.login("bernard@example.fr")
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "withdraw"),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "Quitter la liste d'attente" not in unescape(
        response.get_data(as_text=True)
    )
    assert "Liste d'attente quittée pour Jade" in unescape(response.get_data(as_text=True))
    assert entry_of(children, "Jade", activity, day).end is WaitingEnd.WITHDRAWN
    assert ranks(children, activity, day) == {"Léa": 1, "Noé": 2}
    # an agent moves Noé to the head
    noe = entry_of(children, "Noé", activity, day)
    bookings.with_retries(lambda: bookings.promote(noe.id, agent, now_utc()))
    assert ranks(children, activity, day) == {"Noé": 1, "Léa": 2}
    assert [names[i] for i in db_order(activity, day)] == ["Noé", "Léa"]
    auth.logout()
    auth.login("parent@example.fr")
    assert "Liste d'attente — 2e" in cell_text(client, children, "Léa", activity, day)
    auth.logout()
    auth.login("petit@example.fr")
    assert "Liste d'attente — 1er" in cell_text(client, children, "Noé", activity, day)
    # the planning's cell carries what it shows (portail.js asks again with it), and where to ask
    family, child = children["Noé"]
    planning = client.get(f"/famille/{family.id}/planning", query_string={"vue": "agenda", "date": day})
    assert f'data-cellule="/famille/{family.id}/planning/cellule"' in planning.text
    assert re.search(
        rf'<div class="cell state-waiting" id="cell-{child.id}-{activity.id}-{day}" data-vu="waiting.1.False">',
        planning.text,
    ), "the cell in line says what it shows"
    # the cell asked again says nothing while it is the same (204), and the new rank when it changed
    query = cell_form(child, activity, day) | {"vu": "waiting.1.False"}
    assert client.get(f"/famille/{family.id}/planning/cellule", query_string=query).status_code == 204
    query["vu"] = "waiting.2.False"
    changed = client.get(
        f"/famille/{family.id}/planning/cellule", query_string=query, headers={"HX-Request": "true"}
    )
    assert changed.status_code == 200 and "Liste d'attente — 1er" in unescape(changed.get_data(as_text=True))
    # the agent removes Léa with a reason: the family reads it, the history keeps it
    lea = entry_of(children, "Léa", activity, day)
    with pytest.raises(bookings.DecisionError, match="motif"):
        bookings.remove_from_line(lea.id, agent, "  ", now_utc())
    db.session.rollback()
    bookings.with_retries(
        lambda: bookings.remove_from_line(lea.id, agent, "Inscription en doublon", now_utc())
    )
    assert state(children, "Léa", activity, day) is BookingState.REFUSED
    event = db.session.scalars(
        sa.select(RequestEvent).where(
            RequestEvent.request_id == lea.request_id, RequestEvent.kind == EventKind.DECISION
        )
    ).one()
    assert event.reason == "Inscription en doublon" and event.by_town
    assert ranks(children, activity, day) == {"Noé": 1}


def test_a_line_has_its_maximum_length(client, auth, line):
    activity, day, children = line
    activity.waiting_list_max = 1
    db.session.commit()
    join(children, "Jade", activity, day)
    auth.login("parent@example.fr")
    text = cell_text(client, children, "Léa", activity, day)
    assert "Complet (liste d'attente pleine)" in text and "S'inscrire" not in text
    with pytest.raises(bookings.BookingError, match="liste d'attente pleine"):
        join(children, "Léa", activity, day)


def test_the_period_form_puts_the_full_days_on_the_waiting_list_in_the_same_request(client, auth, line):
    activity, day, children = line
    family, child = children["Léa"]
    auth.login("parent@example.fr")
    form = period_form(child, activity, day, day + timedelta(days=7), weekdays=("4",))
    url = f"/famille/{family.id}/planning/periode"
    preview = unescape(
        client.post(url, data=form | {"apercu": "1"}, headers={"HX-Request": "true"}).get_data(as_text=True)
    )
    assert "liste d'attente possible" in preview  # (not asked: the full day is excluded, and said how)
    preview = client.post(url, data=form | {"apercu": "1", "attente": "1"}, headers={"HX-Request": "true"})
    assert "Liste d'attente : 1 jour complet" in unescape(preview.get_data(as_text=True))
    response = client.post(url, data=form | {"attente": "1"})
    assert response.status_code == 302
    assert state(children, "Léa", activity, day) is BookingState.WAITING
    assert state(children, "Léa", activity, day + timedelta(days=7)) is BookingState.RESERVED
    lines = db.session.scalars(
        sa.select(RequestLine).order_by(RequestLine.day).where(RequestLine.request.has(child_id=child.id))
    ).all()
    assert len({line.request_id for line in lines}) == 1
    assert [line.state for line in lines] == [LineState.WAITING, LineState.ACCEPTED]
    receipt = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.template == "booking_receipt")
    ).all()[-1]
    assert receipt.context["waiting_days"] == [day.isoformat()]


def test_an_activity_validated_by_hand_hands_the_place_freed_to_the_agents_queue(line):
    activity, day, children = line
    activity.validation_mode = ValidationMode.MANUAL
    db.session.commit()
    agent = make_user(email="agent@example.fr")
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    family, child = children["Hugo"]
    request = bookings.with_retries(
        lambda: bookings.submit(family.id, None, child, activity, RequestKind.ABSENCE, [day], now_utc(), ZONE)
    )
    absence_line = db.session.scalar(
        sa.select(RequestLine.id).where(RequestLine.request_id == request.request_id)
    )
    bookings.with_retries(lambda: bookings.decide([absence_line], True, agent, now_utc()))
    assert state(children, "Jade", activity, day) is BookingState.OFFERED
    jade = entry_of(children, "Jade", activity, day)
    assert jade.offer_expires_at is None  # (the agent decides: no hold time runs)
    jade_line = db.session.scalars(
        sa.select(RequestLine).where(RequestLine.request_id == jade.request_id)
    ).one()
    assert jade_line.state is LineState.PENDING  # in the agent's queue
    assert booked(activity, day) == 1
    # the agent refuses it: the place goes to Léa, in the queue in turn
    bookings.with_retries(lambda: bookings.decide([jade_line.id], False, agent, now_utc(), reason="Complet"))
    assert state(children, "Jade", activity, day) is BookingState.REFUSED
    assert state(children, "Léa", activity, day) is BookingState.OFFERED
    lea = entry_of(children, "Léa", activity, day)
    lea_line = db.session.scalars(
        sa.select(RequestLine).where(RequestLine.request_id == lea.request_id)
    ).one()
    bookings.with_retries(lambda: bookings.decide([lea_line.id], True, agent, now_utc()))
    assert state(children, "Léa", activity, day) is BookingState.RESERVED
    assert booked(activity, day) == 1  # the place held is the place taken: not counted twice
    assert entry_of(children, "Léa", activity, day).end is WaitingEnd.CONFIRMED
    # the parent of a family whose place waits for the agent cannot confirm it themselves
    with pytest.raises(bookings.BookingError):
        bookings.confirm_offer(children["Jade"][1], activity, day, None, now_utc())


def test_another_familys_cell_or_offer_is_a_404(client, auth, line):
    activity, day, children = line
    join(children, "Jade", activity, day)
    absent(children, "Hugo", activity, day)
    auth.login("parent@example.fr")
    family = children["Léa"][0]
    jade = children["Jade"][1]
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(jade, activity, day, "confirm"),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 404
    assert state(children, "Jade", activity, day) is BookingState.OFFERED


def test_a_service_cancelled_ends_the_days_lines_and_gives_back_the_place_held(line):
    from portail.services import cancellations

    activity, day, children = line
    agent = make_user(email="agent@example.fr")
    join(children, "Jade", activity, day)
    join(children, "Léa", activity, day)
    absent(children, "Hugo", activity, day)
    assert state(children, "Jade", activity, day) is BookingState.OFFERED
    bookings.with_retries(lambda: cancellations.cancel(activity, day, day, "Grève", agent, now_utc(), ZONE))
    for name in ("Jade", "Léa"):
        assert state(children, name, activity, day) is BookingState.CANCELLED
        assert entry_of(children, name, activity, day).end is WaitingEnd.CLOSED
    assert bookings.tend_lines(now_utc())["offered"] == 0


def test_the_calendar_feed_marks_the_days_in_line_as_tentative(line):
    activity, day, children = line
    join(children, "Léa", activity, day)
    assert calendar_feeds.SHOWN[BookingState.WAITING] == ("TENTATIVE", "Liste d'attente")
    assert calendar_feeds.SHOWN[BookingState.OFFERED][0] == "TENTATIVE"


def test_a_capacity_removed_offers_the_whole_line_and_a_child_first_is_not_promoted_again(line):
    activity, day, children = line
    agent = make_user(email="agent@example.fr")
    for name in ("Jade", "Léa"):
        join(children, name, activity, day)
    jade = entry_of(children, "Jade", activity, day)
    with pytest.raises(bookings.DecisionError, match="déjà en tête"):
        bookings.promote(jade.id, agent, now_utc())
    db.session.rollback()
    activity.capacity = None
    db.session.commit()
    assert bookings.offer_open_places(now_utc(), activity.id) == 2
    assert (
        state(children, "Jade", activity, day)
        is state(children, "Léa", activity, day)
        is BookingState.OFFERED
    )


def test_the_period_preview_shares_the_places_left_between_the_children_it_asks_for(client, auth, line):
    from portail.models import Child, Enrolment

    activity, day, children = line
    activity.capacity = 2  # (one place left: Hugo has the other)
    family, lea = children["Léa"]
    tom = Child(first_name="Tom", last_name="DUPONT", birth_date=lea.birth_date, family_id=family.id)
    db.session.add(tom)
    db.session.flush()
    db.session.add(Enrolment.whole(tom, activity))
    db.session.commit()
    auth.login("parent@example.fr")
    form = period_form(lea, activity, day, day, weekdays=("4",)) | {"enfant": [str(lea.id), str(tom.id)]}
    url = f"/famille/{family.id}/planning/periode"
    preview = unescape(
        client.post(
            url, data=form | {"apercu": "1", "attente": "1"}, headers={"HX-Request": "true"}
        ).get_data(as_text=True)
    )
    assert (
        preview.count("1 jour de réservation demandé") == 1 and "Liste d'attente : 1 jour complet" in preview
    )
    assert client.post(url, data=form | {"attente": "1"}).status_code == 302
    states = sorted(
        str(s)
        for s in db.session.scalars(
            sa.select(Booking.state).where(Booking.child_id.in_([lea.id, tom.id]), Booking.day == day)
        )
    )
    assert states == sorted([str(BookingState.RESERVED), str(BookingState.WAITING)])


def test_joining_a_day_a_place_freed_on_meanwhile_books_nothing_without_asking(client, auth, line):
    activity, day, children = line
    absent(children, "Hugo", activity, day)  # (a place frees while Léa's parent reads the confirmation)
    auth.login("parent@example.fr")
    family, child = children["Léa"]
    response = client.post(
        f"/famille/{family.id}/planning/cellule",
        data=cell_form(child, activity, day, "join"),
        headers={"HX-Request": "true"},
    )
    html = unescape(response.get_data(as_text=True))
    assert "Ce jour a changé entre-temps" in html and "Réserver" in html
    assert state(children, "Léa", activity, day) is None


def test_the_service_joins_only_when_asked_to_join_a_line(line):
    """`join_only`: a day that can be reserved again is not reserved (nor joined) without asking."""
    activity, day, children = line
    absent(children, "Hugo", activity, day)
    family, child = children["Léa"]
    with pytest.raises(bookings.BookingError, match="Ce jour a changé entre-temps"):
        bookings.submit(
            family.id,
            None,
            child,
            activity,
            RequestKind.RESERVATION,
            [day],
            now_utc(),
            ZONE,
            waiting=True,
            join_only=True,
        )
    db.session.rollback()
    assert state(children, "Léa", activity, day) is None and booked(activity, day) == 0


def test_a_request_with_days_in_line_and_days_decided_says_both():
    from portail.models import RequestLine as Line
    from portail.services.planning import request_state

    lines = [Line(state=LineState.ACCEPTED), Line(state=LineState.WAITING)]
    assert request_state(lines) == "Partiellement acceptée · liste d'attente"
    assert request_state([Line(state=LineState.WAITING)]) == "Liste d'attente"
