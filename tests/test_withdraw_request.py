"""Withdrawing a whole request from Mes demandes or its history (issue 16, item 5): one confirmation
lists the days that will be withdrawn and those whose deadline has passed; confirming gives every
open day back what it was, withdraws its lines and writes one history event, on SQLite and PostgreSQL.
"""

import html
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from portail import bookings
from portail.bookings.rules import RESERVE
from portail.bookings.transitions import PENDING
from portail.extensions import db
from portail.formatting import PARIS, french_date
from portail.models import (
    Booking,
    BookingState,
    EventKind,
    LineState,
    Request,
    RequestEvent,
    RequestKind,
    RequestLine,
    Role,
    utcnow,
)
from portail.services import planning
from tests.factories import (
    book,
    canteen,
    enrol,
    make_activity,
    make_family,
    make_user,
    next_weekday,
    pending_request,
    submit_request,
    subscribe,
)
from tests.support import count_queries, fire, tabs

pytestmark = pytest.mark.both_dbs

LISTING = "/mon-espace/demandes"
NOTHING_LEFT = "Il n'y a plus de jour à retirer dans cette demande."


def paris(*moment) -> datetime:
    """An instant given in Paris time, to the second, in UTC."""
    return datetime(*moment, tzinfo=PARIS).astimezone(UTC)


def weekdays_from(first: date, count: int) -> list[date]:
    """`count` days from Monday to Thursday, from `first` on."""
    days, day = [], first
    while len(days) < count:
        if day.isoweekday() <= 4:
            days.append(day)
        day += timedelta(days=1)
    return days


def shown(response) -> str:
    """A page's HTML with its entities read ("n'y", not "n&#39;y")."""
    return html.unescape(response.get_data(as_text=True))


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


@pytest.fixture
def family_setup(app, auth):
    """A parent logged in, subscribed to a family whose child is enrolled in a manually decided
    activity open every weekday (deadlines two working days before at 10:00)."""
    family = make_family(children=(("Léa", date(2016, 3, 14)),))
    parent = make_user()
    subscribe(parent, family)
    activity = make_activity()
    child = family.children[0]
    enrol(child, activity)
    db.session.commit()
    auth.login("parent@example.fr")
    return family, child, activity, parent


def asked(family_setup, days, kind=RequestKind.RESERVATION) -> int:
    """The id of the parent's request for these days, made now and committed."""
    family, child, activity, parent = family_setup
    request = submit_request(family, parent, child, activity, kind, days, now=utcnow())
    db.session.commit()
    return request.id


def states(child, activity) -> dict[date, tuple[BookingState, str | None]]:
    rows = db.session.execute(
        sa.select(Booking.day, Booking.state, Booking.reason).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id
        )
    )
    return {day: (state, reason) for day, state, reason in rows}


def withdrawals(request_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(RequestEvent.summary).where(
                RequestEvent.request_id == request_id, RequestEvent.kind == EventKind.WITHDRAWAL
            )
        )
    )


def line_states(request_id: int) -> dict[date, LineState]:
    rows = db.session.execute(
        sa.select(RequestLine.day, RequestLine.state).where(RequestLine.request_id == request_id)
    )
    return dict(rows.all())


def test_a_12_day_request_is_withdrawn_from_mes_demandes_in_one_confirmation(client, family_setup):
    family, child, activity, _parent = family_setup
    days = weekdays_from(next_weekday(1, 3), 12)
    # Two of the days had been refused before this new request: they go back to refused, with the reason.
    book(child, activity, days[:2], state=BookingState.REFUSED)
    for booking in db.session.scalars(sa.select(Booking)):
        booking.reason = "Complet"
    db.session.commit()
    request_id = asked(family_setup, days)
    confirmation = f"{LISTING}/{request_id}/retirer"

    listing = shown(client.get(LISTING))
    assert f'href="{confirmation}"' in listing and "Retirer la demande" in listing
    page = shown(client.get(confirmation))
    assert "12 jours seront retirés" in page and "ne peu" not in page
    for day in days:
        assert f"<li>{french_date(day, weekday=True)}</li>" in page  # "mardi 8 décembre 2026"
    assert "Confirmer le retrait" in page and f'href="{LISTING}">Annuler</a>' in page

    answer = client.post(confirmation)
    assert answer.status_code == 302 and answer.location.endswith(LISTING)
    landed = shown(client.get(answer.location))
    assert "Demande retirée : 12 jours libérés." in landed
    assert "Annulée" in landed and f'href="{confirmation}"' not in landed

    db.session.expire_all()
    assert states(child, activity) == dict.fromkeys(days[:2], (BookingState.REFUSED, "Complet"))
    assert set(line_states(request_id).values()) == {LineState.WITHDRAWN}
    short = ", ".join(day.strftime("%d/%m/%Y") for day in days)
    assert withdrawals(request_id) == [f"Demande retirée : 12 jours ({short})"]
    _shown, by_day = planning.cells([child], days[0], days[-1], utcnow(), "C")
    cells = [cell for day in days for cell in by_day[day]]
    assert len(cells) == 12 and not [cell for cell in cells if cell.state in PENDING]
    assert all(RESERVE in cell.verdict.actions for cell in cells)


def test_the_withdrawal_costs_the_same_statements_for_2_days_as_for_12(client, family_setup):
    first = next_weekday(1, 3)
    short, long = (
        asked(family_setup, weekdays_from(first, 2)),
        asked(family_setup, weekdays_from(first + timedelta(weeks=1), 12)),
    )
    costs = []
    for request_id in (short, long):
        with count_queries() as counter:
            assert client.post(f"{LISTING}/{request_id}/retirer").status_code == 302
        costs.append(counter["n"])
    assert costs[0] == costs[1]


def test_an_absence_request_withdrawn_leaves_its_days_reserved(client, family_setup):
    _family, child, activity, _parent = family_setup
    days = weekdays_from(next_weekday(1, 3), 3)
    book(child, activity, days)
    db.session.commit()
    request_id = asked(family_setup, days, RequestKind.ABSENCE)
    landed = shown(client.post(f"{LISTING}/{request_id}/retirer", follow_redirects=True))
    assert "Demande retirée : 3 jours de nouveau réservés." in landed
    db.session.expire_all()
    assert states(child, activity) == dict.fromkeys(days, (BookingState.RESERVED, None))


def test_from_its_history_the_request_is_withdrawn_and_the_history_says_so(client, family_setup):
    days = weekdays_from(next_weekday(1, 3), 2)
    request_id = asked(family_setup, days)
    history = shown(client.get(f"{LISTING}/{request_id}"))
    confirmation = f"{LISTING}/{request_id}/retirer?retour=historique"
    assert f'href="{confirmation}">Retirer la demande</a>' in history
    page = shown(client.get(confirmation))
    assert "2 jours seront retirés" in page and 'name="retour" value="historique"' in page
    assert f'href="{LISTING}/{request_id}">Annuler</a>' in page
    answer = client.post(f"{LISTING}/{request_id}/retirer", data={"retour": "historique"})
    assert answer.location.endswith(f"{LISTING}/{request_id}")
    landed = shown(client.get(answer.location))
    assert "Demande retirée : 2 jours libérés." in landed and "<strong>Annulée</strong>" in landed
    assert "Demande retirée : 2 jours (" in landed and "Retirer la demande" not in landed


def test_from_the_familys_planning_list_the_request_is_withdrawn_and_the_parent_lands_back_there(
    client, family_setup
):
    family = family_setup[0]
    days = weekdays_from(next_weekday(1, 3), 3)
    request_id = asked(family_setup, days)
    listing = f"/famille/{family.id}/demandes"
    confirmation = f"{LISTING}/{request_id}/retirer?retour=planning"
    assert f'href="{confirmation}">Retirer la demande' in shown(client.get(listing))
    page = shown(client.get(confirmation))
    assert f'href="{listing}">← Planning / Liste</a>' in page and 'name="retour" value="planning"' in page
    answer = client.post(f"{LISTING}/{request_id}/retirer", data={"retour": "planning"})
    assert answer.location.endswith(listing)
    landed = shown(client.get(answer.location))
    assert "Demande retirée : 3 jours libérés." in landed and "Annulée" in landed
    assert "Retirer la demande" not in landed


@pytest.mark.parametrize(
    ("moment", "past"),
    [
        # Thursday 3 December's deadline is Tuesday 1 December at 10:00, Paris time.
        ((2026, 12, 1, 9, 59, 59), 2),
        ((2026, 12, 1, 10, 0, 0), 3),
    ],
    ids=["a-second-before", "at-the-deadline"],
)
def test_days_past_their_deadline_stay_pending_and_are_listed_apart(client, auth, app, moment, past):
    activity = canteen()  # Mon, Tue, Thu, Fri; J-2 working days at 10:00
    db.session.add(activity)
    # Twelve school days from Monday 30 November to Friday 18 December 2026, asked on 1 October.
    days = [date(2026, 11, 30)] + [date(2026, 12, day) for day in (1, 3, 4, 7, 8, 10, 11, 14, 15, 17, 18)]
    request, child, _parent = pending_request(activity, days=tuple(days))
    confirmation = f"{LISTING}/{request.id}/retirer"
    with time_machine.travel(paris(*moment), tick=False):
        auth.login("parent@example.fr")
        page = shown(client.get(confirmation))
        open_count = 12 - past
        assert f"{open_count} jours seront retirés" in page
        assert f"{past} jours ne peuvent plus être retirés" in page
        assert "<li>lundi 30 novembre 2026 : Délai dépassé depuis le jeudi 26 novembre à 10:00</li>" in page
        thursday = "<li>jeudi 3 décembre 2026 : Délai dépassé depuis le mardi 1er décembre à 10:00</li>"
        assert (thursday in page) is (past == 3)
        assert ("<li>jeudi 3 décembre 2026</li>" in page) is (past == 2)
        landed = shown(client.post(confirmation, follow_redirects=True))
        assert f"Demande retirée : {open_count} jours libérés." in landed
        assert f"{past} jours ne pouvaient plus être retirés" in landed
        assert f'href="{confirmation}"' not in landed  # nothing left to withdraw: no link
    db.session.expire_all()
    lines = line_states(request.id)
    assert [day for day in days if lines[day] is LineState.PENDING] == days[:past]
    assert [day for day in days if lines[day] is LineState.WITHDRAWN] == days[past:]
    assert set(states(child, activity)) == set(days[:past])
    assert len(withdrawals(request.id)) == 1


def test_another_familys_request_gives_404_and_is_left_as_it_is(client, family_setup):
    activity = family_setup[2]
    other, _tom, _sophie = pending_request(
        activity, name="Tom", email="sophie@example.fr", days=(next_weekday(2, 3),)
    )
    confirmation = f"{LISTING}/{other.id}/retirer"
    assert client.get(confirmation).status_code == 404
    assert client.post(confirmation).status_code == 404
    assert client.post(f"{LISTING}/999999/retirer").status_code == 404
    db.session.expire_all()
    assert set(line_states(other.id).values()) == {LineState.PENDING}
    assert withdrawals(other.id) == []


def test_a_confirmation_sent_twice_withdraws_once_and_the_second_is_told_calmly(client, family_setup):
    request_id = asked(family_setup, weekdays_from(next_weekday(1, 3), 4))
    confirmation = f"{LISTING}/{request_id}/retirer"
    first = shown(client.post(confirmation, follow_redirects=True))
    second = client.post(confirmation)
    assert second.status_code == 302
    again = shown(client.get(second.location))
    assert "Demande retirée : 4 jours libérés." in first and NOTHING_LEFT in again
    assert "Information" in again and "Erreur" not in again
    db.session.expire_all()
    assert len(withdrawals(request_id)) == 1


def test_a_confirmation_sent_from_two_tabs_at_once_withdraws_once(app, client, family_setup):
    family, child, activity, _parent = family_setup
    days = weekdays_from(next_weekday(1, 3), 12)
    request_id = asked(family_setup, days)
    clients = tabs(app, client)
    answers = fire(clients, f"{LISTING}/{request_id}/retirer")
    landed = [shown(tab.get(location)) for tab, (_, _, location) in zip(clients, answers, strict=True)]
    assert sum("Demande retirée : 12 jours libérés." in page for page in landed) == 1
    assert sum(NOTHING_LEFT in page for page in landed) == 1
    assert count(Booking) == 0 and len(withdrawals(request_id)) == 1
    assert set(line_states(request_id).values()) == {LineState.WITHDRAWN}


def test_a_request_with_nothing_left_to_withdraw_offers_no_button(client, family_setup):
    request_id = asked(family_setup, weekdays_from(next_weekday(1, 3), 2))
    client.post(f"{LISTING}/{request_id}/retirer")
    confirmation = f"{LISTING}/{request_id}/retirer"
    assert f'href="{confirmation}"' not in shown(client.get(LISTING))
    assert "Retirer la demande" not in shown(client.get(f"{LISTING}/{request_id}"))
    page = client.get(confirmation)
    assert page.status_code == 200
    assert NOTHING_LEFT in shown(page) and "Confirmer le retrait" not in shown(page)
    answer = client.post(confirmation)
    assert answer.status_code == 302 and NOTHING_LEFT in shown(client.get(answer.location))
    db.session.expire_all()
    assert len(withdrawals(request_id)) == 1


def test_a_decided_request_offers_no_withdrawal(client, family_setup):
    request_id = asked(family_setup, weekdays_from(next_weekday(1, 3), 2))
    agent = make_user(email="agent@example.fr", role=Role.AGENT)
    lines = db.session.get(Request, request_id).lines
    bookings.decide([line.id for line in lines], True, agent, utcnow())
    db.session.commit()
    assert f"{LISTING}/{request_id}/retirer" not in shown(client.get(LISTING))
    assert NOTHING_LEFT in shown(client.get(f"{LISTING}/{request_id}/retirer"))


def test_the_service_withdraws_the_open_days_in_one_event_and_then_finds_nothing(family_setup):
    family, child, activity, parent = family_setup
    days = weekdays_from(next_weekday(1, 3), 3)
    request = submit_request(family, parent, child, activity, RequestKind.RESERVATION, days, now=utcnow())
    withdrawal = bookings.withdraw_request(request, parent, utcnow(), "C")
    assert list(withdrawal.open) == days and withdrawal.kept == {}
    db.session.commit()
    with pytest.raises(bookings.BookingError, match="plus de jour à retirer"):
        bookings.withdraw_request(db.session.get(Request, request.id), parent, utcnow(), "C")
    assert count(RequestEvent, RequestEvent.kind == EventKind.WITHDRAWAL) == 1


def test_one_day_withdrawn_from_its_cell_is_counted_in_the_history_as_before(family_setup):
    family, child, activity, parent = family_setup
    day = next_weekday(2, 3)
    request = submit_request(family, parent, child, activity, RequestKind.RESERVATION, [day], now=utcnow())
    bookings.withdraw(child, activity, day, parent, utcnow(), "C")
    db.session.commit()
    assert withdrawals(request.id) == [f"Demande retirée : 1 jour ({day.strftime('%d/%m/%Y')})"]
    assert line_states(request.id) == {day: LineState.WITHDRAWN}
