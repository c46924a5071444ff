"""Load a family's objects through the logged-in parent's subscriptions: 404 for anything else."""

from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from flask import abort, g
from flask_login import current_user

from portail.bookings.facts import ACTIVITY_COLUMNS, CELL, CHILD_COLUMNS, ActivityValues, Facts, of_day
from portail.extensions import db
from portail.models import (
    AuthorizedContact,
    Child,
    Family,
    Subscription,
)
from portail.models.types import MAX_ID

# Built once (every family page asks it): a reused statement keeps its compiled form and cache key.
FAMILIES_OF_USER = (
    sa.select(Family)
    .join(Subscription)
    .where(Subscription.user_id == sa.bindparam("user"), Subscription.ended_at.is_(None))
    .options(sa.orm.joinedload(Family.children))  # one query for the families and their children
    .order_by(Subscription.created_at)
)


class CellTarget(NamedTuple):
    child: Child  # not in the session: its id and names only
    activity: ActivityValues  # every column, as plain values
    rank: int  # the child's rank by birth in the family
    facts: Facts  # what the rules read that day
    reason: str | None  # the reason given with the day's booking (a refusal's)


def cell_or_404(family_id: int, child_id: int, activity_id: int, day: date) -> CellTarget:
    """A child of a family the parent is subscribed to, an activity, and that day's facts, else 404.

    Plain columns, from which the child (its names only: not its health data) is built as a transient
    object, never added to the session (cheaper than the ORM's loading), and the activity read as
    plain values.
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
    child = Child(**{column.key: value for column, value in zip(CHILD_COLUMNS, values[:3], strict=True)})
    end = 3 + len(ACTIVITY_COLUMNS)
    activity = ActivityValues._make(values[3:end])
    rank, enrolled, state, reason, booked, closing, waiting, place, until = values[end:]
    facts = of_day(day, enrolled, state, booked, closing, waiting, place, until)
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
    """A row of this family (a guardian, child, contact, change request, document or invoice: any
    model with a `family_id`, a contact through its child), else 404 — another family's id too."""
    if object_id > MAX_ID:  # (a number sent in a form: no row has it)
        abort(404)
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
