"""The waiting lists as the back office reads them (Listes d'attente): the lines of the full days from a
date on, each in its order, with the day's places taken. The families' pages read a child's own rank
with its booking (bookings.facts.BOOKINGS); the order here is the same (`queue_key`, then id)."""

from collections import Counter
from datetime import date
from typing import NamedTuple

import sqlalchemy as sa

from portail.extensions import db
from portail.models import Activity, ActivityDay, Child, Family, WaitingEntry

PER_PAGE = 20  # lines (an activity's day) per page
_OPEN = WaitingEntry.ended_at.is_(None)


class Place(NamedTuple):
    """One child of a line as the page shows it; `rank` among those waiting (None: a place is offered)."""

    entry: WaitingEntry
    first_name: str
    last_name: str
    family: str
    rank: int | None


class Line(NamedTuple):
    """A day's waiting list: its activity, the places taken (those offered included), its children in order."""

    activity: Activity
    day: date
    booked: int
    places: list[Place]


def lines(activity_id: int | None, first: date, page: int) -> tuple[list[Line], int]:
    """The lines with open entries from `first` on (of one activity, or all), by day then activity,
    one page of them; and how many lines there are. Those offered a place come first, then those
    waiting by the line's order (`queue_key`, then id), ranked as bookings.facts.BOOKINGS ranks them."""
    query = (
        sa.select(WaitingEntry.activity_id, WaitingEntry.day)
        .join(Activity, Activity.id == WaitingEntry.activity_id)
        .where(_OPEN, WaitingEntry.day >= first)
        .group_by(WaitingEntry.activity_id, WaitingEntry.day, Activity.name)
    )
    if activity_id:
        query = query.where(WaitingEntry.activity_id == activity_id)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    pairs = [
        tuple(pair)
        for pair in db.session.execute(
            query.order_by(WaitingEntry.day, Activity.name, WaitingEntry.activity_id)
            .limit(PER_PAGE)
            .offset((page - 1) * PER_PAGE)
        )
    ]
    if not pairs:
        return [], total
    in_page = sa.tuple_(WaitingEntry.activity_id, WaitingEntry.day).in_(pairs)
    rows = db.session.execute(
        sa.select(WaitingEntry, Child.first_name, Child.last_name, Family.name)
        .join(Child, Child.id == WaitingEntry.child_id)
        .join(Family, Family.id == Child.family_id)
        .where(_OPEN, in_page)
        .order_by(WaitingEntry.offered_at.is_(None), WaitingEntry.queue_key, WaitingEntry.id)
    ).all()
    booked = {
        (activity, day): count
        for activity, day, count in db.session.execute(
            sa.select(ActivityDay.activity_id, ActivityDay.day, ActivityDay.booked).where(
                sa.tuple_(ActivityDay.activity_id, ActivityDay.day).in_(pairs)
            )
        )
    }
    activities = {
        activity.id: activity
        for activity in db.session.scalars(sa.select(Activity).where(Activity.id.in_({a for a, _d in pairs})))
    }
    places: dict[tuple[int, date], list[Place]] = {pair: [] for pair in pairs}
    waiting: Counter[tuple[int, date]] = Counter()
    for entry, first_name, last_name, family in rows:
        pair, rank = (entry.activity_id, entry.day), None
        if entry.offered_at is None:
            waiting[pair] += 1
            rank = waiting[pair]
        places[pair].append(Place(entry, first_name, last_name, family, rank))
    return [
        Line(activities[activity_id], day, booked.get((activity_id, day), 0), places[(activity_id, day)])
        for activity_id, day in pairs
    ], total


def activities_to_filter() -> list[Activity]:
    """The activities the page can be filtered by: those keeping a waiting list, and those whose
    lines are still open (the option switched off since)."""
    with_lines = sa.select(WaitingEntry.activity_id).where(_OPEN)
    return db.session.scalars(
        sa.select(Activity)
        .where(sa.or_(Activity.waiting_list, Activity.id.in_(with_lines)))
        .order_by(Activity.name)
    ).all()
