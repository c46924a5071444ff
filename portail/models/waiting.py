"""The waiting lists of full days: one entry per child, activity and day, in the order of the line."""

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portail.extensions import db
from portail.models.types import intpk, partial_unique_index, utc


class WaitingEnd(enum.Enum):
    """How an entry left the list."""

    CONFIRMED = "confirmed"  # the family confirmed the place offered (or the agent accepted it)
    DECLINED = "declined"  # the family refused the place offered
    EXPIRED = "expired"  # the place offered was not confirmed in time
    WITHDRAWN = "withdrawn"  # the family left the list
    REMOVED = "removed"  # an agent removed it, with a reason
    REFUSED = "refused"  # an agent refused the place offered (an activity validated by hand)
    CLOSED = "closed"  # no place freed before the booking deadline, or the day was cancelled


class WaitingEntry(db.Model):
    """A child on the waiting list of a day. The line's order is `queue_key` then `id`: the instant of
    joining (µs), made smaller than everyone's when an agent moves the entry to the head. An entry
    offered a place holds it (counted in ActivityDay.booked) until `offer_expires_at`; an ended entry
    (`ended_at`) is history. One open entry per child, activity and day (a partial unique index)."""

    id: Mapped[intpk]
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"))
    day: Mapped[date]
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("request.id", ondelete="CASCADE"), index=True)
    queue_key: Mapped[int] = mapped_column(sa.BigInteger)
    joined_at: Mapped[utc]
    promoted_at: Mapped[utc | None]
    offered_at: Mapped[utc | None]
    offer_expires_at: Mapped[utc | None]
    ended_at: Mapped[utc | None]
    end: Mapped[WaitingEnd | None] = mapped_column(sa.Enum(WaitingEnd, native_enum=False, length=10))
    reason: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.Index("ix_waiting_entry_line", "activity_id", "day", "ended_at", "queue_key"),
        partial_unique_index(
            "uq_waiting_entry_open", "child_id", "activity_id", "day", where="ended_at IS NULL"
        ),
        sa.Index("ix_waiting_entry_offers", "ended_at", "offer_expires_at"),
    )
