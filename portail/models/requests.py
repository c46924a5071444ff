"""Reservation and absence requests: a request and its lines (one per day), its history, who read it,
and the decision digests."""

import enum
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.activities import Activity
from portail.models.families import Child
from portail.models.types import by_account, intpk, timestamp, utc


class RequestKind(enum.Enum):
    RESERVATION = "reservation"
    ABSENCE = "absence"


class LineState(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    WAITING = "waiting"  # on the day's waiting list (models.waiting), or offered its place


class Request(db.Model):
    """One submission of a parent: a single cell or a period, with one line per day."""

    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"))
    kind: Mapped[RequestKind] = mapped_column(sa.Enum(RequestKind, native_enum=False, length=12))
    created_by_id: Mapped[by_account]
    created_at: Mapped[timestamp] = mapped_column(index=True)
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    period_weekdays: Mapped[str | None] = mapped_column(sa.String(7))

    lines: Mapped[list["RequestLine"]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="RequestLine.day"
    )
    events: Mapped[list["RequestEvent"]] = relationship(
        cascade="all, delete-orphan", order_by="RequestEvent.at"
    )
    child: Mapped[Child] = relationship()
    activity: Mapped[Activity] = relationship()


class RequestLine(db.Model):
    id: Mapped[intpk]
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("request.id", ondelete="CASCADE"), index=True)
    day: Mapped[date]
    state: Mapped[LineState] = mapped_column(
        sa.Enum(LineState, native_enum=False, length=10), default=LineState.PENDING
    )
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    decided_by_id: Mapped[by_account]
    decided_at: Mapped[utc | None] = mapped_column(index=True)  # the digests read by window
    message: Mapped[str | None] = mapped_column(sa.Text)  # the town's optional message with its decision

    request: Mapped[Request] = relationship(back_populates="lines")


class EventKind(enum.Enum):
    CREATED = "created"
    DECISION = "decision"
    MESSAGE = "message"
    WITHDRAWAL = "withdrawal"
    WAITING_LIST = "waiting_list"  # a move on a day's waiting list: a place offered, confirmed, lapsed…


class RequestEvent(db.Model):
    """One line of a request's history: its creation, a decision, a message, a withdrawal."""

    id: Mapped[intpk]
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("request.id", ondelete="CASCADE"))
    kind: Mapped[EventKind] = mapped_column(sa.Enum(EventKind, native_enum=False, length=12))
    author_id: Mapped[by_account]
    # Written by the town (a decision or a message from staff): counts as new for the parents.
    by_town: Mapped[bool] = mapped_column(default=False)
    at: Mapped[timestamp]
    summary: Mapped[str] = mapped_column(sa.Text, default="")  # e.g. "Refusée : 12/01/2027, 13/01/2027"
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    message: Mapped[str | None] = mapped_column(sa.Text)

    author: Mapped[User | None] = relationship()

    __table_args__ = (sa.Index("ix_request_event_request_at", "request_id", "at"),)


class RequestRead(db.Model):
    """When a parent last opened a request's history (the "nouveau(x) message(s)" flag is per parent)."""

    request_id: Mapped[int] = mapped_column(sa.ForeignKey("request.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    seen_at: Mapped[timestamp]


class DigestWindow(enum.Enum):
    NOON = "13h"  # decisions after 18:00:00 the day before, up to 13:00:00
    EVENING = "18h"  # decisions after 13:00:00, up to 18:00:00


class Digest(db.Model):
    """One "accusé de traitement" mail per account, day and window: the unique key is the guard
    that makes retries, killed workers and concurrent schedulers send it once."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    day: Mapped[date]
    window: Mapped[DigestWindow] = mapped_column(sa.Enum(DigestWindow, native_enum=False, length=10))
    decisions: Mapped[int]
    outbox_id: Mapped[int | None] = mapped_column(sa.ForeignKey("outbox_message.id", ondelete="SET NULL"))
    created_at: Mapped[timestamp]

    __table_args__ = (sa.UniqueConstraint("user_id", "day", "window", name="uq_digest_user_day_window"),)


class DecisionNotice(db.Model):
    """The mail of one decision on a request, for a parent who chose a mail per decision: unique on
    the request and the decision's instant, so a retried job, a second scheduler or a restarted
    worker sends it once."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("request.id", ondelete="CASCADE"))
    decided_at: Mapped[utc]
    outbox_id: Mapped[int | None] = mapped_column(sa.ForeignKey("outbox_message.id", ondelete="SET NULL"))
    created_at: Mapped[timestamp]

    __table_args__ = (sa.UniqueConstraint("request_id", "decided_at", name="uq_decision_notice_request_at"),)


class DigestRun(db.Model):
    """A window whose digests have all been written to the outbox (a missed window has no row yet)."""

    day: Mapped[date] = mapped_column(primary_key=True)
    window: Mapped[DigestWindow] = mapped_column(
        sa.Enum(DigestWindow, native_enum=False, length=10), primary_key=True
    )
    mails: Mapped[int] = mapped_column(default=0)
    completed_at: Mapped[timestamp]
