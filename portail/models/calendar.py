"""Calendar feeds: a parent's private ICS address for a family's (or one child's) booked days."""

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.families import Child, Family
from portail.models.types import intpk, partial_unique_index, timestamp, utc


class CalendarFeed(db.Model):
    """One private feed address of a parent account: the whole family's days, or one child's.

    Only the SHA-256 of the token is kept (the address carries the token itself, shown once):
    a copy of the database gives no working address. Revoked, never deleted (a regenerated
    feed is a new row; the old token finds a revoked row, and answers 404)."""

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[timestamp]
    revoked_at: Mapped[utc | None]

    family: Mapped[Family] = relationship()
    child: Mapped[Child | None] = relationship()

    __table_args__ = (
        # One feed in force per account, family and child; the whole family's (no child) has its own
        # index, NULLs never being equal in a unique one.
        partial_unique_index(
            "uq_calendar_feed_child",
            "user_id",
            "family_id",
            "child_id",
            where="revoked_at IS NULL AND child_id IS NOT NULL",
        ),
        partial_unique_index(
            "uq_calendar_feed_family", "user_id", "family_id", where="revoked_at IS NULL AND child_id IS NULL"
        ),
    )
