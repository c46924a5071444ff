"""Back-office: Listes d'attente. The lines of the full days from today on, each in its order, per
activity and day; an agent moves a child to the head of its line, or removes it with a reason the
family reads (the transitions: bookings.promote, bookings.remove_from_line)."""

from collections import Counter
from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portail import bookings
from portail.extensions import db
from portail.formatting import french_day, today_in_paris
from portail.gestion.routes import bp
from portail.models import Activity, ActivityDay, Child, Family, WaitingEntry, utcnow
from portail.services.outbox import rollback

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


@bp.get("/listes-attente")
def waiting_lists():
    """Listes d'attente: the lines of the days from today on, in order, with the day's places; by activity."""
    activity_id = request.args.get("activite", type=int)
    page = max(request.args.get("page", 1, type=int), 1)
    found, total = lines(activity_id, today_in_paris(utcnow()), page)
    with_lines = sa.select(WaitingEntry.activity_id).where(_OPEN)
    activities = db.session.scalars(
        sa.select(Activity)
        .where(sa.or_(Activity.waiting_list, Activity.id.in_(with_lines)))
        .order_by(Activity.name)
    ).all()
    return render_template(
        "gestion/waiting_lists.html",
        lines=found,
        total=total,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        activity_id=activity_id,
        activities=activities,
    )


@bp.post("/listes-attente/<int:entry_id>/en-tete")
def waiting_promote(entry_id: int):
    """Passer en tête: the child first in its day's line (a place free is offered to it at once)."""
    entry = db.get_or_404(WaitingEntry, entry_id)
    child, line = _names(entry)
    if not _act(lambda: bookings.promote(entry_id, current_user, utcnow())):
        return redirect(_back())
    if db.session.get(WaitingEntry, entry_id).offered_at is not None:
        flash(f"Une place était libre ({line}) : elle est proposée à {child}.", "success")
    else:
        flash(f"{child} est en tête de la liste d'attente ({line}).", "success")
    return redirect(_back())


@bp.post("/listes-attente/<int:entry_id>/retirer")
def waiting_remove(entry_id: int):
    """Retirer de la liste, with a reason the family reads: the day refused with it, a place held for
    the child passed to the next in line."""
    entry = db.get_or_404(WaitingEntry, entry_id)
    (child, line), reason = _names(entry), request.form.get("motif", "")
    if _act(lambda: bookings.remove_from_line(entry_id, current_user, reason, utcnow())):
        flash(f"{child} n'est plus sur la liste d'attente ({line}) : la famille lira le motif.", "success")
    return redirect(_back())


def _act(change) -> bool:
    """Run a change of a line (retried on a concurrent write, committed); whether it was made. A change
    the line no longer allows (a double click, another agent first) or a missing reason is flashed."""
    try:
        bookings.with_retries(change)
    except bookings.DecisionError as error:
        rollback()
        flash(str(error), "error")
        return False
    return True


def _names(entry: WaitingEntry) -> tuple[str, str]:
    """The child of an entry and its line (activity and day), as the flash messages name them."""
    child = db.session.get(Child, entry.child_id)
    activity = db.session.get(Activity, entry.activity_id)
    return child.full_name, f"{activity.name}, {french_day(entry.day)}"


def _back() -> str:
    """The list as the agent filtered it (`retour`), never another site's page."""
    home = url_for("gestion.waiting_lists")
    back = request.form.get("retour") or home
    return back if back.startswith(home) else home
