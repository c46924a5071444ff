"""The service's day: what the registers say (who was there), their closing, the services the town
cancelled (a strike, a closure), the days a family declared a child sick, and the daily mails sent
once."""

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.accounts import User
from portail.models.activities import Activity
from portail.models.documents import Document
from portail.models.families import Child
from portail.models.types import Labelled, by_account, intpk, partial_unique_index, timestamp, utc


class Presence(Labelled):
    PRESENT = "present", "Présent"
    EXCUSED = "excused", "Absence justifiée"
    UNEXCUSED = "unexcused", "Absence injustifiée"


# The reasons an animator gives for an excused absence (the register's list).
EXCUSE_REASONS = ["Maladie", "Certificat médical", "Grève", "Raison familiale", "Sortie scolaire", "Autre"]


class Attendance(db.Model):
    """What the register says of one child, activity and day (no row: not marked yet).

    `marked_at` is when the animator tapped (a mark queued offline arrives later with its own time):
    the latest tap wins, and the same mark sent twice changes nothing."""

    id: Mapped[intpk]
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"))
    day: Mapped[date]
    presence: Mapped[Presence] = mapped_column(sa.Enum(Presence, native_enum=False, length=10))
    reason: Mapped[str | None] = mapped_column(sa.String(60))
    marked_at: Mapped[utc]
    marked_by_id: Mapped[by_account]
    recorded_at: Mapped[timestamp]

    child: Mapped[Child] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("child_id", "activity_id", "day", name="uq_attendance_child_activity_day"),
        sa.Index("ix_attendance_activity_day", "activity_id", "day"),
    )


class RegisterClosing(db.Model):
    """A register closed for the day: its marks are what billing uses; read-only for animators."""

    activity_id: Mapped[int] = mapped_column(
        sa.ForeignKey("activity.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(primary_key=True)
    closed_at: Mapped[timestamp]
    closed_by_id: Mapped[by_account]

    closed_by: Mapped[User | None] = relationship()


class ServiceCancellation(db.Model):
    """A service the town does not provide (a strike, a closure, a teacher absent) on an activity's
    days: every reserved day in it is "Annulé par la mairie", never billed; undone, they come back."""

    id: Mapped[intpk]
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    first_day: Mapped[date]
    last_day: Mapped[date]
    reason: Mapped[str] = mapped_column(sa.String(100))
    created_by_id: Mapped[by_account]
    created_at: Mapped[timestamp]
    undone_at: Mapped[utc | None]
    undone_by_id: Mapped[by_account]

    activity: Mapped[Activity] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys="ServiceCancellation.created_by_id")
    undone_by: Mapped[User | None] = relationship(foreign_keys="ServiceCancellation.undone_by_id")

    __table_args__ = (
        sa.CheckConstraint("first_day <= last_day", name="date_range"),
        # The same cancellation saved twice (a double click, two tabs) is one.
        partial_unique_index(
            "uq_cancellation_in_force", "activity_id", "first_day", "last_day", where="undone_at IS NULL"
        ),
    )


class SickDeclaration(db.Model):
    """A family's "Enfant malade" for a child and day (its reserved activities that day), with the
    medical certificate sent, if any (a piece justificative)."""

    id: Mapped[intpk]
    family_id: Mapped[int] = mapped_column(sa.ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"))
    day: Mapped[date]
    declared_by_id: Mapped[by_account]
    declared_at: Mapped[timestamp]
    document_id: Mapped[int | None] = mapped_column(sa.ForeignKey("document.id", ondelete="SET NULL"))

    child: Mapped[Child] = relationship()
    document: Mapped[Document | None] = relationship()

    __table_args__ = (sa.UniqueConstraint("child_id", "day", name="uq_sick_declaration_child_day"),)


class DailyMail(db.Model):
    """A mail sent once a day (the kitchen's headcounts): the row is taken before it is queued."""

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    sent_at: Mapped[timestamp]
