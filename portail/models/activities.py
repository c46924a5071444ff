"""Activities, enrolments, closing days, day counters and bookings (the requests that change them: models.requests)."""

import enum
from datetime import date, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portail.extensions import db
from portail.models.families import Child
from portail.models.types import Labelled, intpk, timestamp, utcnow


class ValidationMode(enum.Enum):
    MANUAL = "manuelle"
    AUTOMATIC = "automatique"


class OpenPeriod(enum.Enum):
    SCHOOL_DAYS = "school_days"  # closed during school holidays (canteen, périscolaire)
    HOLIDAYS = "holidays"  # open only during school holidays (centre de loisirs vacances)
    ALL = "all"


class DeadlineKind(enum.Enum):
    DAYS_BEFORE = "days_before"  # N (working) days before, at HH:MM
    PREVIOUS_WEEK = "previous_week"  # on a weekday of the previous week, at HH:MM


class BookingState(Labelled):
    RESERVATION_REQUESTED = "reservation_requested", "Réservation demandée"
    ABSENCE_REQUESTED = "absence_requested", "Absence demandée"
    RESERVED = "reserved", "Réservé"
    REFUSED = "refused", "Refusée"
    ABSENT = "absent", "Absent"
    SICK = "sick", "Enfant malade"  # declared by the family on the day or the day before
    CANCELLED = "cancelled", "Annulé par la mairie"  # a strike, a closure: never billed
    # The waiting list of a full day (models.waiting: the order and the offer): never billed, no place
    # taken while waiting; a place freed is held for the family that is offered it.
    WAITING = "waiting", "Liste d'attente"
    OFFERED = "offered", "Place proposée"


class Activity(db.Model):
    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(sa.String(100))
    site: Mapped[str | None] = mapped_column(sa.String(100))
    # ISO weekdays the activity opens, Monday = 1: "1245" for Mon, Tue, Thu, Fri
    weekdays: Mapped[str] = mapped_column(sa.String(7))
    start_date: Mapped[date]
    end_date: Mapped[date]
    capacity: Mapped[int | None]
    validation_mode: Mapped[ValidationMode] = mapped_column(
        sa.Enum(ValidationMode, native_enum=False, length=12)
    )
    open_period: Mapped[OpenPeriod] = mapped_column(
        sa.Enum(OpenPeriod, native_enum=False, length=12), default=OpenPeriod.SCHOOL_DAYS
    )
    closed_on_public_holidays: Mapped[bool] = mapped_column(default=True)
    booking_deadline_kind: Mapped[DeadlineKind] = mapped_column(
        sa.Enum(DeadlineKind, native_enum=False, length=15), default=DeadlineKind.DAYS_BEFORE
    )
    booking_deadline_days: Mapped[int] = mapped_column(default=2)
    booking_deadline_time: Mapped[time] = mapped_column(default=time(10, 0))
    booking_deadline_working_days: Mapped[bool] = mapped_column(default=True)
    booking_deadline_weekday: Mapped[int | None]  # ISO weekday for PREVIOUS_WEEK
    absence_deadline_kind: Mapped[DeadlineKind] = mapped_column(
        sa.Enum(DeadlineKind, native_enum=False, length=15), default=DeadlineKind.DAYS_BEFORE
    )
    absence_deadline_days: Mapped[int] = mapped_column(default=2)
    absence_deadline_time: Mapped[time] = mapped_column(default=time(10, 0))
    absence_deadline_working_days: Mapped[bool] = mapped_column(default=True)
    absence_deadline_weekday: Mapped[int | None]
    # A full day offers its waiting list (an optional maximum length); a place freed is held for the
    # first in line this long (never past the day's booking deadline).
    waiting_list: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    waiting_list_max: Mapped[int | None]
    offer_hold_minutes: Mapped[int] = mapped_column(default=120, server_default="120")

    __table_args__ = (
        sa.CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_positive"),
        sa.CheckConstraint("start_date <= end_date", name="date_range"),
    )


class ClosingDay(db.Model):
    """A day an activity (or every activity, when activity_id is null) is closed."""

    id: Mapped[intpk]
    activity_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("activity.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(sa.String(100))
    # The service cancellation that closed the day (undone with it); None: a closing day entered as such.
    cancellation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_cancellation.id", ondelete="CASCADE"), index=True
    )


class Enrolment(db.Model):
    """Inscription: what makes a child's days of an activity bookable."""

    id: Mapped[intpk]
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    start_date: Mapped[date]
    end_date: Mapped[date]
    weekdays: Mapped[str | None] = mapped_column(sa.String(7))  # None: every open day

    child: Mapped[Child] = relationship()
    activity: Mapped[Activity] = relationship()

    __table_args__ = (sa.CheckConstraint("start_date <= end_date", name="date_range"),)

    @classmethod
    def whole(cls, child: Child, activity: Activity) -> "Enrolment":
        """An enrolment in every open day of the activity, from its first day to its last."""
        return cls(
            child_id=child.id,
            activity_id=activity.id,
            start_date=activity.start_date,
            end_date=activity.end_date,
        )


class ActivityDay(db.Model):
    """How many children are booked on a day of an activity: the capacity guard."""

    activity_id: Mapped[int] = mapped_column(
        sa.ForeignKey("activity.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(primary_key=True)
    booked: Mapped[int] = mapped_column(default=0)

    __table_args__ = (sa.CheckConstraint("booked >= 0", name="booked_positive"),)


class Booking(db.Model):
    """The state of one child, activity and day (no row: enrolled, nothing booked)."""

    id: Mapped[intpk]
    child_id: Mapped[int] = mapped_column(sa.ForeignKey("child.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(sa.ForeignKey("activity.id", ondelete="CASCADE"))
    day: Mapped[date]
    state: Mapped[BookingState] = mapped_column(sa.Enum(BookingState, native_enum=False, length=25))
    # What the day was before a pending request (to restore it on withdrawal or refusal).
    previous_state: Mapped[BookingState | None] = mapped_column(
        sa.Enum(BookingState, native_enum=False, length=25)
    )
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    # The service cancellation that made the day "Annulé par la mairie" (previous_state: what it gives back).
    cancellation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("service_cancellation.id", ondelete="SET NULL"), index=True
    )
    updated_at: Mapped[timestamp] = mapped_column(onupdate=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("child_id", "activity_id", "day", name="uq_booking_child_activity_day"),
        sa.Index("ix_booking_activity_day", "activity_id", "day"),
    )
