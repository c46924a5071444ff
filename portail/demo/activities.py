"""Demo activities of 'Ville de Démo' (PRODUCT §12), enrolments, and bookings in every state so
that the planning shows each of them.

The demo may be loaded on any day of the year (`make run`), in the holidays or the summer too: its
activities run from the school year of the months it bills to the one of the coming school weeks,
and what it books or asks for falls on the next days the activity is open."""

from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app

from portail import bookings
from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.models import (
    Activity,
    ClosingDay,
    DeadlineKind,
    Enrolment,
    Family,
    OpenPeriod,
    OutboxMessage,
    OutboxStatus,
    Request,
    RequestKind,
    User,
    ValidationMode,
    utcnow,
)
from portail.services import request_desk


def school_year(today: date) -> tuple[date, date]:
    """1 September to the first days of July of the school year containing `today`."""
    first = today.year if today.month >= 8 else today.year - 1
    return date(first, 9, 1), date(first + 1, 7, 3)


def demo_period(today: date) -> tuple[date, date]:
    """The period of the demo's activities: from the start of the school year of the older month
    billed (the past months it bills may be the summer's) to the end of the school year of the
    coming ten weeks (in June and in the summer, the next one: the parents book the rentrée)."""
    from portail.demo import billing as demo_billing

    older = demo_billing.billed_months(today)[0]
    ahead = today + timedelta(weeks=10)
    first = older.year if older.month >= 9 else older.year - 1
    last = ahead.year + 1 if ahead.month >= 7 else ahead.year
    return date(first, 9, 1), date(last, 7, 3)


def zone() -> str:
    """The town's school holiday zone (PORTAIL_SCHOOL_ZONE), the one its plannings show."""
    return current_app.config.get("SCHOOL_ZONE", "C")


def open_days(activity: Activity, start: date, count: int) -> list[date]:
    """The next `count` days from `start` on when the activity is open (no school holidays for the
    school-day activities, no public holidays), within its period."""
    found, day = [], start
    while len(found) < count and day <= activity.end_date:
        if booking_rules.closure(activity, day, zone()) is None:
            found.append(day)
        day += timedelta(days=1)
    return found


def month_open_days(
    month: date, choices: list[Activity], at_least: int
) -> tuple[Activity, list[date]] | None:
    """The first of these activities open at least `at_least` days in the month (the canteen, else
    the holiday centre in a month of summer), with those days; None if none is."""
    last = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    for activity in choices:
        days = [day for day in open_days(activity, month.replace(day=1), 31) if day <= last]
        if len(days) >= at_least:
            return activity, days
    return None


JULES_FERRY, TILLEULS = "Groupe scolaire Jules Ferry", "Centre de loisirs des Tilleuls"
THEATRE = "Atelier théâtre du mercredi"  # the sixth activity: two places and a waiting list


def days_before(days: int, hour: int, working_days: bool) -> dict:
    """A deadline `days` (working) days before the day, at `hour`."""
    return dict(kind=DeadlineKind.DAYS_BEFORE, days=days, time=time(hour), working_days=working_days)


def previous_week(weekday: int, hour: int) -> dict:
    """A deadline on an ISO weekday of the week before the day, at `hour`."""
    return dict(kind=DeadlineKind.PREVIOUS_WEEK, weekday=weekday, time=time(hour))


MANUAL, AUTOMATIC = ValidationMode.MANUAL, ValidationMode.AUTOMATIC
SCHOOL_DAYS, HOLIDAYS = OpenPeriod.SCHOOL_DAYS, OpenPeriod.HOLIDAYS
# name, site, ISO weekdays, capacity, validation, open period, booking deadline, absence deadline
# (None: the same as the booking deadline)
ACTIVITIES = [
    ("Restauration scolaire", JULES_FERRY, "1245", 120, MANUAL, SCHOOL_DAYS, days_before(2, 10, True), None),
    ("Accueil du matin", JULES_FERRY, "1245", 60, AUTOMATIC, SCHOOL_DAYS, days_before(1, 18, False), None),
    ("Accueil du soir", JULES_FERRY, "1245", 60, AUTOMATIC, SCHOOL_DAYS, days_before(1, 12, True), None),
    ("Centre de loisirs du mercredi", TILLEULS, "3", 24, AUTOMATIC, SCHOOL_DAYS, previous_week(4, 12), None),
    (
        "Centre de loisirs des vacances",
        TILLEULS,
        "12345",
        40,
        MANUAL,
        HOLIDAYS,
        days_before(14, 12, False),
        days_before(7, 12, False),
    ),
]
# The holiday centre is also open in the summer after the school year.
SUMMER = timedelta(days=50)


def make_activities(start: date, end: date) -> list[Activity]:
    """The five activities of the town, for a school year: canteen, morning and evening care,
    Wednesday centre, holiday centre (PRODUCT §12)."""
    return [
        Activity(
            name=name,
            site=site,
            weekdays=weekdays,
            capacity=capacity,
            validation_mode=validation,
            open_period=period,
            start_date=start,
            end_date=end + SUMMER if period is HOLIDAYS else end,
            **{f"booking_deadline_{key}": value for key, value in booking.items()},
            **{f"absence_deadline_{key}": value for key, value in (absence or booking).items()},
        )
        for name, site, weekdays, capacity, validation, period, booking, absence in ACTIVITIES
    ]


def load(families: dict[str, Family], parent: User) -> None:
    """Five activities with realistic rules, enrolments and bookings (the caller commits)."""
    now = utcnow()
    activities = make_activities(*demo_period(now.astimezone(booking_rules.PARIS).date()))
    canteen, morning, evening, wednesday, holidays = activities
    db.session.add_all(activities)
    db.session.flush()
    martin, bernard = families["MRTNA52846"], families["BRNRD73925"]
    lea, tom = martin.children
    ines = bernard.children[0]
    for child, enrolled in (
        (lea, [canteen, evening, wednesday, holidays]),
        (tom, [canteen, morning, wednesday, holidays]),
        (ines, [canteen, wednesday, holidays]),
    ):
        for activity in enrolled:
            db.session.add(Enrolment.whole(child, activity))
    db.session.flush()
    agent = db.session.scalar(sa.select(User).where(User.email == "agent@demo.fr"))
    _bookings(martin, lea, tom, canteen, evening, parent, agent, now)
    sophie = db.session.scalar(sa.select(User).where(User.email == "sophie.bernard@demo.fr"))
    _period_request(bernard, ines, canteen, sophie, now)
    theatre = make_theatre(*demo_period(now.astimezone(booking_rules.PARIS).date()))
    db.session.add(theatre)
    db.session.flush()
    _waiting_list(martin, bernard, theatre, parent, sophie, now)


def make_theatre(start: date, end: date) -> Activity:
    """The Wednesday drama workshop: two places, a waiting list, a place freed held a day (never
    past the booking deadline, the day before at 18:00)."""
    booking = days_before(1, 18, False)
    return Activity(
        name=THEATRE,
        site=TILLEULS,
        weekdays="3",
        capacity=2,
        validation_mode=AUTOMATIC,
        open_period=SCHOOL_DAYS,
        start_date=start,
        end_date=end,
        waiting_list=True,
        offer_hold_minutes=24 * 60,
        **{f"booking_deadline_{key}": value for key, value in booking.items()},
        **{f"absence_deadline_{key}": value for key, value in booking.items()},
    )


def _waiting_list(
    martin: Family, bernard: Family, theatre: Activity, claire: User, sophie: User, now
) -> None:
    """The workshop's next two open Wednesdays are full (Tom and Inès); Léa is first on the waiting
    list of the first; on the second, Sophie declared Inès absent an hour ago, and the place was
    offered to Léa at once (its mail sent to Claire and Julien)."""
    lea, tom = martin.children
    ines = bernard.children[0]
    for child in (lea, tom, ines):
        db.session.add(Enrolment.whole(child, theatre))
    db.session.flush()
    morning = now - timedelta(hours=1)
    start = now.astimezone(booking_rules.PARIS).date() + timedelta(days=2)
    first, second = [
        day for day in open_days(theatre, start, 20) if booking_rules.booking_deadline(theatre, day) > now
    ][:2]
    for day in (first, second):
        _ask(bernard, ines, theatre, RequestKind.RESERVATION, [day], sophie, morning - timedelta(days=1))
        _ask(martin, tom, theatre, RequestKind.RESERVATION, [day], claire, morning - timedelta(days=1))
        bookings.submit(
            martin.id, claire, lea, theatre, RequestKind.RESERVATION, [day], morning, zone(), waiting=True
        )
        sent_then("booking_receipt", morning)
    bookings.submit(bernard.id, sophie, ines, theatre, RequestKind.ABSENCE, [second], morning, zone())
    sent_then("booking_receipt", morning)
    sent_then("waiting_offer", morning)


def paris_time(now: datetime, days_ago: int, at: time) -> datetime:
    """A moment of the demo's past: `days_ago` days before today (Paris), at a Paris wall-clock time."""
    day = now.astimezone(booking_rules.PARIS).date() - timedelta(days=days_ago)
    return datetime.combine(day, at, booking_rules.PARIS).astimezone(UTC)


def _ask(
    family: Family,
    child,
    activity: Activity,
    kind: RequestKind,
    days: list[date],
    user: User,
    at: datetime,
    period=None,
):
    """A parent's request made at `at` through the booking service, as it happened then: its
    history, its date and its receipt (sent at that time) all say `at`."""
    request_id = bookings.submit(
        family.id, user, child, activity, kind, days, at, zone(), period=period
    ).request_id
    sent_then("booking_receipt", at)
    return db.session.get(Request, request_id)


def sent_then(template: str, at: datetime) -> None:
    """The mails just queued by a demo event of the past went out at that time (not when the demo
    is loaded, days later)."""
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.template == template, OutboxMessage.status == OutboxStatus.PENDING)
        .values(status=OutboxStatus.SENT, attempts=1, created_at=at, sent_at=at)
    )


def _period_request(bernard: Family, ines, canteen: Activity, sophie: User, now: datetime) -> None:
    """Sophie BERNARD asked yesterday evening for Inès's canteen on Mondays and Thursdays for two
    weeks: the first two school weeks from the third week on (never a holiday fortnight)."""
    asked_at = paris_time(now, 1, time(18, 20))
    today = now.astimezone(booking_rules.PARIS).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 + 14)
    for _week in range(20):
        friday = monday + timedelta(days=11)
        days = [
            monday + timedelta(days=i)
            for i in range(12)
            if str((monday + timedelta(days=i)).isoweekday()) in "14"
            and booking_rules.closure(canteen, monday + timedelta(days=i), zone()) is None
        ]
        if len(days) == 4:
            break
        monday += timedelta(days=7)
    else:
        return  # (no two open weeks left in the school year)
    _ask(
        bernard, ines, canteen, RequestKind.RESERVATION, days, sophie, asked_at, period=(monday, friday, "14")
    )


def _bookings(
    martin: Family, lea, tom, canteen: Activity, evening: Activity, parent: User, agent: User, now: datetime
) -> None:
    """Claire's requests of the last days, each with the history of what happened and when: Léa's
    canteen for the coming school weeks (accepted; after the holidays when they are on), one absence
    accepted and one waiting, Tom's day waiting and another refused yesterday at 12:45 with a
    message she has not read yet."""
    today = now.astimezone(booking_rules.PARIS).date()
    asked_at = paris_time(now, 3, time(9, 30))
    school_days = open_days(canteen, today, 20)  # five school weeks of canteen
    if not school_days:
        return
    month = _ask(martin, lea, canteen, RequestKind.RESERVATION, school_days, parent, asked_at)
    bookings.decide([line.id for line in month.lines], True, agent, paris_time(now, 2, time(10, 15)))
    request_desk.mark_read(month, parent, paris_time(now, 2, time(19, 0)))
    booked = {line.day for line in month.lines}
    later = [d for d in school_days if d > today + timedelta(days=7) and d in booked]
    if len(later) >= 4:
        absent, absence_asked = later[0], later[1]
        absence = _ask(
            martin, lea, canteen, RequestKind.ABSENCE, [absent], parent, paris_time(now, 2, time(20, 5))
        )
        bookings.decide([absence.lines[0].id], True, agent, paris_time(now, 1, time(9, 40)))
        request_desk.mark_read(absence, parent, paris_time(now, 1, time(21, 0)))
        _ask(
            martin,
            lea,
            canteen,
            RequestKind.ABSENCE,
            [absence_asked],
            parent,
            paris_time(now, 1, time(21, 10)),
        )
        _ask(martin, tom, canteen, RequestKind.RESERVATION, [later[2]], parent, asked_at)
        refused = _ask(martin, tom, canteen, RequestKind.RESERVATION, [later[3]], parent, asked_at)
        bookings.decide(
            [refused.lines[0].id],
            False,
            agent,
            paris_time(now, 1, time(12, 45)),
            reason="Complet",
            message="Le service est complet ce jour-là ; nous vous prévenons si une place se libère.",
        )
    for strike in open_days(evening, today + timedelta(days=15), 1):  # a day it would be open
        db.session.add(ClosingDay(activity_id=evening.id, day=strike, reason="réunion des animateurs"))
