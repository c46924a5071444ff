"""Load a family's objects through the logged-in parent's subscriptions: 404 for anything else."""

from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from flask import abort, g
from flask_login import current_user

from portail.extensions import db
from portail.models import (
    Activity,
    ActivityDay,
    AuthorizedContact,
    Booking,
    Child,
    ClosingDay,
    Enrolment,
    Family,
    Subscription,
)
from portail.services.bookings import Facts, Span

# Built once (every family page asks it): a reused statement keeps its compiled form and cache key.
FAMILIES_OF_USER = (
    sa.select(Family)
    .join(Subscription)
    .where(Subscription.user_id == sa.bindparam("user"), Subscription.ended_at.is_(None))
    .options(sa.orm.joinedload(Family.children))  # one query for the families and their children
    .order_by(Subscription.created_at)
)


_sibling = sa.orm.aliased(Child)
_DAY = sa.bindparam("day", type_=sa.Date)
# One planning cell in one query: a child of a family the parent is subscribed to, an activity, the
# child's rank by birth in the family (its colour: the order of Family.children), and what the rules
# read that day (enrolled, booking, counter, closure by staff), as `bookings.read_facts` reads a period.
_CHILD_COLUMNS = (Child.id, Child.first_name, Child.last_name)  # all a cell shows or needs of the child
_ACTIVITY_COLUMNS = tuple(Activity.__table__.c)
CELL = (
    sa.select(
        *_CHILD_COLUMNS,
        *_ACTIVITY_COLUMNS,
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


class CellTarget(NamedTuple):
    child: Child  # not in the session: its id and names only
    activity: Activity  # not in the session: every column
    rank: int  # the child's rank by birth in the family
    facts: Facts  # what the rules read that day
    reason: str | None  # the reason given with the day's booking (a refusal's)


def cell_or_404(family_id: int, child_id: int, activity_id: int, day: date) -> CellTarget:
    """A child of a family the parent is subscribed to, an activity, and that day's facts, else 404.

    Plain columns, from which the child (its names only: not its health data) and the activity are
    built as transient objects, never added to the session (cheaper than the ORM's loading).
    """
    db.session.flush()  # Core statements do not autoflush: see this transaction's changes
    found = (
        db.session.connection()
        .execute(
            CELL,
            {
                "user": current_user.id,
                "family": family_id,
                "child": child_id,
                "activity": activity_id,
                "day": day,
                "weekday": str(day.isoweekday()),
            },
        )
        .one_or_none()
    )
    if found is None:
        abort(404)
    values = list(found)
    child = Child(**{column.key: value for column, value in zip(_CHILD_COLUMNS, values[:3], strict=True)})
    end = 3 + len(_ACTIVITY_COLUMNS)
    activity = Activity(
        **{column.key: value for column, value in zip(_ACTIVITY_COLUMNS, values[3:end], strict=True)}
    )
    rank, enrolled, state, reason, booked, closing = values[end:]
    facts = Facts(
        [Span(day, day, None)] if enrolled else [],
        {day: state} if state else {},
        {day: booked} if booked else {},
        {day: closing} if closing else {},
    )
    return CellTarget(child, activity, rank, facts, reason)


def family_of_current_user(family_id: int) -> Family:
    """A family the parent is subscribed to, else 404.

    The same query gives the menus the parent's families (`nav_families`): one query, not two.
    """
    families = db.session.execute(FAMILIES_OF_USER, {"user": current_user.id}).unique().scalars().all()
    g.nav_families = families
    family = next((family for family in families if family.id == family_id), None)
    if family is None:
        abort(404)
    return family


def member_or_404(family: Family, model, object_id: int):
    """A guardian, child, contact or change request of this family, else 404."""
    if model is AuthorizedContact:
        found = db.session.scalar(
            sa.select(AuthorizedContact)
            .join(Child)
            .where(AuthorizedContact.id == object_id, Child.family_id == family.id)
        )
    else:
        found = db.session.get(model, object_id)
        if found is not None and found.family_id != family.id:
            found = None
    if found is None:
        abort(404)
    return found
