"""Openings: the minute staff announce that registration opens for some activities, which the
waiting room (portail.waiting_room) queues parents for."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.activities import Activity
from portail.models.types import by_account, intpk, timestamp, utc

opening_activity = sa.Table(
    "opening_activity",
    db.metadata,
    sa.Column("opening_id", sa.ForeignKey("opening.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("activity_id", sa.ForeignKey("activity.id", ondelete="CASCADE"), primary_key=True),
)


class Opening(db.Model):
    """Registration opens at `opens_at`; parents queue from `queue_from`; an admitted parent keeps
    the fast path `fast_path_minutes`. A cancelled opening keeps its row (the audit refers to it)."""

    id: Mapped[intpk]
    opens_at: Mapped[utc]
    queue_from: Mapped[utc]
    fast_path_minutes: Mapped[int] = mapped_column(default=20)
    created_at: Mapped[timestamp]
    created_by_id: Mapped[by_account]
    cancelled_at: Mapped[utc | None]

    activities: Mapped[list[Activity]] = relationship(secondary=opening_activity, order_by=Activity.name)

    __table_args__ = (
        sa.CheckConstraint("queue_from <= opens_at", name="queue_before_opening"),
        sa.CheckConstraint("fast_path_minutes BETWEEN 1 AND 240", name="fast_path_range"),
    )

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def started(self, now: datetime) -> bool:
        """Whether parents already queue (it can no longer be changed, only cancelled)."""
        return now >= self.queue_from
