"""Every change of a booking's state: a family's request (`submit`), its withdrawal (`withdraw` for one
day, `withdraw_request` for a whole request), the agent's decision (`decide`), a day entered by the
service (`record_by_town`) and a sick day declared by the family (`declare_sick`).

Each checks the days with `rules.evaluate` on the facts it reads (or is given), writes the bookings'
new state through `write_days` (the one place that changes a booking, only from the state read), the
request's lines, the history event and the mail (`history`). The daily capacity is guarded by a
conditional UPDATE on ActivityDay (`booked < capacity`), so it holds whatever the concurrency, on
SQLite and PostgreSQL.
"""

from collections import defaultdict
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app

from portail.bookings import facts as booking_facts
from portail.bookings import history
from portail.bookings import rules as booking_rules
from portail.bookings.errors import DAY_CHANGED, AlreadyRequested, BookingError, DecisionError
from portail.bookings.facts import Facts, Span
from portail.bookings.rules import ABSENCE, DECIDE, JOIN, RESERVE, WITHDRAW, Verdict
from portail.extensions import db
from portail.formatting import PARIS, french_instant, short_date
from portail.models import (
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    Child,
    EventKind,
    LineState,
    Request,
    RequestKind,
    RequestLine,
    ServiceCancellation,
    SickDeclaration,
    Subscription,
    User,
    ValidationMode,
    WaitingEnd,
    WaitingEntry,
)
from portail.services import audit
from portail.services.outbox import queue_mail

# A booking request is one unit of work, retried when a concurrent identical request won the race.
from portail.services.transactions import Conflict
from portail.services.transactions import run as with_retries  # noqa: F401
from portail.urls import public_url

# Reasons offered to agents when they refuse (PRODUCT §6); "Autre" needs a message.
REFUSAL_REASONS = ["Complet", "Hors délai", "Dossier incomplet", "Autre"]
PENDING = (BookingState.RESERVATION_REQUESTED, BookingState.ABSENCE_REQUESTED)
# The lines a family may still withdraw: waiting for the town, or on a day's waiting list.
OPEN_LINES = (LineState.PENDING, LineState.WAITING)
# Why a day stays refused when its waiting list is full.
FULL_LINE = "Complet (liste d'attente pleine)"
# The state of a day while a line of a request of this kind waits for the town.
ASKED = {
    RequestKind.RESERVATION: BookingState.RESERVATION_REQUESTED,
    RequestKind.ABSENCE: BookingState.ABSENCE_REQUESTED,
}

# The states in which a day already is what a reservation or an absence request asks for.
ALREADY = {
    RequestKind.RESERVATION: frozenset(
        {
            BookingState.RESERVATION_REQUESTED,
            BookingState.RESERVED,
            BookingState.WAITING,
            BookingState.OFFERED,
        }
    ),
    RequestKind.ABSENCE: frozenset({BookingState.ABSENCE_REQUESTED, BookingState.ABSENT}),
}


_booking = Booking.__table__
INSERT_REQUEST = Request.__table__.insert().returning(Request.__table__.c.id)
INSERT_LINES = RequestLine.__table__.insert()
INSERT_BOOKINGS = _booking.insert()
# A day's row is changed only from the state read: a copy of the same request sent at the same moment
# (a double click, two tabs), which read it before this one wrote, then changes nothing and is run
# again (Conflict), finding the request made. The parameters are not named like the columns, which an
# UPDATE reserves for its SET clause.
_SAME_DAY = (
    _booking.c.child_id == sa.bindparam("the_child"),
    _booking.c.activity_id == sa.bindparam("the_activity"),
    _booking.c.day == sa.bindparam("the_day"),
    _booking.c.state == sa.bindparam("read_state"),
)
# A decision (or a withdrawal giving back what the day was), a day cancelled by the town or given back
# by its undo: the new state and its reason; with a cancellation, the cancellation and what the day
# comes back to if it is undone (else none).
SET_BOOKINGS = (
    _booking.update()
    .where(*_SAME_DAY)
    .values(
        state=sa.bindparam("new_state"),
        reason=sa.bindparam("new_reason"),
        previous_state=sa.bindparam("kept_state"),
        cancellation_id=sa.bindparam("by_cancellation"),
    )
)
# A request waiting for the town: the day keeps its state and reason, to give back on a withdrawal or
# a refusal.
ASK_BOOKINGS = (
    _booking.update()
    .where(*_SAME_DAY)
    .values(state=sa.bindparam("new_state"), previous_state=_booking.c.state)
)
# A withdrawal on a day that had no booking before its request.
REMOVE_BOOKINGS = _booking.delete().where(*_SAME_DAY)


class Change(NamedTuple):
    """A day's booking going from the state read to a new one."""

    day: date
    read: BookingState | None  # the state read (None: the day has no booking yet)
    state: BookingState | None  # the new state (None: the booking goes, back to "Inscrit")
    reason: str | None = None  # the reason shown with the new state (a refusal's)
    pending: bool = False  # a request waiting for the town: the day keeps what it was
    cancellation: int | None = None  # the service cancellation that makes the day "Annulé par la mairie"
    kept: BookingState | None = None  # with a cancellation: what the day comes back to if it is undone


def write_days(child_id: int, activity_id: int, changes: list[Change]) -> None:
    """The one place where a booking's state is written: new days inserted, the others changed only
    from the state read (else `Conflict`: a concurrent copy changed it first, the unit of work runs
    again). At most one statement of each kind, whatever the number of days; Booking objects loaded
    in the session are expired (or dropped when their row went) so that they read the new state."""
    new, pending, decided, removed = [], [], [], []
    for change in changes:
        if change.read is None:
            new.append(
                {
                    "child_id": child_id,
                    "activity_id": activity_id,
                    "day": change.day,
                    "state": change.state,
                    "reason": change.reason,
                }
            )
            continue
        row = {
            "the_child": child_id,
            "the_activity": activity_id,
            "the_day": change.day,
            "read_state": change.read,
            "new_state": change.state,
            "new_reason": change.reason,
            "kept_state": change.kept,
            "by_cancellation": change.cancellation,
        }
        (removed if change.state is None else pending if change.pending else decided).append(row)
    connection = db.session.connection()
    if new:
        connection.execute(INSERT_BOOKINGS, new)
    for statement, rows in ((ASK_BOOKINGS, pending), (SET_BOOKINGS, decided), (REMOVE_BOOKINGS, removed)):
        if rows and connection.execute(statement, rows).rowcount != len(rows):
            raise Conflict("a booking changed since it was read")
    _refresh_loaded(
        child_id,
        activity_id,
        changed={change.day for change in changes if change.read is not None and change.state},
        gone={change.day for change in changes if change.read is not None and change.state is None},
    )


def _refresh_loaded(child_id: int, activity_id: int, changed: set[date], gone: set[date]) -> None:
    """The Booking objects of these days that the session holds (found without loading anything):
    a changed day's expired, a removed day's taken out of the session."""
    if not (changed or gone):
        return
    for instance in list(db.session.identity_map.values()):
        if not isinstance(instance, Booking):
            continue
        loaded = sa.inspect(instance).dict
        if (loaded.get("child_id"), loaded.get("activity_id")) != (child_id, activity_id):
            continue
        if loaded.get("day") in changed:
            db.session.expire(instance)
        elif loaded.get("day") in gone:
            db.session.expunge(instance)


def ask(
    activity: Activity,
    day: date,
    now: datetime,
    zone: str,
    facts: Facts,
    state: BookingState | None,
    *,
    by_town: bool = False,
) -> Verdict:
    """The rules' verdict on a day of these facts, for the day's current `state`."""
    return booking_rules.evaluate(
        activity,
        day,
        now,
        is_enrolled=booking_rules.enrolled(facts.enrolments, day),
        state=state,
        zone=zone,
        closing_days=facts.closed,
        booked=facts.booked.get(day, 0),
        by_town=by_town,
        waiting=facts.waiting.get(day, 0),
    )


def bookings_of(child_id: int, activity_id: int, days: list[date]) -> dict[date, Booking]:
    """The days' bookings by day, as objects to change (one query; a day without one is missing)."""
    found = db.session.scalars(
        sa.select(Booking).where(
            Booking.child_id == child_id, Booking.activity_id == activity_id, Booking.day.in_(days)
        )
    )
    return {booking.day: booking for booking in found}


def preview(
    child: Child,
    activity: Activity,
    kind: RequestKind,
    days: list[date],
    now: datetime,
    zone: str,
    facts: Facts | None = None,
    verdicts: dict[date, Verdict] | None = None,
) -> list[tuple[date, Verdict]]:
    """The verdict of each day for this kind of request (a constant number of queries).

    `facts`: what the caller has just read of these days in this transaction (else read here);
    `verdicts`: the rules' answer the caller has just had on these facts at `now` (else asked here:
    the rules run once)."""
    if not days:
        return []
    facts = facts or booking_facts.read(child, activity, min(days), max(days))
    states = facts.states
    wanted = RESERVE if kind is RequestKind.RESERVATION else ABSENCE
    found = []
    for day in days:
        verdict = (verdicts or {}).get(day)
        if verdict is None:
            verdict = ask(activity, day, now, zone, facts, states.get(day))
        if verdict.actionable and wanted not in verdict.actions and JOIN not in verdict.actions:
            label = states[day].label if states.get(day) else "Inscrit"
            verdict = Verdict(reason=f"Déjà : {label}")
        found.append((day, verdict))
    return found


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
    verdicts: dict[date, Verdict] | None = None,
    waiting: bool = False,
    join_only: bool = False,
) -> Submitted:
    """Create one request for the actionable days; automatic activities decide at once.

    `waiting`: a reservation's full days join their waiting list (`JOIN`), and so do the days an
    automatic activity finds full when it takes their places (a concurrent request took the last).
    `join_only` (with `waiting`: the parent asked to join a full day's line): a day that can be
    reserved again (a place freed meanwhile) is not reserved without asking: `DAY_CHANGED`.

    `facts`: what the caller has just read of these days in this transaction (else read here);
    `verdicts`: the rules' answer the caller has just had on these facts at `now` (else asked here).
    Plain statements on the session's connection (no ORM object: a one-click request is a few
    inserts, and a school-year period two more statements, not one per day).
    """
    wanted = RESERVE if kind is RequestKind.RESERVATION else ABSENCE
    if days:
        facts = facts or booking_facts.read(child, activity, min(days), max(days))
    verdicts = preview(child, activity, kind, days, now, zone, facts, verdicts)
    states = facts.states if facts else {}
    accepted_days = [day for day, verdict in verdicts if wanted in verdict.actions]
    if join_only and accepted_days:
        raise BookingError(DAY_CHANGED)
    joining = [
        day for day, verdict in verdicts if waiting and JOIN in verdict.actions and day not in accepted_days
    ]
    if not accepted_days and not joining:
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
    if automatic and kind is RequestKind.RESERVATION and accepted_days:
        placed = take_places(activity, accepted_days)
        if waiting and activity.waiting_list:  # (the last places taken meanwhile: in line instead)
            joining += [day for day in accepted_days if day not in placed]
    elif automatic and accepted_days:
        release_places(activity, accepted_days, now)
    in_line = join_line(activity, child.id, request_id, sorted(joining), now) if joining else set()
    decided_at = now if automatic else None
    outcome: dict[date, tuple[BookingState, str | None]] = {}
    lines = []
    for day in sorted({*accepted_days, *joining}):
        if day in in_line:
            state, reason, line_state = BookingState.WAITING, None, LineState.WAITING
        elif day in joining:
            state, reason, line_state = BookingState.REFUSED, FULL_LINE, LineState.REFUSED
        elif not automatic:
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
                "decided_at": decided_at if line_state is not LineState.WAITING else None,
            }
        )
    # A pending request keeps what the day was (and its reason), which a withdrawal or a refusal gives
    # back; so does a day in line, which leaving the list gives back.
    write_days(
        child.id,
        activity.id,
        [
            Change(
                day, states.get(day), state, reason, pending=not automatic or state is BookingState.WAITING
            )
            for day, (state, reason) in outcome.items()
        ],
    )
    connection.execute(INSERT_LINES, lines)
    decided = {LineState.ACCEPTED: [], LineState.REFUSED: [], LineState.WAITING: []}
    for line in lines:
        if automatic or line["state"] is not LineState.PENDING:
            decided[line["state"]].append(line["day"])
    asked = sorted({*accepted_days, *joining})
    history.created(request_id, kind, child, activity, user, asked, now, decided, period)
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


def release_places(activity: Activity, days: list[date], now: datetime) -> None:
    """Give back a place on each day (an absence, a place offered and given up): offered at once to
    the first in line of the day's waiting list, if any (`offer_freed`)."""
    db.session.execute(
        sa.update(ActivityDay)
        .where(ActivityDay.activity_id == activity.id, ActivityDay.day.in_(days), ActivityDay.booked > 0)
        .values(booked=ActivityDay.booked - 1)
    )
    if activity.waiting_list:  # (lines left by a list switched off since: the minute's job serves them)
        offer_freed(activity, days, now)


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
    booking): no deadline applies, the enrolment, the opening and the capacity do; decided at once
    and audited.

    The request has no parent author (so no receipt, and the digest goes to no one); the agent is
    its decider and the author of its history. Billing compares its time with the deadline: a late
    reservation may carry a surcharge, a late absence may be billed (per tariff).
    """
    facts = booking_facts.read(child, activity, day, day)
    state = facts.states.get(day)
    verdict = ask(activity, day, now, zone, facts, state, by_town=True)
    wanted = RESERVE if kind is RequestKind.RESERVATION else ABSENCE
    if wanted not in verdict.actions:
        if verdict.reason:
            raise BookingError(f"{verdict.reason}.")
        if kind is RequestKind.RESERVATION:  # (the rules offer a reservation on any other day)
            raise AlreadyRequested("Ce jour est déjà réservé.")
        if state is BookingState.ABSENT:
            raise AlreadyRequested("L'absence de ce jour est déjà enregistrée.")
        raise BookingError("Une absence ne peut être saisie que sur un jour réservé.")
    if kind is RequestKind.RESERVATION:
        if not take_place(activity, day):
            raise BookingError("Complet : il n'y a plus de place ce jour-là.")
        new_state, limit = BookingState.RESERVED, booking_rules.booking_deadline(activity, day)
    else:
        release_places(activity, [day], now)
        new_state, limit = BookingState.ABSENT, booking_rules.absence_deadline(activity, day)
    # (the same entry sent twice at once: the second finds the day changed, runs again and says so)
    write_days(child.id, activity.id, [Change(day, state, new_state)])
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
    history.record(
        request.id,
        EventKind.CREATED,
        agent,
        by_town=True,
        summary=f"Saisie par le service : {label} du {short_date(day)}{late}",
        at=now,
    )
    audit.record(
        agent,
        "booking.entered",
        "request",
        request.id,
        f"{child.full_name}, {activity.name}, {short_date(day)}",
    )
    return request


# "Enfant malade" is declared for the day itself or the next one (the town's date).
SICK_DAYS_AHEAD = 1


def sick_open(state: BookingState | None, verdict: Verdict, day: date, today: date) -> bool:
    """Whether "Enfant malade" may be declared on a day the rules have just judged (`verdict`, for its
    `state`): a reserved day, open, whose absence deadline has passed (before it, the absence request
    applies), today or tomorrow (`today`: the town's date at that instant)."""
    return (
        state is BookingState.RESERVED
        and not verdict.actions  # a reserved day without the absence action: its deadline has passed…
        and verdict.deadline is not None  # …on an open day (a closed day or no enrolment has none)
        and 0 <= (day - today).days <= SICK_DAYS_AHEAD
    )


class SickDay(NamedTuple):
    """A child's reserved activities on a day: those a sick day covers now, and the others with why not."""

    covered: list[Activity]
    others: list[tuple[Activity, str]]


def sick_day(child: Child, day: date, now: datetime, zone: str) -> SickDay:
    """Which of the child's reserved activities of the day "Enfant malade" covers at `now` (the rules
    asked on each)."""
    reserved = db.session.scalars(
        sa.select(Activity)
        .join(Booking, Booking.activity_id == Activity.id)
        .where(Booking.child_id == child.id, Booking.day == day, Booking.state == BookingState.RESERVED)
        .order_by(Activity.name)
    ).all()
    today = now.astimezone(PARIS).date()
    covered, others = [], []
    for activity in reserved:
        facts = booking_facts.read(child, activity, day, day)
        verdict = ask(activity, day, now, zone, facts, facts.states.get(day))
        if sick_open(facts.states.get(day), verdict, day, today):
            covered.append(activity)
        elif ABSENCE in verdict.actions:
            others.append((activity, f"absence possible jusqu'au {french_instant(verdict.deadline)}"))
        else:
            others.append((activity, verdict.reason or "non modifiable"))
    return SickDay(covered, others)


def declare_sick(
    family_id: int, user: User, child: Child, day: date, now: datetime, zone: str
) -> SickDeclaration:
    """Enfant malade: the declaration, and each reserved activity of the child that day it covers
    (`sick_day`) marked sick, its place given back; the day keeps that it was reserved
    (previous_state). The declaration is its own record (who, when, the certificate).

    Declared once per child and day: a second copy (a double click, two tabs) finds the first's
    declaration (AlreadyRequested); two at the same instant meet on the unique (child, day) and the
    loser, run again, finds it."""
    declared = db.session.scalar(
        sa.select(SickDeclaration.id).where(SickDeclaration.child_id == child.id, SickDeclaration.day == day)
    )
    if declared is not None:
        raise AlreadyRequested("« Enfant malade » est déjà déclaré pour ce jour.")
    covered = sick_day(child, day, now, zone).covered
    if not covered:
        raise BookingError(
            "« Enfant malade » se déclare pour aujourd'hui ou demain, sur un jour réservé dont le délai "
            "d'absence est passé."
        )
    declaration = SickDeclaration(
        family_id=family_id, child_id=child.id, day=day, declared_by_id=user.id, declared_at=now
    )
    db.session.add(declaration)
    db.session.flush()
    for activity in covered:
        # (pending: the day keeps its state, RESERVED, as previous_state, and its reason)
        write_days(
            child.id, activity.id, [Change(day, BookingState.RESERVED, BookingState.SICK, pending=True)]
        )
        release_places(activity, [day], now)
    return declaration


def withdraw(
    child: Child,
    activity: Activity,
    day: date,
    user: User,
    now: datetime,
    zone: str,
    verdict: Verdict | None = None,
) -> None:
    """Retirer a pending request for one day, before its deadline: the day goes back to what it was.

    `verdict`: the rules' answer the caller has just had on the day at `now` (else asked here).
    """
    booking = bookings_of(child.id, activity.id, [day]).get(day)
    if booking is None or booking.state not in (*PENDING, BookingState.WAITING):
        raise BookingError("Il n'y a pas de demande en attente ce jour-là.")
    if verdict is None:
        verdict = ask(activity, day, now, zone, booking_facts.read(child, activity, day, day), booking.state)
    if WITHDRAW not in verdict.actions:
        raise BookingError(verdict.reason)
    _give_back(child, activity, [booking], user, now)


class Withdrawal(NamedTuple):
    """A request's pending days: those its family may still withdraw (their bookings, by day), and
    those it no longer may, with why ("Délai dépassé depuis le …")."""

    open: dict[date, Booking]
    kept: dict[date, str]


def withdrawal_of(request: Request, now: datetime, zone: str) -> Withdrawal:
    """What withdrawing the whole request would do at `now`: the rules asked on each pending day
    (the bookings and the facts of the request's days read once, whatever their number)."""
    pending = [line.day for line in request.lines if line.state in OPEN_LINES]
    if not pending:
        return Withdrawal({}, {})
    activity = request.activity
    found = bookings_of(request.child_id, activity.id, pending)
    facts = booking_facts.read(request.child, activity, min(pending), max(pending))
    states = {day: booking.state for day, booking in found.items()}
    withdrawable, kept = _sort_pending(activity, pending, states, facts, now, zone)
    return Withdrawal({day: found[day] for day in withdrawable}, kept)


def open_to_withdrawal(request: Request, now: datetime, zone: str) -> bool:
    """Whether the request has a pending day still before its deadline, on the request alone (no
    query, for each row of Mes demandes): its pending days taken as waiting, enrolled and not closed
    by the staff, which the confirmation (`withdrawal_of`) reads."""
    pending = sorted((line.day for line in request.lines if line.state in OPEN_LINES), reverse=True)
    if not pending:
        return False
    state = ASKED[request.kind]
    assumed = Facts([Span(pending[-1], pending[0], None)], dict.fromkeys(pending, state), {}, {})
    # (from the last day, whose deadline is the latest: most rows answer at the first day asked)
    return any(WITHDRAW in ask(request.activity, day, now, zone, assumed, state).actions for day in pending)


def _sort_pending(
    activity: Activity,
    days: list[date],
    states: dict[date, BookingState],
    facts: Facts,
    now: datetime,
    zone: str,
) -> tuple[list[date], dict[date, str]]:
    """The days the rules let the family withdraw at `now`, and the others with why not."""
    withdrawable, kept = [], {}
    for day in sorted(days):
        verdict = ask(activity, day, now, zone, facts, states.get(day))
        if WITHDRAW in verdict.actions:
            withdrawable.append(day)
        elif states.get(day) is BookingState.OFFERED:
            kept[day] = "Une place vous est proposée : confirmez-la ou refusez-la sur le planning"
        elif verdict.deadline is not None and now >= verdict.deadline:
            kept[day] = f"Délai dépassé depuis le {french_instant(verdict.deadline)}"
        else:
            kept[day] = verdict.reason or "Demande déjà traitée"
    return withdrawable, kept


def withdraw_request(request: Request, user: User, now: datetime, zone: str) -> Withdrawal:
    """Retirer every pending day of a request that is still before its deadline, at once: each goes
    back to what it was, and the request's history gets one event for them all. The days whose
    deadline has passed stay as they are (`kept` in the answer).

    Nothing left to withdraw (a second click, two tabs, every deadline passed): BookingError."""
    withdrawal = withdrawal_of(request, now, zone)
    if not withdrawal.open:
        raise BookingError("Il n'y a plus de jour à retirer dans cette demande.")
    _give_back(request.child, request.activity, list(withdrawal.open.values()), user, now)
    return withdrawal


def _give_back(child: Child, activity: Activity, withdrawn: list[Booking], user: User, now: datetime) -> None:
    """The days of these pending bookings back to what they were before their request (their reason
    kept), or to no booking; their request lines withdrawn, one history event per request. A few
    statements, whatever the number of days."""
    # (withdrawn once: a copy sent at the same moment finds the days changed, runs again, finds nothing)
    write_days(
        child.id,
        activity.id,
        [Change(booking.day, booking.state, booking.previous_state, booking.reason) for booking in withdrawn],
    )
    in_line = [booking.day for booking in withdrawn if booking.state is BookingState.WAITING]
    if in_line:
        _end_entries(child.id, activity.id, in_line, WaitingEnd.WITHDRAWN, now)
    lines = db.session.execute(
        sa.update(RequestLine)
        .where(
            RequestLine.request_id.in_(
                sa.select(Request.id).where(Request.child_id == child.id, Request.activity_id == activity.id)
            ),
            RequestLine.day.in_([booking.day for booking in withdrawn]),
            RequestLine.state.in_([LineState.PENDING, LineState.WAITING]),
        )
        .values(state=LineState.WITHDRAWN)
        .returning(RequestLine.request_id, RequestLine.day)
        .execution_options(synchronize_session="fetch")
    )
    by_request: dict[int, list[date]] = defaultdict(list)
    for request_id, day in lines:
        by_request[request_id].append(day)
    for request_id, days in by_request.items():
        days.sort()
        history.record(
            request_id,
            EventKind.WITHDRAWAL,
            user,
            by_town=False,
            summary=f"Demande retirée : {history.counted_days(days)}",
            at=now,
        )


def decide(
    line_ids: list[int],
    accept: bool,
    agent: User,
    now: datetime,
    reason: str | None = None,
    message: str | None = None,
    zone: str | None = None,
) -> dict[str, int]:
    """Accept or refuse pending lines; return how many were accepted and refused.

    Lines no longer pending (withdrawn, already decided) are skipped. Refusing needs a reason. An
    accepted line is checked with the rules (`by_town`: no deadline binds the agent; the enrolment,
    the opening and the capacity do): a day closed or no longer covered by an enrolment since the
    request is refused with the rules' reason, a full day with "Complet". `zone`: the town's school
    zone (the configured one by default).
    """
    message = (message or "").strip() or None
    if not accept:
        if reason not in REFUSAL_REASONS:
            raise DecisionError("Choisissez le motif du refus.")
        if reason == "Autre" and not message:
            raise DecisionError("Avec le motif « Autre », écrivez un message à la famille.")
    zone = zone or current_app.config["SCHOOL_ZONE"]
    # Claim the lines atomically: two agents deciding the same line at once decide it once.
    claimed = db.session.scalars(
        sa.update(RequestLine)
        .where(
            RequestLine.id.in_(line_ids),
            RequestLine.state == LineState.PENDING,
            RequestLine.decided_at.is_(None),
        )
        .values(decided_at=now, decided_by_id=agent.id)
        .returning(RequestLine.id)
    ).all()
    lines = db.session.scalars(
        sa.select(RequestLine)
        .where(RequestLine.id.in_(claimed))
        .options(sa.orm.selectinload(RequestLine.request).joinedload(Request.child))
        .execution_options(populate_existing=True)
    ).all()
    if not lines:
        raise DecisionError("Aucune ligne en attente dans la sélection : elle a peut-être déjà été traitée.")
    by_request: dict[int, list[RequestLine]] = defaultdict(list)
    for line in lines:
        by_request[line.request_id].append(line)
    counts = {"accepted": 0, "refused": 0}
    for request_lines in by_request.values():
        request = request_lines[0].request
        decided = _decide_request(request, request_lines, accept, now, zone, reason, message)
        # (acceptances first, then refusals by reason)
        for (state, why), days in sorted(
            decided.items(), key=lambda item: item[0][0] is not LineState.ACCEPTED
        ):
            label = "Acceptée" if state is LineState.ACCEPTED else "Refusée"
            history.record(
                request.id,
                EventKind.DECISION,
                agent,
                by_town=True,
                summary=f"{label} : {history.short_days(days)}",
                reason=why,
                message=message,
                at=now,
            )
            counts["accepted" if state is LineState.ACCEPTED else "refused"] += len(days)
    return counts


def _decide_request(
    request: Request,
    lines: list[RequestLine],
    accept: bool,
    now: datetime,
    zone: str,
    reason: str | None,
    message: str | None,
) -> dict[tuple[LineState, str | None], list[date]]:
    """Decide claimed lines of one request: the lines' and the days' new states; the days decided,
    by decision and reason (one history event each)."""
    activity = db.session.get(Activity, request.activity_id)
    days = sorted(line.day for line in lines)
    facts = booking_facts.read(request.child, activity, days[0], days[-1])
    found = bookings_of(request.child_id, request.activity_id, days)
    blocked: dict[date, str] = {}  # the days the rules do not let the agent accept, and why
    if accept:
        for day in days:
            verdict = ask(activity, day, now, zone, facts, facts.states.get(day), by_town=True)
            if DECIDE not in verdict.actions:
                blocked[day] = verdict.reason or "Demande déjà traitée"
    allowed = [day for day in days if day not in blocked] if accept else []
    # (a place freed and held for the first in line of the waiting list: already counted)
    held = {day for day in days if facts.states.get(day) is BookingState.OFFERED}
    to_take = [day for day in allowed if day not in held]
    if to_take and request.kind is RequestKind.RESERVATION:
        blocked |= dict.fromkeys(set(to_take) - take_places(activity, to_take), "Complet")
    elif allowed and request.kind is RequestKind.ABSENCE:
        release_places(activity, allowed, now)
    decided: dict[tuple[LineState, str | None], list[date]] = defaultdict(list)
    changes = []
    for line in sorted(lines, key=lambda line: line.day):
        booking = found.get(line.day)
        if accept and line.day not in blocked:
            line.state, line.reason = LineState.ACCEPTED, None
            new_state = (
                BookingState.RESERVED if request.kind is RequestKind.RESERVATION else BookingState.ABSENT
            )
        else:
            line.state, line.reason = LineState.REFUSED, blocked.get(line.day, reason)
            # A refused reservation shows as refused; a refused absence keeps the day reserved.
            new_state = (
                BookingState.REFUSED
                if request.kind is RequestKind.RESERVATION
                else (booking.previous_state if booking else None) or BookingState.RESERVED
            )
        line.message = message
        if booking is not None:
            shown = line.reason if new_state is BookingState.REFUSED else None
            changes.append(Change(line.day, booking.state, new_state, shown))
        decided[(line.state, line.reason)].append(line.day)
    write_days(request.child_id, request.activity_id, changes)
    if held:
        kept = sorted(day for day in held if accept and day not in blocked)
        given_up = sorted(held - set(kept))
        if kept:
            _end_entries(request.child_id, activity.id, kept, WaitingEnd.CONFIRMED, now, offered=True)
        if given_up:
            _end_entries(
                request.child_id, activity.id, given_up, WaitingEnd.REFUSED, now, reason, offered=True
            )
            release_places(activity, given_up, now)
    return decided


# The days a service cancellation takes: those a child was to attend, asked for, or was absent from (a
# late absence is not billed for a service that did not run). A sick day stays the family's.
CANCELLABLE = (
    BookingState.RESERVED,
    *PENDING,
    BookingState.ABSENT,
    BookingState.WAITING,
    BookingState.OFFERED,
)
# What a day taken comes back to when its cancellation is undone (a reservation asked: the day as it
# was before the request, which the refusal gives back).
_KEPT = {
    BookingState.RESERVED: BookingState.RESERVED,
    BookingState.ABSENT: BookingState.ABSENT,
    BookingState.ABSENCE_REQUESTED: BookingState.ABSENT,
    # (a day's waiting list ends with its service: undone, the day is back to "Inscrit")
    BookingState.WAITING: None,
    BookingState.OFFERED: None,
}


class CancelledDay(NamedTuple):
    """A child's day a service cancellation took, and the state it was in."""

    child_id: int
    day: date
    was: BookingState


def cancel_days(cancellation: ServiceCancellation, agent: User, now: datetime) -> list[CancelledDay]:
    """Every day of the cancellation's activity and period in a state it takes becomes "Annulé par
    la mairie" with its reason; the days taken, by child and day.

    What each day comes back to if the cancellation is undone is kept. A family's pending request is
    decided at once, by the agent, with one history event per request: a reservation is refused (the
    service will not run; undone, the day is what it was before the request), an absence accepted
    (the child was not coming; undone, the day is absent). The places stay counted, the day being
    closed, so that an undo finds them as they were; an accepted absence frees its own."""
    activity_id, first, last = cancellation.activity_id, cancellation.first_day, cancellation.last_day
    why = f"Service annulé par la mairie : {cancellation.reason}"
    pending = db.session.execute(
        sa.select(RequestLine.id, RequestLine.request_id, RequestLine.day, Request.kind)
        .join(Request, Request.id == RequestLine.request_id)
        .where(
            Request.activity_id == activity_id,
            RequestLine.day.between(first, last),
            RequestLine.state.in_(OPEN_LINES),
            RequestLine.decided_at.is_(None),
        )
    ).all()
    outcome = {
        RequestKind.RESERVATION: (LineState.REFUSED, why),
        RequestKind.ABSENCE: (LineState.ACCEPTED, None),
    }
    for kind, (state, reason) in outcome.items():
        ids = [line_id for line_id, _request, _day, asked in pending if asked is kind]
        claimed = ids and db.session.execute(
            sa.update(RequestLine)
            .where(
                RequestLine.id.in_(ids),
                RequestLine.state.in_(OPEN_LINES),
                RequestLine.decided_at.is_(None),
            )
            .values(state=state, reason=reason, decided_at=now, decided_by_id=agent.id)
            .execution_options(synchronize_session=False)
        )
        if ids and claimed.rowcount != len(ids):
            raise Conflict("a request line was decided meanwhile")
    by_request: dict[tuple[int, RequestKind], list[date]] = defaultdict(list)
    for _line, request_id, day, kind in pending:
        by_request[(request_id, kind)].append(day)
    for (request_id, kind), days in sorted(by_request.items()):
        days.sort()
        label = "Refusée" if kind is RequestKind.RESERVATION else "Acceptée"
        history.record(
            request_id,
            EventKind.DECISION,
            agent,
            by_town=True,
            summary=f"{label} : {history.short_days(days)}",
            reason=why,
            at=now,
        )
    found = db.session.execute(
        sa.select(Booking.child_id, Booking.day, Booking.state, Booking.previous_state)
        .where(
            Booking.activity_id == activity_id,
            Booking.day.between(first, last),
            Booking.state.in_(CANCELLABLE),
        )
        .order_by(Booking.child_id, Booking.day)
    ).all()
    by_child: dict[int, list[Change]] = defaultdict(list)
    freed: dict[int, list[date]] = defaultdict(list)
    for child_id, day, state, previous in found:
        kept = previous if state is BookingState.RESERVATION_REQUESTED else _KEPT[state]
        if state in (BookingState.WAITING, BookingState.OFFERED):
            _end_entries(child_id, activity_id, [day], WaitingEnd.CLOSED, now, why)
        by_child[child_id].append(
            Change(
                day,
                state,
                BookingState.CANCELLED,
                cancellation.reason,
                cancellation=cancellation.id,
                kept=kept,
            )
        )
        if state in (BookingState.ABSENCE_REQUESTED, BookingState.OFFERED):  # (a place held is given back)
            freed[child_id].append(day)
    activity = db.session.get(Activity, activity_id)
    for child_id, changes in by_child.items():
        write_days(child_id, activity_id, changes)
        if freed.get(child_id):
            release_places(activity, freed[child_id], now)
    return [CancelledDay(child_id, day, state) for child_id, day, state, _previous in found]


def restore_days(cancellation: ServiceCancellation) -> list[tuple[int, date, BookingState | None]]:
    """The days still "Annulé par la mairie" by this cancellation back to what they were kept as (no
    state kept: back to "Inscrit"); the days restored, by child and day, with their state."""
    found = db.session.execute(
        sa.select(Booking.child_id, Booking.day, Booking.previous_state)
        .where(Booking.cancellation_id == cancellation.id, Booking.state == BookingState.CANCELLED)
        .order_by(Booking.child_id, Booking.day)
    ).all()
    by_child: dict[int, list[Change]] = defaultdict(list)
    for child_id, day, kept in found:
        by_child[child_id].append(Change(day, BookingState.CANCELLED, kept))
    for child_id, changes in by_child.items():
        write_days(child_id, cancellation.activity_id, changes)
    return [tuple(row) for row in found]


def seed(child_id: int, activity_id: int, days: list[date], state: BookingState) -> None:
    """New days written as they already are, with no request and no rule asked: the past that the
    demo starts from (its billed months)."""
    write_days(child_id, activity_id, [Change(day, None, state) for day in days])


def seed_state(booking: Booking, state: BookingState) -> None:
    """A day of that past changed as it already is (the demo's past absences, with their history)."""
    write_days(
        booking.child_id, booking.activity_id, [Change(booking.day, booking.state, state, booking.reason)]
    )


# ---------------------------------------------------------------------------------------------------
# Waiting lists (models.waiting): a full day's line, the place freed offered to the first in line at
# once (held in the day's counter, so that nobody else takes it), confirmed, declined or expired.

_entry = WaitingEntry.__table__
_OPEN = _entry.c.ended_at.is_(None)
# The first in line of a day that no place is offered to yet (by key, then by id).
FIRST_IN_LINE = (
    sa.select(_entry.c.id, _entry.c.child_id, _entry.c.request_id)
    .where(
        _entry.c.activity_id == sa.bindparam("activity"),
        _entry.c.day == sa.bindparam("day"),
        _OPEN,
        _entry.c.offered_at.is_(None),
    )
    .order_by(_entry.c.queue_key, _entry.c.id)
    .limit(1)
)
# An entry offered a place, claimed by the one transition that ends it (a concurrent copy matches nothing).
END_ENTRY = (
    _entry.update()
    .where(_entry.c.id == sa.bindparam("entry"), _OPEN)
    .values(ended_at=sa.bindparam("now"), end=sa.bindparam("how"), reason=sa.bindparam("why"))
)
# Offer a place to an entry still waiting.
OFFER_ENTRY = (
    _entry.update()
    .where(_entry.c.id == sa.bindparam("entry"), _OPEN, _entry.c.offered_at.is_(None))
    .values(offered_at=sa.bindparam("now"), offer_expires_at=sa.bindparam("until"))
)
# A request's line of a day in line: its new state (decided, or handed to the agent's queue).
SET_LINE = (
    RequestLine.__table__.update()
    .where(
        RequestLine.__table__.c.request_id == sa.bindparam("request"),
        RequestLine.__table__.c.day == sa.bindparam("the_day"),
        RequestLine.__table__.c.state.in_([LineState.WAITING, LineState.PENDING]),
    )
    .values(
        state=sa.bindparam("line_state"),
        reason=sa.bindparam("line_reason"),
        decided_at=sa.bindparam("decided"),
        decided_by_id=sa.bindparam("decider"),
    )
)
# Why a place offered went (the day's refusal reason, and the history's).
OFFER_LAPSED = "Place proposée non confirmée à temps"
LIST_CLOSED = "Complet : aucune place ne s'est libérée avant la date limite"


def queue_key(now: datetime) -> int:
    """The order of joining: the instant in microseconds (equal keys go by id)."""
    return int(now.timestamp() * 1_000_000)


@lru_cache(maxsize=64)
def _touch_statement(days: int) -> sa.TextClause:
    """The counters of some days written to themselves (created at 0 if missing): a day's writers of
    its waiting list take turns on its row (PostgreSQL's row lock, SQLite's write lock)."""
    names = [f"day_{n}" for n in range(days)]
    rows = ", ".join(f"(:activity, :{name}, 0)" for name in names)
    return sa.text(
        f"INSERT INTO activity_day (activity_id, day, booked) VALUES {rows} ON CONFLICT (activity_id, day)"
        " DO UPDATE SET booked = activity_day.booked"
    ).bindparams(*(sa.bindparam(name, type_=sa.Date) for name in names))


def join_line(
    activity: Activity, child_id: int, request_id: int, days: list[date], now: datetime
) -> set[date]:
    """The child at the end of each day's line, unless the line is at its maximum; the days joined.

    The days' counters are taken first, so that joins of a day take turns: the length read then is
    the length, and the maximum holds whatever the concurrency."""
    connection = db.session.connection()
    params = {"activity": activity.id} | {f"day_{n}": day for n, day in enumerate(days)}
    connection.execute(_touch_statement(len(days)), params)
    limit = activity.waiting_list_max
    if limit is not None:
        lengths = dict(
            connection.execute(
                sa.select(_entry.c.day, sa.func.count())
                .where(
                    _entry.c.activity_id == activity.id,
                    _entry.c.day.in_(days),
                    _OPEN,
                    _entry.c.offered_at.is_(None),
                )
                .group_by(_entry.c.day)
            ).all()
        )
        days = [day for day in days if lengths.get(day, 0) < limit]
    if days:
        key = queue_key(now)
        connection.execute(
            _entry.insert(),
            [
                {
                    "activity_id": activity.id,
                    "day": day,
                    "child_id": child_id,
                    "request_id": request_id,
                    "queue_key": key,
                    "joined_at": now,
                }
                for day in days
            ],
        )
    return set(days)


def _end_entries(
    child_id: int,
    activity_id: int,
    days: list[date],
    how: WaitingEnd,
    now: datetime,
    reason: str | None = None,
    *,
    offered: bool | None = None,
) -> None:
    """The child's open entries of these days ended (`offered`: only those offered a place, or not)."""
    conditions = [
        _entry.c.child_id == child_id,
        _entry.c.activity_id == activity_id,
        _entry.c.day.in_(days),
        _OPEN,
    ]
    if offered is not None:
        conditions.append(_entry.c.offered_at.is_not(None) if offered else _entry.c.offered_at.is_(None))
    db.session.execute(
        _entry.update().where(*conditions).values(ended_at=now, end=how, reason=reason),
        execution_options={"synchronize_session": False},
    )


def offer_freed(activity: Activity, days: list[date], now: datetime) -> int:
    """Each place free on these days offered to the first in line, while there are both (the place
    taken through the capacity guard, so held for that family); the offers made.

    Only on an open day before its booking deadline: the offer lasts the activity's hold time, never
    past the deadline. An activity validated by hand hands the request to the agent's queue instead."""
    if not days:  # (a capacity removed: every place is free, the whole line is offered)
        return 0
    db.session.flush()
    connection = db.session.connection()
    first, last = min(days), max(days)
    closings = {
        day: reason
        for activity_id, day, reason in connection.execute(
            booking_facts.CLOSINGS, {"start": first, "end": last}
        )
        if activity_id in (None, activity.id)
    }
    zone = current_app.config["SCHOOL_ZONE"]
    schedule = booking_rules.Schedule.of(activity)
    made = 0
    for day in sorted(set(days)):
        rules = booking_rules.day_rules(schedule, day, zone, closings.get(day))
        if rules.closed or now >= rules.booking:
            continue
        while entry := connection.execute(FIRST_IN_LINE, {"activity": activity.id, "day": day}).first():
            if not take_place(activity, day):
                break
            _offer(activity, day, entry, now, rules.booking)
            made += 1
    return made


def _offer(activity: Activity, day: date, entry, now: datetime, deadline: datetime) -> None:
    """The place held for this entry: its day offered, the history, and the mail to the family's
    parents (always at once, whatever their choice of notifications)."""
    entry_id, child_id, request_id = entry
    manual = activity.validation_mode is ValidationMode.MANUAL
    until = None if manual else min(now + timedelta(minutes=activity.offer_hold_minutes), deadline)
    connection = db.session.connection()
    if connection.execute(OFFER_ENTRY, {"entry": entry_id, "now": now, "until": until}).rowcount != 1:
        raise Conflict("a waiting-list entry changed since it was read")
    write_days(child_id, activity.id, [Change(day, BookingState.WAITING, BookingState.OFFERED)])
    if manual:  # (in the agent's queue: a reservation asked, its place held)
        connection.execute(
            SET_LINE,
            {
                "request": request_id,
                "the_day": day,
                "line_state": LineState.PENDING,
                "line_reason": None,
                "decided": None,
                "decider": None,
            },
        )
        summary = f"Une place s'est libérée le {short_date(day)} : demande transmise au service Enfance"
    else:
        summary = (
            f"Une place s'est libérée le {short_date(day)} : à confirmer avant le {french_instant(until)}"
        )
    history.record(request_id, EventKind.WAITING_LIST, None, by_town=True, summary=summary, at=now)
    _mail_family(
        "waiting_offer",
        request_id,
        activity,
        day,
        manual=manual,
        until=french_instant(until) if until else None,
        link=public_url("account.request_history", request_id=request_id),
    )


def _mail_family(template: str, request_id: int, activity: Activity, day: date, **context) -> None:
    """A waiting-list mail to each parent who follows the request's family."""
    found = db.session.execute(
        sa.select(User.email, User.first_name, Child.first_name, Request.family_id, Child.id)
        .join(Subscription, Subscription.user_id == User.id)
        .join(Request, Request.family_id == Subscription.family_id)
        .join(Child, Child.id == Request.child_id)
        .where(Request.id == request_id, Subscription.ended_at.is_(None))
    ).all()
    for email, first_name, child, family_id, child_id in found:
        queue_mail(
            template,
            email,
            first_name=first_name,
            child=child,
            activity=activity.name,
            day=day.isoformat(),
            # (the day's agenda, at the child's cell: where the place is confirmed)
            planning_link=public_url("family.planning_page", family_id=family_id, jour=day.isoformat())
            + f"#cell-{child_id}-{activity.id}-{day.isoformat()}",
            **context,
        )


class Offer(NamedTuple):
    """A child's place offered on a day: its entry, request, and until when it is held."""

    entry_id: int
    request_id: int
    until: datetime | None


def offer_of(child_id: int, activity_id: int, day: date) -> Offer | None:
    """The place offered to the child that day, if any."""
    found = db.session.execute(
        sa.select(_entry.c.id, _entry.c.request_id, _entry.c.offer_expires_at).where(
            _entry.c.child_id == child_id,
            _entry.c.activity_id == activity_id,
            _entry.c.day == day,
            _OPEN,
            _entry.c.offered_at.is_not(None),
        )
    ).first()
    return Offer(*found) if found else None


def confirm_offer(child: Child, activity: Activity, day: date, user: User, now: datetime) -> None:
    """The family takes the place offered: the day reserved (the place already held), the request's
    line accepted. Refused in French after the offer's end (to the second), or when no place is
    offered (taken back, declined in another tab)."""
    offer = offer_of(child.id, activity.id, day)
    if offer is None:
        raise BookingError("Aucune place ne vous est proposée ce jour-là.")
    if offer.until is None:
        raise BookingError(f"{booking_rules.OFFER_TO_TOWN}.")
    if now >= offer.until:
        raise BookingError(
            f"Le délai pour confirmer cette place est dépassé depuis le {french_instant(offer.until)} : "
            "elle est proposée à la famille suivante."
        )
    connection = db.session.connection()
    claimed = connection.execute(
        END_ENTRY, {"entry": offer.entry_id, "now": now, "how": WaitingEnd.CONFIRMED, "why": None}
    )
    if claimed.rowcount != 1:
        raise Conflict("the offer ended meanwhile")
    write_days(child.id, activity.id, [Change(day, BookingState.OFFERED, BookingState.RESERVED)])
    connection.execute(
        SET_LINE,
        {
            "request": offer.request_id,
            "the_day": day,
            "line_state": LineState.ACCEPTED,
            "line_reason": None,
            "decided": now,
            "decider": None,
        },
    )
    history.record(  # (the line decided: a decision, the family's own)
        offer.request_id,
        EventKind.DECISION,
        user,
        by_town=False,
        summary=f"Place confirmée par la famille : {short_date(day)}",
        at=now,
    )


def decline_offer(child: Child, activity: Activity, day: date, user: User, now: datetime) -> None:
    """The family gives the place offered up: the day back to "Inscrit", the line withdrawn, the place
    offered to the next in line."""
    offer = offer_of(child.id, activity.id, day)
    if offer is None:
        raise BookingError("Aucune place ne vous est proposée ce jour-là.")
    connection = db.session.connection()
    claimed = connection.execute(
        END_ENTRY, {"entry": offer.entry_id, "now": now, "how": WaitingEnd.DECLINED, "why": None}
    )
    if claimed.rowcount != 1:
        raise Conflict("the offer ended meanwhile")
    write_days(child.id, activity.id, [Change(day, BookingState.OFFERED, None)])
    connection.execute(
        SET_LINE,
        {
            "request": offer.request_id,
            "the_day": day,
            "line_state": LineState.WITHDRAWN,
            "line_reason": None,
            "decided": None,
            "decider": None,
        },
    )
    history.record(
        offer.request_id,
        EventKind.WAITING_LIST,
        user,
        by_town=False,
        summary=f"Place proposée refusée par la famille : {short_date(day)}",
        at=now,
    )
    release_places(activity, [day], now)


def _lapse(entry_id: int, how: WaitingEnd, why: str, now: datetime, *, agent: User | None = None) -> bool:
    """An open entry ended (`how`, `why`) unless another transition ended it first: its day refused
    with `why`, its line refused (decided by the agent, or by no one), the history, the family told,
    and a place it held given to the next in line. Whether this call ended it."""
    connection = db.session.connection()
    found = connection.execute(
        sa.select(
            _entry.c.child_id, _entry.c.activity_id, _entry.c.day, _entry.c.request_id, _entry.c.offered_at
        ).where(_entry.c.id == entry_id, _OPEN)
    ).first()
    if found is None:
        return False
    child_id, activity_id, day, request_id, offered_at = found
    if connection.execute(END_ENTRY, {"entry": entry_id, "now": now, "how": how, "why": why}).rowcount != 1:
        return False  # (another worker or agent ended it: nothing done twice)
    state = BookingState.OFFERED if offered_at else BookingState.WAITING
    write_days(child_id, activity_id, [Change(day, state, BookingState.REFUSED, why)])
    connection.execute(
        SET_LINE,
        {
            "request": request_id,
            "the_day": day,
            "line_state": LineState.REFUSED,
            "line_reason": why,
            "decided": now,
            "decider": agent.id if agent else None,
        },
    )
    summaries = {
        WaitingEnd.EXPIRED: "Place proposée non confirmée à temps",
        WaitingEnd.CLOSED: "Liste d'attente close",
        WaitingEnd.REMOVED: "Retirée de la liste d'attente par le service",
    }
    history.record(  # (the line decided: a decision, the town's)
        request_id,
        EventKind.DECISION,
        agent,
        by_town=True,
        summary=f"{summaries[how]} : {short_date(day)}",
        reason=why if how is WaitingEnd.REMOVED else None,
        at=now,
    )
    activity = db.session.get(Activity, activity_id)
    if agent is None:  # (an agent's removal is a decision: the family's notifications tell it)
        _mail_family(
            "waiting_ended",
            request_id,
            activity,
            day,
            expired=how is WaitingEnd.EXPIRED,
            link=public_url("account.request_history", request_id=request_id),
        )
    if offered_at:
        release_places(activity, [day], now)
    return True


def expire_offers(now: datetime) -> int:
    """The places offered and not confirmed by their end: each passed to the next in line, exactly
    once whatever the workers (each entry ended by one conditional UPDATE in its own transaction);
    the offers expired."""
    due = db.session.scalars(
        sa.select(_entry.c.id)
        .where(_OPEN, _entry.c.offer_expires_at <= now)
        .order_by(_entry.c.offer_expires_at, _entry.c.id)
    ).all()
    return sum(
        with_retries(lambda entry_id=entry_id: _lapse(entry_id, WaitingEnd.EXPIRED, OFFER_LAPSED, now))
        for entry_id in due
    )


def close_lines(now: datetime) -> int:
    """The lines of days whose booking deadline has passed, with no place offered: each child's day
    refused ("Complet"), the family told; the entries closed."""
    connection = db.session.connection()
    lines = connection.execute(
        sa.select(_entry.c.activity_id, _entry.c.day)
        .where(_OPEN, _entry.c.offered_at.is_(None))
        .group_by(_entry.c.activity_id, _entry.c.day)
    ).all()
    closed = 0
    for activity_id, day in lines:
        activity = db.session.get(Activity, activity_id)
        if now < booking_rules.booking_deadline(activity, day):
            continue
        entries = db.session.scalars(
            sa.select(_entry.c.id).where(
                _entry.c.activity_id == activity_id, _entry.c.day == day, _OPEN, _entry.c.offered_at.is_(None)
            )
        ).all()
        closed += sum(
            with_retries(lambda entry_id=entry_id: _lapse(entry_id, WaitingEnd.CLOSED, LIST_CLOSED, now))
            for entry_id in entries
        )
    return closed


def offer_open_places(now: datetime, activity_id: int | None = None) -> int:
    """Every day whose line waits while a place is free (a capacity raised, a place freed by a path
    that did not offer it): the places offered, one transaction per day; the offers made."""
    connection = db.session.connection()
    counter = ActivityDay.__table__
    query = (
        sa.select(_entry.c.activity_id, _entry.c.day)
        .join(Activity.__table__, Activity.__table__.c.id == _entry.c.activity_id)
        .outerjoin(
            counter, sa.and_(counter.c.activity_id == _entry.c.activity_id, counter.c.day == _entry.c.day)
        )
        .where(
            _OPEN,
            _entry.c.offered_at.is_(None),
            _entry.c.day >= now.astimezone(PARIS).date(),
            sa.or_(
                Activity.__table__.c.capacity.is_(None),
                sa.func.coalesce(counter.c.booked, 0) < Activity.__table__.c.capacity,
            ),
        )
        .group_by(_entry.c.activity_id, _entry.c.day)
    )
    if activity_id is not None:
        query = query.where(_entry.c.activity_id == activity_id)
    made = 0
    for each, day in connection.execute(query).all():
        made += with_retries(
            lambda each=each, day=day: offer_freed(db.session.get(Activity, each), [day], now)
        )
    return made


def tend_lines(now: datetime) -> dict[str, int]:
    """The waiting lists' minute (a scheduled job): offers expired passed on, lines past their
    deadline closed, free places offered. Each change in its own transaction, so a worker killed in
    the middle leaves only whole changes, which the next run continues."""
    expired = expire_offers(now)
    closed = close_lines(now)
    offered = offer_open_places(now)
    db.session.rollback()
    return {"expired": expired, "closed": closed, "offered": offered}


def promote(entry_id: int, agent: User, now: datetime) -> None:
    """An agent moves a child to the head of its day's line (a place free is offered at once)."""
    connection = db.session.connection()
    found = connection.execute(
        sa.select(_entry.c.activity_id, _entry.c.day, _entry.c.request_id, _entry.c.child_id).where(
            _entry.c.id == entry_id, _OPEN, _entry.c.offered_at.is_(None)
        )
    ).first()
    if found is None:
        raise DecisionError("Cette inscription n'est plus en attente : la liste a changé entre-temps.")
    activity_id, day, request_id, child_id = found
    # (the line's writers take turns; a second click, or two agents at once, find the child first)
    connection.execute(_touch_statement(1), {"activity": activity_id, "day_0": day})
    first = connection.execute(FIRST_IN_LINE, {"activity": activity_id, "day": day}).first()
    if first is not None and first.id == entry_id:
        raise DecisionError("Cet enfant est déjà en tête de la liste d'attente.")
    head = connection.execute(
        sa.select(sa.func.min(_entry.c.queue_key)).where(
            _entry.c.activity_id == activity_id, _entry.c.day == day, _OPEN, _entry.c.offered_at.is_(None)
        )
    ).scalar_one()
    moved = connection.execute(
        _entry.update()
        .where(_entry.c.id == entry_id, _OPEN, _entry.c.offered_at.is_(None))
        .values(queue_key=head - 1, promoted_at=now)
    )
    if moved.rowcount != 1:
        raise Conflict("the entry changed meanwhile")
    history.record(
        request_id,
        EventKind.WAITING_LIST,
        agent,
        by_town=True,
        summary=f"Placée en tête de la liste d'attente par le service : {short_date(day)}",
        at=now,
    )
    activity = db.session.get(Activity, activity_id)
    audit.record(agent, "waiting.promoted", "request", request_id, f"{activity.name}, {short_date(day)}")
    offer_freed(activity, [day], now)


def remove_from_line(entry_id: int, agent: User, reason: str, now: datetime) -> None:
    """An agent takes a child off its day's line, with a reason the family reads (the day refused with
    it); a place it was offered goes to the next in line."""
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("Indiquez le motif du retrait : la famille le lira.")
    if len(reason) > 200:
        raise DecisionError("Le motif ne doit pas dépasser 200 caractères.")
    request_id = db.session.scalar(sa.select(_entry.c.request_id).where(_entry.c.id == entry_id))
    if not _lapse(entry_id, WaitingEnd.REMOVED, reason, now, agent=agent):
        raise DecisionError("Cette inscription n'est plus sur la liste : elle a changé entre-temps.")
    audit.record(agent, "waiting.removed", "request", request_id, reason)
