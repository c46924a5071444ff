"""Openings of registration: staff announce, change before it starts, or cancel the minute bookings
open for some activities; the waiting room (portail.waiting_room) reads their schedule from Redis,
which this module publishes after each commit."""

import logging
import time
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import current_app

from portail.extensions import db
from portail.models import Activity, Opening, User, utcnow
from portail.services import audit
from portail.services.transactions import claim, twin
from portail.waiting_room import store

log = logging.getLogger(__name__)

MAX_FAST_PATH = 240  # minutes
KEEP_IN_SCHEDULE = timedelta(days=1)  # an opening stays in the schedule a day after it opened


class OpeningError(ValueError):
    """An opening that cannot be saved, with the French reason."""


def announce(
    agent: User,
    activity_ids: list[int],
    opens_at: datetime,
    queue_from: datetime,
    fast_path_minutes: int = 20,
    now: datetime | None = None,
) -> Opening:
    """Announce an opening (audited); the caller commits, and the schedule is published then.

    The same announcement sent twice (a double click, two tabs) is the first one's opening: copies
    take turns on the agent's row and find it (`transactions.twin`), as the back office's forms do."""
    if agent is not None:
        claim(agent)
        copy = twin(Opening, opens_at=opens_at, queue_from=queue_from, cancelled_at=None)
        if copy is not None:
            return copy
    opening = Opening(created_by_id=agent.id if agent else None)
    _set(opening, activity_ids, opens_at, queue_from, fast_path_minutes, now or utcnow())
    db.session.add(opening)
    db.session.flush()
    audit.record(agent, "opening.announced", "opening", opening.id, _detail(opening))
    _publish_after_commit()
    return opening


def update(
    opening: Opening,
    agent: User,
    activity_ids: list[int],
    opens_at: datetime,
    queue_from: datetime,
    fast_path_minutes: int,
    now: datetime | None = None,
) -> Opening:
    """Change an opening before parents start queuing (audited)."""
    now = now or utcnow()
    if reason := frozen(opening, now):
        raise OpeningError(reason)
    _set(opening, activity_ids, opens_at, queue_from, fast_path_minutes, now)
    db.session.flush()
    audit.record(agent, "opening.updated", "opening", opening.id, _detail(opening))
    _publish_after_commit()
    return opening


def frozen(opening: Opening, now: datetime) -> str | None:
    """Why an opening can no longer be changed (cancelled, or its queue started), else None."""
    if opening.cancelled:
        return "Cette ouverture est annulée : elle ne peut plus être modifiée."
    if opening.started(now):
        return "La file d'attente de cette ouverture a commencé : elle ne peut plus être modifiée."
    return None


def cancel(opening: Opening, agent: User, now: datetime | None = None) -> None:
    """Cancel an opening (parents already queuing go through at once); cancelling twice is harmless."""
    if opening.cancelled:
        return
    opening.cancelled_at = now or utcnow()
    db.session.flush()
    audit.record(agent, "opening.cancelled", "opening", opening.id, _detail(opening))
    _publish_after_commit()


def listed(now: datetime) -> list[Opening]:
    """The openings of the back office's list: those to come first, then the last 60 days'."""
    since = now - timedelta(days=60)
    rows = db.session.scalars(
        sa.select(Opening)
        .where(Opening.opens_at >= since)
        .options(sa.orm.selectinload(Opening.activities))
        .order_by(Opening.opens_at.desc())
    )
    return list(rows)


def schedule(now: datetime) -> list[dict]:
    """What the waiting room needs of the openings not cancelled, from a day ago on (epoch seconds)."""
    rows = db.session.execute(
        sa.select(Opening.id, Opening.queue_from, Opening.opens_at, Opening.fast_path_minutes).where(
            Opening.cancelled_at.is_(None), Opening.opens_at >= now - KEEP_IN_SCHEDULE
        )
    )
    return [
        {
            "id": row.id,
            "queue_from": row.queue_from.timestamp(),
            "opens_at": row.opens_at.timestamp(),
            "fast_path": row.fast_path_minutes * 60,
        }
        for row in rows
    ]


def publish(now: datetime | None = None) -> bool:
    """Write the schedule to Redis now; False (logged) when Redis cannot be reached (the waiting
    room reads it again from the database within a minute)."""
    from portail.waiting_room.gate import room

    try:
        store.publish_schedule(room().redis(), schedule(now or utcnow()))
    except redis.exceptions.RedisError as error:
        log.warning("openings: schedule not published (%s)", error)
        return False
    room().schedule_read = float("-inf")  # this process reads it again at once
    return True


def queue_figures(opening: Opening, now: float | None = None) -> store.Figures | None:
    """The booking line's tickets, parents admitted, parents in visit now (a guarded page in the
    last WAITING_ROOM_IDLE_AFTER seconds) and pace, or None when Redis does not answer."""
    from portail.waiting_room.gate import room

    now = time.time() if now is None else now
    try:
        return store.figures(room().redis(), opening.id, now - current_app.config["WAITING_ROOM_IDLE_AFTER"])
    except redis.exceptions.RedisError:
        return None


def _set(
    opening: Opening,
    activity_ids: list[int],
    opens_at: datetime,
    queue_from: datetime,
    fast_path_minutes: int,
    now: datetime,
) -> None:
    if opens_at.tzinfo is None or queue_from.tzinfo is None:
        raise ValueError("opening times must be aware datetimes")
    if opens_at <= now:
        raise OpeningError("L'heure d'ouverture doit être dans le futur.")
    if queue_from > opens_at:
        raise OpeningError("La file d'attente doit ouvrir avant l'heure d'ouverture.")
    if not 1 <= fast_path_minutes <= MAX_FAST_PATH:
        raise OpeningError(f"La durée d'accès doit être comprise entre 1 et {MAX_FAST_PATH} minutes.")
    ids = sorted(set(activity_ids))
    activities = list(db.session.scalars(sa.select(Activity).where(Activity.id.in_(ids)))) if ids else []
    if not activities or len(activities) != len(ids):
        raise OpeningError("Choisissez au moins une activité existante.")
    opening.activities = activities
    opening.opens_at = opens_at
    opening.queue_from = queue_from
    opening.fast_path_minutes = fast_path_minutes


def _detail(opening: Opening) -> str:
    names = ", ".join(activity.name for activity in opening.activities)
    return f"{names} — {opening.opens_at.isoformat()}"


def _publish_after_commit() -> None:
    """Publish the schedule once the transaction is committed (never an opening rolled back)."""
    session = db.session()
    app = current_app._get_current_object()

    def after_commit(committed) -> None:
        committed.info.pop("openings_publish", None)
        with app.app_context():
            publish()

    if not session.info.get("openings_publish"):
        session.info["openings_publish"] = True
        sa.event.listen(session, "after_commit", after_commit, once=True)
