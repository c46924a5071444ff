"""Demo registers (Pointage): the canteen's register of today for the MARTIN children and Inès
(Léa's allergy and PAI shown; Tom declared sick this morning by Claire; the DUBOIS children enrolled
without a booking, to add one who comes), yesterday's closed by the animator with Tom absent without
excuse (the month's invoice will bill it), and in the last billed month a closed register whose
unjustified absence is on the invoice."""

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.bookings import transitions
from portail.demo import activities as demo_activities
from portail.extensions import db
from portail.formatting import short_date
from portail.models import (
    Activity,
    Booking,
    BookingState,
    Child,
    Enrolment,
    Presence,
    RegisterClosing,
    User,
)
from portail.services import audit, registers, sickness


def _canteen() -> Activity:
    return db.session.scalar(sa.select(Activity).where(Activity.name == "Restauration scolaire"))


def _booked(children: list[Child], activity: Activity, day: date) -> None:
    """The children reserved that day (those not booked yet)."""
    found = set(
        db.session.scalars(
            sa.select(Booking.child_id).where(Booking.activity_id == activity.id, Booking.day == day)
        )
    )
    for child in children:
        if child.id not in found:
            transitions.seed(child.id, activity.id, [day], BookingState.RESERVED)


def _closed(activity: Activity, day: date, marks: dict[Child, Presence], by: User, at: datetime) -> None:
    """A register marked (a few minutes apart) and closed by `by` at `at`, with its audit line."""
    for minutes, (child, presence) in enumerate(marks.items()):
        tapped = at - timedelta(minutes=30 - minutes)
        registers.write_mark(activity.id, day, child.id, presence, None, by, tapped, tapped)
    db.session.add(RegisterClosing(activity_id=activity.id, day=day, closed_at=at, closed_by_id=by.id))
    audit.record(by, "register.closed", "activity", activity.id, f"{activity.name}, {short_date(day)}", at=at)
    db.session.flush()


def in_billed_month(
    month: date, lea: Child, tom: Child, ines: Child, choices: list[Activity], animator: User
) -> None:
    """Before the month is billed: the register of its last open day closed (the canteen's, or the
    holiday centre's in a month of summer), Tom absent without excuse (the invoice bills it as
    "Absences injustifiées")."""
    found = demo_activities.month_open_days(month, choices, 6)
    if found is None:
        return
    activity, days = found
    day = days[-1]
    _booked([lea, tom, ines], activity, day)
    at = datetime.combine(day, time(13, 45), tzinfo=booking_rules.PARIS)
    _closed(
        activity, day, {lea: Presence.PRESENT, tom: Presence.UNEXCUSED, ines: Presence.PRESENT}, animator, at
    )


def load(lea: Child, tom: Child, ines: Child, animator: User, now: datetime, walk_ins: list[Child]) -> None:
    """Today's canteen register (nobody marked yet) and yesterday's, closed (the last open day
    before today); `walk_ins` enrolled in the canteen without a booking (a child there without one
    is added from the register)."""
    canteen = _canteen()
    for child in walk_ins:
        db.session.add(Enrolment.whole(child, canteen))
    today = now.astimezone(booking_rules.PARIS).date()
    if booking_rules.closure(canteen, today, demo_activities.zone()) is None:
        _booked([lea, tom, ines], canteen, today)
        # Tom woke up ill: Claire declared him sick at 7:45 (or now, on a demo loaded earlier)
        morning = min(now, datetime.combine(today, time(7, 45), tzinfo=booking_rules.PARIS))
        claire = db.session.scalar(sa.select(User).where(User.email == "claire.martin@demo.fr"))
        sickness.declare(tom.family, claire, tom, today, morning, demo_activities.zone())
    before = [
        today - timedelta(days=n)
        for n in range(1, 8)
        if canteen.start_date <= today - timedelta(days=n)
        and booking_rules.closure(canteen, today - timedelta(days=n), demo_activities.zone()) is None
    ]
    if before and before[0].month == today.month:
        day = before[0]
        _booked([lea, tom, ines], canteen, day)
        at = datetime.combine(day, time(13, 50), tzinfo=booking_rules.PARIS)
        _closed(
            canteen,
            day,
            {lea: Presence.PRESENT, tom: Presence.UNEXCUSED, ines: Presence.PRESENT},
            animator,
            at,
        )
