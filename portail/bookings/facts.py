"""What the booking rules read in the database: enrolments, bookings, day counters and closures.

One set of statements, for one child and activity over some days (`read`), for the planning of a
family's children over a period (read by `services.planning.cells`) and for one cell of a
subscribed parent (`CELL`, read by `family.loaders.cell_or_404`). Statements are built once
(building one costs more than running it): plain Core with bound parameters, run on the session's
connection, which does not autoflush.
"""

from collections import namedtuple
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Activity,
    ActivityDay,
    Booking,
    BookingState,
    Child,
    ClosingDay,
    Enrolment,
    Subscription,
    WaitingEntry,
)

_enrolment, _booking, _counter, _closing, _entry = (
    model.__table__ for model in (Enrolment, Booking, ActivityDay, ClosingDay, WaitingEntry)
)
_ahead = _entry.alias("ahead")
_IDS = sa.bindparam("ids", expanding=True)
_PERIOD = (sa.bindparam("start"), sa.bindparam("end"))

# The enrolments of some children that overlap a period.
ENROLMENTS = sa.select(
    _enrolment.c.child_id,
    _enrolment.c.activity_id,
    _enrolment.c.start_date,
    _enrolment.c.end_date,
    _enrolment.c.weekdays,
).where(
    _enrolment.c.child_id.in_(_IDS),
    _enrolment.c.start_date <= sa.bindparam("end"),
    _enrolment.c.end_date >= sa.bindparam("start"),
)

# The same with every column of each enrolment's activity: the planning reads its activities from
# them as plain values (no ORM loading, no query more).
ACTIVITY_COLUMNS = tuple(Activity.__table__.c)
# An activity read as plain values: attribute for attribute an Activity's columns (all the rules, the
# cells and the transitions read of one), cheaper to build and to read than an ORM object.
ActivityValues = namedtuple("ActivityValues", [column.key for column in ACTIVITY_COLUMNS])
ENROLMENTS_AND_ACTIVITIES = (
    sa.select(*ENROLMENTS.selected_columns, *ACTIVITY_COLUMNS)
    .join_from(_enrolment, Activity.__table__, Activity.__table__.c.id == _enrolment.c.activity_id)
    .where(*ENROLMENTS.whereclause.clauses)
)


def in_line(activity_id, day) -> sa.ScalarSelect:
    """How many children wait for a place on an activity's day (not those offered one)."""
    return (
        sa.select(sa.func.count())
        .select_from(_ahead)
        .where(
            _ahead.c.activity_id == activity_id,
            _ahead.c.day == day,
            _ahead.c.ended_at.is_(None),
            _ahead.c.offered_at.is_(None),
        )
        .scalar_subquery()
    )


def ahead_of(entry) -> sa.ColumnElement:
    """Whether `_ahead` is before `entry` in the same line (by key, then by id)."""
    return sa.and_(
        _ahead.c.activity_id == entry.c.activity_id,
        _ahead.c.day == entry.c.day,
        _ahead.c.ended_at.is_(None),
        _ahead.c.offered_at.is_(None),
        sa.or_(
            _ahead.c.queue_key < entry.c.queue_key,
            sa.and_(_ahead.c.queue_key == entry.c.queue_key, _ahead.c.id < entry.c.id),
        ),
    )


IN_LINE = (BookingState.WAITING, BookingState.OFFERED)  # the states of a day on its waiting list

# The open waiting-list entry of a booking's day (one at most: a partial unique index).
_mine = _entry.alias("mine")
_ITS_ENTRY = (
    _mine.c.child_id == _booking.c.child_id,
    _mine.c.activity_id == _booking.c.activity_id,
    _mine.c.day == _booking.c.day,
    _mine.c.ended_at.is_(None),
)
# The bookings of some children in some activities over a period; a day on a waiting list comes with
# the child's place there: its rank (1: the next place freed is theirs) and, offered a place, until
# when it is held (read by CASE for those days only: no query more for the planning).
BOOKINGS = sa.select(
    _booking.c.child_id,
    _booking.c.activity_id,
    _booking.c.day,
    _booking.c.state,
    _booking.c.reason,
    sa.case(
        (
            _booking.c.state.in_(IN_LINE),
            sa.select(sa.func.count(_ahead.c.id) + 1)
            .select_from(_mine)
            .outerjoin(_ahead, ahead_of(_mine))
            .where(*_ITS_ENTRY)
            .scalar_subquery(),
        )
    ),
    sa.case(
        (
            _booking.c.state == BookingState.OFFERED,
            sa.select(_mine.c.offer_expires_at).where(*_ITS_ENTRY).scalar_subquery(),
        )
    ),
).where(
    _booking.c.child_id.in_(_IDS),
    _booking.c.activity_id.in_(sa.bindparam("activities", expanding=True)),  # (the index's second column)
    _booking.c.day.between(*_PERIOD),
)
# The day counters of some activities over a period (only an activity with a capacity needs them),
# with how many children wait on the day's list.
COUNTERS = sa.select(
    _counter.c.activity_id,
    _counter.c.day,
    _counter.c.booked,
    in_line(_counter.c.activity_id, _counter.c.day),
).where(_counter.c.activity_id.in_(_IDS), _counter.c.day.between(*_PERIOD))
# The days closed by staff over a period (activity None: every activity).
CLOSINGS = sa.select(_closing.c.activity_id, _closing.c.day, _closing.c.reason).where(
    _closing.c.day.between(*_PERIOD)
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
    waiting: dict[date, int] = {}  # how many wait on the days' lists (read with the counters)
    queue: dict[date, "Place"] = {}  # the child's own place on the days' lists


class Place(NamedTuple):
    """A child's place on a day's waiting list: its rank, and until when the place offered is held."""

    rank: int
    offered_until: datetime | None


def read(child: Child, activity: Activity, start: date, end: date) -> Facts:
    """The facts of one child and activity over a period (four queries, whatever its length)."""
    db.session.flush()
    connection = db.session.connection()
    params = {"ids": [child.id], "start": start, "end": end}
    spans = [Span(*row[2:]) for row in connection.execute(ENROLMENTS, params) if row[1] == activity.id]
    states, queue = {}, {}
    for _c, _a, day, state, _reason, rank, until in connection.execute(
        BOOKINGS, params | {"activities": [activity.id]}
    ):
        states[day] = state
        if rank is not None:
            queue[day] = Place(rank, until)
    booked, waiting = {}, {}
    if activity.capacity is not None:
        for _a, day, count, in_line_then in connection.execute(COUNTERS, params | {"ids": [activity.id]}):
            booked[day], waiting[day] = count, in_line_then
    closed = {
        day: reason
        for activity_id, day, reason in connection.execute(CLOSINGS, params)
        if activity_id in (None, activity.id)
    }
    return Facts(spans, states, booked, closed, waiting, queue)


_sibling = sa.orm.aliased(Child)
_DAY = sa.bindparam("day", type_=sa.Date)
_MINE = (
    _mine.c.child_id == Child.id,
    _mine.c.activity_id == Activity.id,
    _mine.c.day == _DAY,
    _mine.c.ended_at.is_(None),
)
CHILD_COLUMNS = (Child.id, Child.first_name, Child.last_name)  # all a cell shows or needs of the child
# One planning cell in one query: a child of a family the parent is subscribed to, an activity, the
# child's rank by birth in the family (its colour: the order of Family.children), and what the rules
# read that day (enrolled, booking, counter, closure by staff), as `read` reads a period.
CELL = (
    sa.select(
        *CHILD_COLUMNS,
        *ACTIVITY_COLUMNS,
        sa.select(sa.func.count())
        .where(
            _sibling.family_id == Child.family_id,
            sa.or_(
                _sibling.birth_date < Child.birth_date,
                sa.and_(_sibling.birth_date == Child.birth_date, _sibling.id < Child.id),
            ),
        )
        .scalar_subquery(),
        sa.exists().where(
            Enrolment.child_id == Child.id,
            Enrolment.activity_id == Activity.id,
            Enrolment.start_date <= _DAY,
            Enrolment.end_date >= _DAY,
            sa.or_(
                Enrolment.weekdays.is_(None),
                Enrolment.weekdays == "",
                Enrolment.weekdays.contains(sa.bindparam("weekday")),
            ),
        ),
        Booking.state,
        Booking.reason,
        ActivityDay.booked,
        sa.select(ClosingDay.reason)
        .where(
            ClosingDay.day == _DAY,
            sa.or_(ClosingDay.activity_id == Activity.id, ClosingDay.activity_id.is_(None)),
        )
        .limit(1)
        .scalar_subquery(),
        in_line(Activity.id, _DAY),
        sa.select(sa.func.count(_ahead.c.id) + 1)
        .select_from(_mine)
        .outerjoin(_ahead, ahead_of(_mine))
        .where(*_MINE)
        .scalar_subquery(),
        sa.select(_mine.c.offer_expires_at).where(*_MINE).scalar_subquery(),
    )
    .join(
        Subscription,
        sa.and_(
            Subscription.family_id == Child.family_id,
            Subscription.user_id == sa.bindparam("user"),
            Subscription.ended_at.is_(None),
        ),
    )
    .join(Activity, Activity.id == sa.bindparam("activity"))
    .outerjoin(
        Booking,
        sa.and_(Booking.child_id == Child.id, Booking.activity_id == Activity.id, Booking.day == _DAY),
    )
    .outerjoin(ActivityDay, sa.and_(ActivityDay.activity_id == Activity.id, ActivityDay.day == _DAY))
    .where(Child.id == sa.bindparam("child"), Child.family_id == sa.bindparam("family"))
)


def of_day(day: date, enrolled: bool, state, booked, closing, waiting=0, rank=1, until=None) -> Facts:
    """The facts of one day, from the values `CELL` reads."""
    return Facts(
        [Span(day, day, None)] if enrolled else [],
        {day: state} if state else {},
        {day: booked} if booked else {},
        {day: closing} if closing else {},
        {day: waiting} if waiting else {},
        {day: Place(rank, until)} if state in IN_LINE else {},
    )
