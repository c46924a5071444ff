"""Reservation and absence requests: one Request with a line per day, decided at once when automatic.

The daily capacity is guarded by a conditional UPDATE on ActivityDay (`booked < capacity`), so it
holds whatever the concurrency, on SQLite and PostgreSQL.
"""

from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import short_date
from portail.models import (
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    Child,
    ClosingDay,
    Enrolment,
    LineState,
    Request,
    RequestKind,
    RequestLine,
    User,
    ValidationMode,
)
from portail.services import booking_rules
from portail.services.booking_rules import ABSENCE, RESERVE, Verdict

# A booking request is one unit of work, retried when a concurrent identical request won the race.
from portail.services.transactions import claim
from portail.services.transactions import run as with_retries  # noqa: F401


class BookingError(ValueError):
    """Nothing can be requested; the message is French."""


class AlreadyRequested(BookingError):
    """Nothing left to request: the days are already asked (or granted) as this request asks, e.g. by
    the same request sent twice at once; the answer is the current state, calmly."""


# The states in which a day already is what a reservation or an absence request asks for.
ALREADY = {
    RequestKind.RESERVATION: frozenset({BookingState.RESERVATION_REQUESTED, BookingState.RESERVED}),
    RequestKind.ABSENCE: frozenset({BookingState.ABSENCE_REQUESTED, BookingState.ABSENT}),
}


# The rules' queries for one child and activity, built once (building a statement costs more than
# running it): Core statements with bound parameters, run on the session's connection.
_enrolment, _booking, _counter, _closing = (
    model.__table__ for model in (Enrolment, Booking, ActivityDay, ClosingDay)
)
_PERIOD = (sa.bindparam("start"), sa.bindparam("end"))
ENROLMENTS = sa.select(_enrolment.c.start_date, _enrolment.c.end_date, _enrolment.c.weekdays).where(
    _enrolment.c.child_id == sa.bindparam("child"), _enrolment.c.activity_id == sa.bindparam("activity")
)
STATES = sa.select(_booking.c.day, _booking.c.state).where(
    _booking.c.child_id == sa.bindparam("child"),
    _booking.c.activity_id == sa.bindparam("activity"),
    _booking.c.day.between(*_PERIOD),
)
COUNTERS = sa.select(_counter.c.day, _counter.c.booked).where(
    _counter.c.activity_id == sa.bindparam("activity"), _counter.c.day.between(*_PERIOD)
)
CLOSINGS = sa.select(_closing.c.day, _closing.c.reason).where(
    sa.or_(_closing.c.activity_id == sa.bindparam("activity"), _closing.c.activity_id.is_(None)),
    _closing.c.day.between(*_PERIOD),
)
INSERT_REQUEST = Request.__table__.insert().returning(Request.__table__.c.id)
INSERT_LINES = RequestLine.__table__.insert()
INSERT_BOOKINGS = _booking.insert()
# An automatic decision on a booked day; a request waiting for the town (the day's state and reason
# kept, to give back on a withdrawal or a refusal). The parameters are not named like the columns,
# which an UPDATE reserves for its SET clause.
_SAME_DAY = (
    _booking.c.child_id == sa.bindparam("the_child"),
    _booking.c.activity_id == sa.bindparam("the_activity"),
    _booking.c.day == sa.bindparam("the_day"),
)
DECIDE_BOOKINGS = (
    _booking.update()
    .where(*_SAME_DAY)
    .values(state=sa.bindparam("new_state"), reason=sa.bindparam("new_reason"), previous_state=None)
)
ASK_BOOKINGS = (
    _booking.update()
    .where(*_SAME_DAY)
    .values(state=sa.bindparam("new_state"), previous_state=_booking.c.state)
)


def closing_days(activity: Activity, start: date, end: date) -> dict[date, str]:
    """Days entered by staff as closed for this activity (or for all), between two dates."""
    db.session.flush()
    return dict(
        db.session.connection().execute(CLOSINGS, {"activity": activity.id, "start": start, "end": end}).all()
    )


class Span(NamedTuple):
    """An enrolment's days: from, to, and its weekdays ("135"; None: every open day)."""

    start_date: date
    end_date: date
    weekdays: str | None


class Facts(NamedTuple):
    """What the rules read in the database about one child and activity over some days."""

    enrolments: list[Span]
    states: dict[date, BookingState]  # the days that have a booking
    booked: dict[date, int]  # the days' counters (only read for an activity with a capacity)
    closed: dict[date, str]  # the days closed by staff, with their reason


def read_facts(child: Child, activity: Activity, start: date, end: date) -> Facts:
    """The facts of a period (four queries, whatever its length)."""
    db.session.flush()  # Core statements do not autoflush
    connection = db.session.connection()
    params = {"child": child.id, "activity": activity.id, "start": start, "end": end}
    return Facts(
        [Span(*row) for row in connection.execute(ENROLMENTS, params)],
        dict(connection.execute(STATES, params).all()),
        dict(connection.execute(COUNTERS, params).all()) if activity.capacity is not None else {},
        dict(connection.execute(CLOSINGS, params).all()),
    )


def preview(
    child: Child, activity: Activity, kind: RequestKind, days: list[date], now: datetime, zone: str
) -> list[tuple[date, Verdict]]:
    """The verdict of each day for this kind of request (a constant number of queries)."""
    return _preview(child, activity, kind, days, now, zone)[0]


def _preview(
    child: Child,
    activity: Activity,
    kind: RequestKind,
    days: list[date],
    now: datetime,
    zone: str,
    facts: Facts | None = None,
) -> tuple[list[tuple[date, Verdict]], dict]:
    """The verdicts, and the current state of the days that have a booking (from `facts` when
    the caller has just read them in this transaction)."""
    if not days:
        return [], {}
    enrolments, states, booked, closed = facts or read_facts(child, activity, min(days), max(days))
    wanted = RESERVE if kind is RequestKind.RESERVATION else ABSENCE
    verdicts = []
    for day in days:
        verdict = booking_rules.evaluate(
            activity,
            day,
            now,
            is_enrolled=booking_rules.enrolled(enrolments, day),
            state=states.get(day),
            zone=zone,
            closing_days=closed,
            booked=booked.get(day, 0),
        )
        if verdict.actionable and wanted not in verdict.actions:
            label = states[day].label if states.get(day) else "Inscrit"
            verdict = Verdict(reason=f"Déjà : {label}")
        verdicts.append((day, verdict))
    return verdicts, states


class Submitted(NamedTuple):
    """A request just created: its id, and the new state and reason of each day it asked."""

    request_id: int
    days: dict[date, tuple[BookingState, str | None]]


def submit(
    family_id: int,
    user: User | None,
    child: Child,
    activity: Activity,
    kind: RequestKind,
    days: list[date],
    now: datetime,
    zone: str,
    period: tuple | None = None,
    facts: Facts | None = None,
) -> Submitted:
    """Create one request for the actionable days; automatic activities decide at once.

    `facts`: what the caller has just read of these days in this transaction (else read here).
    Plain statements on the session's connection (no ORM object: a one-click request is a few
    inserts, and a school-year period two more statements, not one per day); Booking objects
    already loaded in the session see the change after the commit.
    """
    wanted = RESERVE if kind is RequestKind.RESERVATION else ABSENCE
    verdicts, states = _preview(child, activity, kind, days, now, zone, facts)
    accepted_days = [day for day, verdict in verdicts if wanted in verdict.actions]
    if not accepted_days:
        if any(states.get(day) in ALREADY[kind] for day, _verdict in verdicts):
            raise AlreadyRequested("Cette demande est déjà enregistrée.")
        reasons = sorted({verdict.reason for _day, verdict in verdicts if verdict.reason})
        raise BookingError(
            "Aucun jour ne peut être demandé" + (f" : {' ; '.join(reasons[:3])}." if reasons else ".")
        )
    connection = db.session.connection()
    start, end, weekdays = period or (None, None, None)
    request_id = connection.execute(
        INSERT_REQUEST,
        {
            "family_id": family_id,
            "child_id": child.id,
            "activity_id": activity.id,
            "kind": kind,
            "created_by_id": user.id if user else None,
            "created_at": now,
            "period_start": start,
            "period_end": end,
            "period_weekdays": weekdays,
        },
    ).scalar_one()
    automatic = activity.validation_mode is ValidationMode.AUTOMATIC
    placed: set[date] = set()
    if automatic and kind is RequestKind.RESERVATION:
        placed = take_places(activity, accepted_days)
    elif automatic:
        release_places(activity, accepted_days)
    decided_at = now if automatic else None
    outcome: dict[date, tuple[BookingState, str | None]] = {}
    lines = []
    for day in accepted_days:
        if not automatic:
            requested = kind is RequestKind.RESERVATION
            state = BookingState.RESERVATION_REQUESTED if requested else BookingState.ABSENCE_REQUESTED
            reason, line_state = None, LineState.PENDING
        elif kind is RequestKind.ABSENCE:
            state, reason, line_state = BookingState.ABSENT, None, LineState.ACCEPTED
        elif day in placed:
            state, reason, line_state = BookingState.RESERVED, None, LineState.ACCEPTED
        else:
            state, reason, line_state = BookingState.REFUSED, "Complet", LineState.REFUSED
        outcome[day] = (state, reason)
        lines.append(
            {
                "request_id": request_id,
                "day": day,
                "state": line_state,
                "reason": reason,
                "decided_at": decided_at,
            }
        )
    # A new day gets a booking; a day that has one changes it. A pending request keeps what the day
    # was (and its reason), which a withdrawal or a refusal gives back.
    new = [
        {"child_id": child.id, "activity_id": activity.id, "day": day, "state": state, "reason": reason}
        for day, (state, reason) in outcome.items()
        if day not in states
    ]
    changed = [
        {
            "the_child": child.id,
            "the_activity": activity.id,
            "the_day": day,
            "new_state": state,
            "new_reason": reason,
        }
        for day, (state, reason) in outcome.items()
        if day in states
    ]
    if new:
        connection.execute(INSERT_BOOKINGS, new)
    if changed:
        connection.execute(DECIDE_BOOKINGS if automatic else ASK_BOOKINGS, changed)
    connection.execute(INSERT_LINES, lines)
    from portail.services import requests  # (requests uses this module's counters)

    decided = {LineState.ACCEPTED: [], LineState.REFUSED: []}
    for line in lines if automatic else []:
        decided[line["state"]].append(line["day"])
    requests.created(request_id, kind, child, activity, user, accepted_days, now, decided, period)
    return Submitted(request_id, outcome)


def take_places(activity: Activity, days: list[date]) -> set[date]:
    """Count one more child on each day that is not full; return the days obtained.

    One upsert: a day without a counter gets one at 1; an existing counter is incremented only
    while under the capacity. Each row is checked and changed atomically (the conflicting row is
    locked and its condition evaluated on its latest value), whatever the concurrency.
    """
    if activity.capacity is not None and activity.capacity <= 0:
        return set()
    statement = _take_statement(len(days), limited=activity.capacity is not None)
    params = {"activity": activity.id, "capacity": activity.capacity}
    params |= {f"day_{n}": day for n, day in enumerate(days)}
    return set(db.session.connection().execute(statement, params).scalars())


@lru_cache(maxsize=64)
def _take_statement(days: int, limited: bool) -> sa.TextClause:
    """The counters' upsert for a number of days, as one statement.

    Written as text, the same on SQLite and PostgreSQL: SQLAlchemy's INSERT … ON CONFLICT constructs
    have no cache key, so they would be compiled again on every call (≈ 1 ms: as long as all the
    other statements of a one-click request together).
    """
    names = [f"day_{n}" for n in range(days)]
    rows = ", ".join(f"(:activity, :{name}, 1)" for name in names)
    condition = " WHERE activity_day.booked < :capacity" if limited else ""
    return (
        sa.text(
            f"INSERT INTO activity_day (activity_id, day, booked) VALUES {rows} ON CONFLICT (activity_id, day)"
            f" DO UPDATE SET booked = activity_day.booked + 1{condition} RETURNING day"
        )
        .bindparams(*(sa.bindparam(name, type_=sa.Date) for name in names))
        .columns(day=sa.Date)
    )


def take_place(activity: Activity, day: date) -> bool:
    """Count one more child that day unless the activity is full (atomic)."""
    return day in take_places(activity, [day])


def release_places(activity: Activity, days: list[date]) -> None:
    """Give back a place on each day (an absence or a cancelled reservation)."""
    db.session.execute(
        sa.update(ActivityDay)
        .where(ActivityDay.activity_id == activity.id, ActivityDay.day.in_(days), ActivityDay.booked > 0)
        .values(booked=ActivityDay.booked - 1)
    )


def record_by_town(
    family_id: int,
    agent: User,
    child: Child,
    activity: Activity,
    kind: RequestKind,
    day: date,
    now: datetime,
    zone: str,
) -> Request:
    """A day entered by the service itself (a parent's phone call, a child present without a
    booking): no deadline applies, the enrolment, the opening and the capacity do; decided at once.

    The request has no parent author (so no receipt, and the digest goes to no one); the agent is
    its decider and the author of its history. Billing compares its time with the deadline: a late
    reservation may carry a surcharge, a late absence may be billed (per tariff).
    """
    from portail.models import EventKind
    from portail.services import requests

    db.session.flush()
    params = {"child": child.id, "activity": activity.id, "start": day, "end": day}
    if not booking_rules.enrolled(db.session.connection().execute(ENROLMENTS, params).all(), day):
        raise BookingError("L'enfant n'est pas inscrit à cette activité ce jour-là.")
    closed = booking_rules.closure(activity, day, zone, closing_days(activity, day, day))
    if closed:
        raise BookingError(f"{closed}.")
    booking = db.session.scalar(
        sa.select(Booking).where(
            Booking.child_id == child.id, Booking.activity_id == activity.id, Booking.day == day
        )
    )
    if booking is not None:  # (the same entry sent twice at once: the second sees the first's day)
        claim(booking, state=booking.state)
    if booking is not None and booking.state in (
        BookingState.RESERVATION_REQUESTED,
        BookingState.ABSENCE_REQUESTED,
    ):
        raise BookingError(
            "Une demande de la famille est en attente pour ce jour : traitez-la dans Demandes."
        )
    if kind is RequestKind.RESERVATION:
        if booking is not None and booking.state is BookingState.RESERVED:
            raise AlreadyRequested("Ce jour est déjà réservé.")
        if not take_place(activity, day):
            raise BookingError("Complet : il n'y a plus de place ce jour-là.")
        state, limit = BookingState.RESERVED, booking_rules.booking_deadline(activity, day)
    else:
        if booking is not None and booking.state is BookingState.ABSENT:
            raise AlreadyRequested("L'absence de ce jour est déjà enregistrée.")
        if booking is None or booking.state is not BookingState.RESERVED:
            raise BookingError("Une absence ne peut être saisie que sur un jour réservé.")
        release_places(activity, [day])
        state, limit = BookingState.ABSENT, booking_rules.absence_deadline(activity, day)
    if booking is None:
        db.session.add(Booking(child_id=child.id, activity_id=activity.id, day=day, state=state))
    else:
        booking.state, booking.reason, booking.previous_state = state, None, None
    request = Request(
        family_id=family_id,
        child_id=child.id,
        activity_id=activity.id,
        kind=kind,
        created_by_id=None,
        created_at=now,
    )
    request.lines.append(
        RequestLine(day=day, state=LineState.ACCEPTED, decided_at=now, decided_by_id=agent.id)
    )
    db.session.add(request)
    db.session.flush()
    label = "réservation" if kind is RequestKind.RESERVATION else "absence"
    late = " (hors délai)" if now > limit else ""
    requests.record(
        request.id,
        EventKind.CREATED,
        agent,
        by_town=True,
        summary=f"Saisie par le service : {label} du {short_date(day)}{late}",
        at=now,
    )
    return request
