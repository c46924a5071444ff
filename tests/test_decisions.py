"""An agent's decision goes through the booking rules: no deadline binds the agent, the enrolment, the
opening and the capacity do (a day closed or no longer covered since the request is refused, with why)."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portail import bookings
from portail.extensions import db
from portail.models import (
    ActivityDay,
    Booking,
    BookingState,
    ClosingDay,
    Enrolment,
    EventKind,
    LineState,
    RequestEvent,
    RequestKind,
    Role,
)
from portail.services.outbox import commit
from tests.factories import THURSDAY, canteen, make_user, pending_request

pytestmark = pytest.mark.both_dbs

FRIDAY = THURSDAY + timedelta(days=1)
NOW = datetime(2026, 10, 1, 8, tzinfo=UTC)
AFTER_THE_DEADLINE = datetime(2027, 3, 3, 12, tzinfo=UTC)  # the day before Thursday: too late for a parent


@pytest.fixture
def agent(app):
    return make_user(email="agent@example.fr", role=Role.AGENT, first_name="Agnès")


def pending(kind=RequestKind.RESERVATION, days=(THURSDAY,), **activity):
    """A family's request waiting for the town, on a manual canteen: (request, child, activity)."""
    activity = canteen(**activity)
    db.session.add(activity)
    request, child, _ = pending_request(activity, kind, days=days)
    return request, child, activity


def booking(child, activity, day=THURSDAY) -> Booking:
    return db.session.scalar(
        sa.select(Booking).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
        )
    )


def decisions(request) -> list[tuple[str, str | None]]:
    return [
        (event.summary, event.reason)
        for event in db.session.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == request.id, RequestEvent.kind == EventKind.DECISION)
            .order_by(RequestEvent.id)
        )
    ]


def test_an_agent_accepts_after_the_parents_deadline(app, agent):
    request, child, activity = pending()
    assert bookings.decide([request.lines[0].id], True, agent, AFTER_THE_DEADLINE) == {
        "accepted": 1,
        "refused": 0,
    }
    commit()
    assert booking(child, activity).state is BookingState.RESERVED
    assert db.session.scalar(sa.select(ActivityDay.booked).where(ActivityDay.day == THURSDAY)) == 1


def test_accepting_a_day_closed_since_the_request_refuses_it_with_the_closure(app, agent):
    request, child, activity = pending()
    db.session.add(ClosingDay(activity_id=activity.id, day=THURSDAY, reason="Grève"))
    commit()
    assert bookings.decide([request.lines[0].id], True, agent, NOW) == {"accepted": 0, "refused": 1}
    commit()
    line, day = request.lines[0], booking(child, activity)
    assert (line.state, line.reason) == (LineState.REFUSED, "Fermé — Grève")
    assert (day.state, day.reason, day.previous_state) == (BookingState.REFUSED, "Fermé — Grève", None)
    assert decisions(request) == [("Refusée : 04/03/2027", "Fermé — Grève")]
    assert db.session.scalar(sa.select(ActivityDay.booked).where(ActivityDay.day == THURSDAY)) in (None, 0)


def test_accepting_a_day_no_longer_enrolled_refuses_it(app, agent):
    request, child, activity = pending()
    db.session.execute(sa.delete(Enrolment).where(Enrolment.child_id == child.id))
    commit()
    bookings.decide([request.lines[0].id], True, agent, NOW)
    commit()
    assert request.lines[0].reason == "L'enfant n'est pas inscrit à cette activité ce jour-là"
    assert booking(child, activity).state is BookingState.REFUSED


def test_a_request_partly_closed_is_accepted_where_open_acceptance_first_in_the_history(app, agent):
    request, child, activity = pending(days=(THURSDAY, FRIDAY))
    db.session.add(ClosingDay(activity_id=None, day=THURSDAY, reason="Journée pédagogique"))
    commit()
    ids = [line.id for line in request.lines]
    assert bookings.decide(ids, True, agent, NOW) == {"accepted": 1, "refused": 1}
    commit()
    assert booking(child, activity, THURSDAY).state is BookingState.REFUSED
    assert booking(child, activity, FRIDAY).state is BookingState.RESERVED
    assert decisions(request) == [
        ("Acceptée : 05/03/2027", None),
        ("Refusée : 04/03/2027", "Fermé — Journée pédagogique"),
    ]


def test_an_absence_is_granted_even_on_a_day_closed_since(app, agent):
    request, child, activity = pending(RequestKind.ABSENCE)
    db.session.add(ClosingDay(activity_id=activity.id, day=THURSDAY, reason="Grève"))
    commit()
    assert bookings.decide([request.lines[0].id], True, agent, NOW) == {"accepted": 1, "refused": 0}
    commit()
    assert booking(child, activity).state is BookingState.ABSENT


def test_the_agent_still_refuses_a_closed_day_with_the_agents_reason(app, agent):
    request, child, activity = pending()
    db.session.add(ClosingDay(activity_id=activity.id, day=THURSDAY, reason="Grève"))
    commit()
    bookings.decide([request.lines[0].id], False, agent, NOW, reason="Hors délai")
    commit()
    assert request.lines[0].reason == "Hors délai"
    assert (booking(child, activity).state, booking(child, activity).reason) == (
        BookingState.REFUSED,
        "Hors délai",
    )
