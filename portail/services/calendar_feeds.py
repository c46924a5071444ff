"""Calendar feeds (Mon compte > Calendrier): a parent's private ICS address for the days booked of a
family, or of one of its children, which a phone's calendar subscribes to.

The address carries a random token (256 bits); the database keeps only its SHA-256, looked up by
its hash (no comparison of secrets in Python). A feed is revoked, never deleted; regenerating it
revokes the old one in the same transaction, so that the old address answers 404 at once.

What a feed holds is what anyone with its address sees: the family's name, the children's first
names, the activities and the days. Never a last name of a child, a health datum, an address, a
phone, a site (where a child can be found) or anything of another family.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import icalendar
import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Activity,
    Booking,
    BookingState,
    CalendarFeed,
    Child,
    Family,
    Subscription,
    User,
)
from portail.services.audit import record
from portail.services.transactions import claim

PRODUCT = "Portail Famille"
# The days a feed holds: two months back (what was booked last term, for the family's memory) to a
# year ahead (the school year booked at its opening).
DAYS_BACK = 60
DAYS_AHEAD = 366
# What each booking state shows in a calendar: the event's STATUS and what the title says after the
# activity (nothing: a plain reserved day). The days the child does not come (absent, sick, refused)
# have no event: a day that had one loses it at the calendar's next refresh. A day the town cancelled
# stays, marked cancelled, so that the family sees why it went. A day on a waiting list is tentative.
SHOWN = {
    BookingState.RESERVED: ("CONFIRMED", ""),
    BookingState.RESERVATION_REQUESTED: ("TENTATIVE", "Demande en attente"),
    # (still reserved until the town decides)
    BookingState.ABSENCE_REQUESTED: ("CONFIRMED", BookingState.ABSENCE_REQUESTED.label),
    BookingState.CANCELLED: ("CANCELLED", BookingState.CANCELLED.label),
    BookingState.WAITING: ("TENTATIVE", BookingState.WAITING.label),
    BookingState.OFFERED: ("TENTATIVE", "Place proposée, à confirmer"),
}


@dataclass(frozen=True)
class Feed:
    """A feed's ICS text and its validators: `etag` (a hash of the text) and `last_modified`."""

    body: bytes
    etag: str
    last_modified: datetime


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _in_force(user_id: int, family_id: int, child_id: int | None):
    """The conditions of the account's feed in force for the family (and child, or the whole family)."""
    return (
        CalendarFeed.user_id == user_id,
        CalendarFeed.family_id == family_id,
        CalendarFeed.child_id.is_(None) if child_id is None else CalendarFeed.child_id == child_id,
        CalendarFeed.revoked_at.is_(None),
    )


def _scope(child: Child | None) -> str:
    return child.first_name if child is not None else "toute la famille"


def issue(user: User, family: Family, child: Child | None, now: datetime) -> tuple[CalendarFeed, str]:
    """A new feed address for the family (or one of its children), audited; the account's feed in
    force for the same scope, if any, is revoked with it (Régénérer). Returns the feed and its token,
    which is not kept: the page shows it once.

    The same form sent twice at once: the copies take turns on the account, the second revokes the
    first's address (the one its tab shows last is the one that works)."""
    claim(user)
    revoked = db.session.execute(
        sa.update(CalendarFeed)
        .where(*_in_force(user.id, family.id, child.id if child else None))
        .values(revoked_at=now)
    ).rowcount
    raw = secrets.token_urlsafe(32)
    feed = CalendarFeed(
        user_id=user.id,
        family_id=family.id,
        child=child,
        token_hash=_digest(raw),
        created_at=now,
    )
    db.session.add(feed)
    db.session.flush()
    action = "calendar_feed.regenerated" if revoked else "calendar_feed.created"
    record(user, action, "family", family.id, _scope(child), at=now)
    return feed, raw


def revoke(feed: CalendarFeed, user: User, now: datetime) -> bool:
    """Revoke a feed (its address answers 404 from now on), audited; False if it already was (the
    same click sent twice)."""
    done = db.session.execute(
        sa.update(CalendarFeed)
        .where(CalendarFeed.id == feed.id, CalendarFeed.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    if done:
        record(user, "calendar_feed.revoked", "family", feed.family_id, _scope(feed.child), at=now)
    return bool(done)


def revoke_all(user_id: int, family_id: int, now: datetime) -> None:
    """Revoke every feed of the account for the family (its subscription ends)."""
    db.session.execute(
        sa.update(CalendarFeed)
        .where(
            CalendarFeed.user_id == user_id,
            CalendarFeed.family_id == family_id,
            CalendarFeed.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


def feeds_in_force(user: User, family_ids: list[int]) -> list[CalendarFeed]:
    """The account's feeds in force for these families, the whole family's first, then by child."""
    return list(
        db.session.scalars(
            sa.select(CalendarFeed)
            .options(sa.orm.joinedload(CalendarFeed.child))
            .where(
                CalendarFeed.user_id == user.id,
                CalendarFeed.family_id.in_(family_ids),
                CalendarFeed.revoked_at.is_(None),
            )
            .order_by(CalendarFeed.family_id, CalendarFeed.child_id.is_not(None), CalendarFeed.child_id)
        )
    )


def feed_of(user: User, feed_id: int) -> CalendarFeed | None:
    """The account's feed in force with this id (None: unknown, revoked, or another account's)."""
    return db.session.scalar(
        sa.select(CalendarFeed).where(
            CalendarFeed.id == feed_id, CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)
        )
    )


def window(today: date) -> tuple[date, date]:
    """The first and last days a feed holds."""
    return today - timedelta(days=DAYS_BACK), today + timedelta(days=DAYS_AHEAD)


def feed(token: str, today: date, domain: str) -> Feed | None:
    """The ICS of the feed whose address carries `token`: one all-day event per day booked in the
    window (`SHOWN`), in two queries whatever the number of children, activities and days. None
    when the token is unknown or revoked, or the account no longer follows the family.

    Each event's UID is its child, activity and day (at `domain`, the portal's host), so that a
    calendar updates an event rather than adding another; its DTSTAMP is when the day last changed,
    so the text changes only with the days it shows (and the ETag, its hash, with it)."""
    found = db.session.execute(
        sa.select(
            CalendarFeed.family_id,
            CalendarFeed.child_id,
            CalendarFeed.created_at,
            Family.name,
            Family.updated_at,
            Child.first_name,
        )
        .join(Family, Family.id == CalendarFeed.family_id)
        .outerjoin(
            Child, sa.and_(Child.id == CalendarFeed.child_id, Child.family_id == CalendarFeed.family_id)
        )
        .join(User, User.id == CalendarFeed.user_id)
        .where(
            CalendarFeed.token_hash == _digest(token),
            CalendarFeed.revoked_at.is_(None),
            User.disabled_at.is_(None),
            sa.exists().where(
                Subscription.user_id == CalendarFeed.user_id,
                Subscription.family_id == CalendarFeed.family_id,
                Subscription.ended_at.is_(None),
            ),
        )
    ).first()
    if found is None:
        return None
    family_id, child_id, created_at, family_name, family_updated_at, child_name = found
    first, last = window(today)
    query = (
        sa.select(
            Booking.child_id,
            Booking.activity_id,
            Booking.day,
            Booking.state,
            Booking.updated_at,
            Child.first_name,
            Activity.name,
        )
        .join(Child, Child.id == Booking.child_id)
        .join(Activity, Activity.id == Booking.activity_id)
        .where(
            Child.family_id == family_id,
            Booking.day.between(first, last),
            Booking.state.in_(list(SHOWN)),
        )
        .order_by(Booking.day, Child.birth_date, Child.id, Activity.name, Activity.id)
    )
    if child_id is not None:
        query = query.where(Booking.child_id == child_id)
    rows = db.session.execute(query).all()

    calendar = icalendar.Calendar()
    calendar.add("prodid", f"-//{PRODUCT}//{domain}//FR")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    name = f"{PRODUCT} — {family_name}"
    calendar.add("x-wr-calname", f"{name} ({child_name})" if child_name else name)
    calendar.add("x-wr-timezone", "Europe/Paris")
    # A hint to refresh twice a day (Apple and Outlook read one or the other).
    calendar.add("refresh-interval", timedelta(hours=12), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT12H")
    latest = max(created_at, family_updated_at)
    for row in rows:
        status, mark = SHOWN[row.state]
        event = icalendar.Event()
        event.add("uid", f"{row.child_id}-{row.activity_id}-{row.day.isoformat()}@{domain}")
        event.add("dtstamp", row.updated_at)
        event.add("last-modified", row.updated_at)
        event.add("dtstart", row.day)
        event.add("dtend", row.day + timedelta(days=1))
        summary = f"{row.first_name} — {row.name}"
        event.add("summary", f"{summary} ({mark})" if mark else summary)
        event.add("status", status)
        event.add("transp", "TRANSPARENT")  # a child's day does not make the parent busy
        calendar.add_component(event)
        latest = max(latest, row.updated_at)
    body = calendar.to_ical()
    return Feed(body=body, etag=hashlib.sha256(body).hexdigest(), last_modified=latest)
