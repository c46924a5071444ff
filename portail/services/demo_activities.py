"""Demo activities of 'Ville de Démo' (PRODUCT §12), enrolments for the current school year, and
bookings in every state so that the planning shows each of them."""

from datetime import date, time, timedelta

import sqlalchemy as sa

from portail.extensions import db
from portail.models import (
    Activity,
    Booking,
    BookingState,
    ClosingDay,
    DeadlineKind,
    Enrolment,
    EventKind,
    Family,
    LineState,
    OpenPeriod,
    Request,
    RequestKind,
    RequestLine,
    User,
    ValidationMode,
    utcnow,
)
from portail.services import booking_rules, bookings, requests


def school_year(today: date) -> tuple[date, date]:
    """1 September to the first days of July of the school year containing `today`."""
    first = today.year if today.month >= 8 else today.year - 1
    return date(first, 9, 1), date(first + 1, 7, 3)


def make_activities(start: date, end: date) -> list[Activity]:
    """The five activities of the town, for a school year: canteen, morning and evening care,
    Wednesday centre, holiday centre (PRODUCT §12)."""
    common = dict(start_date=start, end_date=end)
    canteen = Activity(
        name="Restauration scolaire",
        site="Groupe scolaire Jules Ferry",
        weekdays="1245",
        capacity=120,
        validation_mode=ValidationMode.MANUAL,
        open_period=OpenPeriod.SCHOOL_DAYS,
        booking_deadline_days=2,
        booking_deadline_time=time(10),
        booking_deadline_working_days=True,
        absence_deadline_days=2,
        absence_deadline_time=time(10),
        absence_deadline_working_days=True,
        **common,
    )
    morning = Activity(
        name="Accueil du matin",
        site="Groupe scolaire Jules Ferry",
        weekdays="1245",
        capacity=60,
        validation_mode=ValidationMode.AUTOMATIC,
        open_period=OpenPeriod.SCHOOL_DAYS,
        booking_deadline_days=1,
        booking_deadline_time=time(18),
        booking_deadline_working_days=False,
        absence_deadline_days=1,
        absence_deadline_time=time(18),
        absence_deadline_working_days=False,
        **common,
    )
    evening = Activity(
        name="Accueil du soir",
        site="Groupe scolaire Jules Ferry",
        weekdays="1245",
        capacity=60,
        validation_mode=ValidationMode.AUTOMATIC,
        open_period=OpenPeriod.SCHOOL_DAYS,
        booking_deadline_days=1,
        booking_deadline_time=time(12),
        booking_deadline_working_days=True,
        absence_deadline_days=1,
        absence_deadline_time=time(12),
        absence_deadline_working_days=True,
        **common,
    )
    wednesday = Activity(
        name="Centre de loisirs du mercredi",
        site="Centre de loisirs des Tilleuls",
        weekdays="3",
        capacity=24,
        validation_mode=ValidationMode.AUTOMATIC,
        open_period=OpenPeriod.SCHOOL_DAYS,
        booking_deadline_kind=DeadlineKind.PREVIOUS_WEEK,
        booking_deadline_weekday=4,
        booking_deadline_time=time(12),
        absence_deadline_kind=DeadlineKind.PREVIOUS_WEEK,
        absence_deadline_weekday=4,
        absence_deadline_time=time(12),
        **common,
    )
    holidays = Activity(
        name="Centre de loisirs des vacances",
        site="Centre de loisirs des Tilleuls",
        weekdays="12345",
        capacity=40,
        validation_mode=ValidationMode.MANUAL,
        open_period=OpenPeriod.HOLIDAYS,
        booking_deadline_days=14,
        booking_deadline_time=time(12),
        booking_deadline_working_days=False,
        absence_deadline_days=7,
        absence_deadline_time=time(12),
        absence_deadline_working_days=False,
        start_date=start,
        end_date=end + timedelta(days=50),
    )
    return [canteen, morning, evening, wednesday, holidays]


def load(families: dict[str, Family], parent: User) -> None:
    """Five activities with realistic rules, enrolments and bookings (the caller commits)."""
    activities = make_activities(*school_year(utcnow().date()))
    canteen, morning, evening, wednesday, holidays = activities
    db.session.add_all(activities)
    db.session.flush()
    martin, bernard = families["MRTNA52846"], families["BRNRD73925"]
    lea, tom = martin.children
    ines = bernard.children[0]
    for child, enrolled in (
        (lea, [canteen, evening, wednesday, holidays]),
        (tom, [canteen, morning, wednesday]),
        (ines, [canteen, wednesday]),
    ):
        for activity in enrolled:
            db.session.add(
                Enrolment(
                    child_id=child.id,
                    activity_id=activity.id,
                    start_date=activity.start_date,
                    end_date=activity.end_date,
                )
            )
    db.session.flush()
    _bookings(martin, lea, tom, canteen, evening, parent)
    _histories(bernard, ines, canteen)


def _histories(bernard: Family, ines, canteen: Activity) -> None:
    """Each demo request gets its history; the town answered two of them (Claire sees "nouveau(x)
    message(s)"), and the BERNARD family has a period request waiting in the staff queue."""
    db.session.flush()
    agent = db.session.scalar(sa.select(User).where(User.email == "agent@demo.fr"))
    now = utcnow()
    for request in db.session.scalars(sa.select(Request).order_by(Request.id)):
        days = [line.day for line in request.lines]
        author = db.session.get(User, request.created_by_id)
        requests.record(
            request.id,
            EventKind.CREATED,
            author,
            by_town=False,
            summary=f"Demande : {len(days)} jour{'s' if len(days) > 1 else ''}",
            at=now - timedelta(days=3),
        )
        refused = [line.day for line in request.lines if line.state is LineState.REFUSED]
        if refused:
            for line in request.lines:
                line.decided_by_id, line.message = (
                    agent.id,
                    "Le service est complet ce jour-là ; nous vous prévenons si une place se libère.",
                )
            requests.record(
                request.id,
                EventKind.DECISION,
                agent,
                by_town=True,
                summary=f"Refusée : {requests.short_days(refused)}",
                reason="Complet",
                message="Le service est complet ce jour-là ; nous vous prévenons si une place se libère.",
                at=now - timedelta(days=1),
            )
    sophie = db.session.scalar(sa.select(User).where(User.email == "sophie.bernard@demo.fr"))
    today = now.date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 + 14)
    friday = monday + timedelta(days=11)
    days = [
        monday + timedelta(days=i)
        for i in range(12)
        if str((monday + timedelta(days=i)).isoweekday()) in "14"
    ]
    days = [day for day in days if booking_rules.closure(canteen, day, "C") is None]
    try:
        bookings.submit(
            bernard.id,
            sophie,
            ines,
            canteen,
            RequestKind.RESERVATION,
            days,
            now,
            "C",
            period=(monday, friday, "14"),
        )
    except bookings.BookingError:
        pass  # no open day in those two weeks (school holidays): nothing to ask


def _bookings(martin: Family, lea, tom, canteen: Activity, evening: Activity, parent: User) -> None:
    """Reserved days for the coming weeks, and one day in each other state."""
    today = utcnow().date()
    days = [today + timedelta(days=offset) for offset in range(0, 35)]
    open_days = [
        d for d in days if booking_rules.closure(canteen, d, "C") is None
    ]  # no school holidays, no public holidays
    request = Request(
        family_id=martin.id,
        child_id=lea.id,
        activity_id=canteen.id,
        kind=RequestKind.RESERVATION,
        created_by_id=parent.id,
    )
    db.session.add(request)
    for day in open_days:
        if bookings.take_place(canteen, day):
            db.session.add(
                Booking(child_id=lea.id, activity_id=canteen.id, day=day, state=BookingState.RESERVED)
            )
            request.lines.append(RequestLine(day=day, state=LineState.ACCEPTED, decided_at=utcnow()))
    later = [d for d in open_days if d > today + timedelta(days=7)]
    if len(later) >= 4:
        absent, absence_asked = later[0], later[1]
        for booking in db.session.new:
            if isinstance(booking, Booking) and booking.day == absent:
                booking.state = BookingState.ABSENT
            if isinstance(booking, Booking) and booking.day == absence_asked:
                booking.state, booking.previous_state = BookingState.ABSENCE_REQUESTED, BookingState.RESERVED
        asked = Request(
            family_id=martin.id,
            child_id=lea.id,
            activity_id=canteen.id,
            kind=RequestKind.ABSENCE,
            created_by_id=parent.id,
        )
        asked.lines.append(RequestLine(day=absence_asked))
        db.session.add(asked)
        pending = Request(
            family_id=martin.id,
            child_id=tom.id,
            activity_id=canteen.id,
            kind=RequestKind.RESERVATION,
            created_by_id=parent.id,
        )
        pending.lines.append(RequestLine(day=later[2]))
        refused = Request(
            family_id=martin.id,
            child_id=tom.id,
            activity_id=canteen.id,
            kind=RequestKind.RESERVATION,
            created_by_id=parent.id,
        )
        refused.lines.append(
            RequestLine(day=later[3], state=LineState.REFUSED, reason="Complet", decided_at=utcnow())
        )
        db.session.add_all([pending, refused])
        db.session.add(
            Booking(
                child_id=tom.id,
                activity_id=canteen.id,
                day=later[2],
                state=BookingState.RESERVATION_REQUESTED,
            )
        )
        db.session.add(
            Booking(
                child_id=tom.id,
                activity_id=canteen.id,
                day=later[3],
                state=BookingState.REFUSED,
                reason="Complet",
            )
        )
    strike = next(
        (d for d in days if d > today + timedelta(days=14) and str(d.isoweekday()) in evening.weekdays), None
    )
    if strike:
        db.session.add(ClosingDay(activity_id=evening.id, day=strike, reason="réunion des animateurs"))
