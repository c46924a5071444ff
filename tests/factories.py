"""Test factories: plain callables that add rows and flush (`canteen` and `school_year_activity` only
build an activity, for the rules tested without a database; `submit_request` goes through the booking
transitions), and the data the test modules share: the canteen's calendar, files to upload, the
planning's forms, a valid sign-up form."""

import io
from datetime import UTC, date, datetime, time, timedelta

from PIL import Image

from portail.demo.documents import blank_pdf
from portail.extensions import db
from portail.models import (
    Activity,
    BillingRun,
    Booking,
    BookingState,
    Child,
    DeadlineKind,
    Enrolment,
    Family,
    Guardian,
    OpenPeriod,
    Request,
    RequestKind,
    RequestLine,
    Role,
    Subscription,
    Tariff,
    User,
    ValidationMode,
    utcnow,
)
from portail.services import passwords
from portail.services.families import generate_subscriber_code

PASSWORD = "cheval-agrafe-batterie-correcte"
_HASH = passwords.hash_password(PASSWORD)


def make_user(
    email: str = "parent@example.fr",
    role: Role = Role.PARENT,
    activated: bool = True,
    first_name: str = "Camille",
    last_name: str = "DUPONT",
) -> User:
    user = User(
        email=email,
        first_name=first_name,
        last_name=last_name,
        role=role,
        password_hash=_HASH,
        activated_at=utcnow() if activated else None,
    )
    db.session.add(user)
    db.session.flush()
    return user


def make_family(
    name: str = "Famille DUPONT",
    children: tuple = (("Léa", date(2016, 3, 14)),),
    guardians: tuple = (("Camille", "DUPONT"),),
    code: str | None = None,
) -> Family:
    family = Family(name=name, subscriber_code=code or generate_subscriber_code())
    for position, (first, last) in enumerate(guardians, start=1):
        family.guardians.append(Guardian(position=position, first_name=first, last_name=last))
    for first, born in children:
        family.children.append(Child(first_name=first, last_name=name.split()[-1], birth_date=born))
    db.session.add(family)
    db.session.flush()
    return family


def subscribe(user: User, family: Family) -> Subscription:
    subscription = Subscription(user_id=user.id, family_id=family.id)
    db.session.add(subscription)
    db.session.flush()
    return subscription


# --- activities and enrolments ------------------------------------------------------------------

# A Thursday and a moment well before its deadlines, in the canteen's school year.
NOW = datetime(2026, 10, 1, 8, tzinfo=UTC)
THURSDAY = date(2027, 3, 4)


def at_utc(year, month, day, hour, minute=0, second=0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def canteen(**changes) -> Activity:
    """Restauration scolaire: Mon/Tue/Thu/Fri, J-2 10:00 working days, capacity 120 (not added)."""
    values = dict(
        name="Restauration scolaire",
        weekdays="1245",
        start_date=date(2026, 9, 1),
        end_date=date(2027, 7, 3),
        capacity=120,
        validation_mode=ValidationMode.MANUAL,
        open_period=OpenPeriod.SCHOOL_DAYS,
        closed_on_public_holidays=True,
        booking_deadline_kind=DeadlineKind.DAYS_BEFORE,
        booking_deadline_days=2,
        booking_deadline_time=time(10, 0),
        booking_deadline_working_days=True,
        booking_deadline_weekday=None,
        absence_deadline_kind=DeadlineKind.DAYS_BEFORE,
        absence_deadline_days=2,
        absence_deadline_time=time(10, 0),
        absence_deadline_working_days=True,
        absence_deadline_weekday=None,
    )
    values.update(changes)
    return Activity(**values)


def school_year_activity(**changes) -> Activity:
    """The canteen open every weekday of a year around today (not added)."""
    start = utcnow().date() - timedelta(days=30)
    # Open every weekday of the year, public holidays included, so that tests do not depend on today's date.
    values = dict(
        start_date=start,
        end_date=start + timedelta(days=400),
        weekdays="12345",
        open_period=OpenPeriod.ALL,
        closed_on_public_holidays=False,
    )
    values.update(changes)
    return canteen(**values)


def next_weekday(iso: int, weeks_ahead: int = 2) -> date:
    """A day of the given ISO weekday a few weeks ahead (always before the deadlines)."""
    today = utcnow().date() + timedelta(weeks=weeks_ahead)
    return today + timedelta(days=(iso - today.isoweekday()) % 7)


def make_activity(**changes) -> Activity:
    """An activity open every weekday of a year around today (public holidays too), deadlines
    two days before at 10:00: tests do not depend on today's date."""
    activity = school_year_activity(**changes)
    db.session.add(activity)
    db.session.flush()
    return activity


def enrol(child: Child, activity) -> None:
    """Enrol a child in an activity for the whole of it."""
    db.session.add(Enrolment.whole(child, activity))
    db.session.flush()


def enrolled_child(activity, name="Léa", family_name=None):
    """A new family ("Famille NAME" unless `family_name`) with one child enrolled in the activity:
    (family, child)."""
    family = make_family(name=family_name or f"Famille {name.upper()}", children=((name, date(2016, 3, 14)),))
    child = family.children[0]
    enrol(child, activity)
    return family, child


# --- tariffs, bookings, requests, billing runs ---------------------------------------------------

# October 2026, billed in the billing tests; the default tariff's brackets (quotient ceiling, cents).
OCTOBER = date(2026, 10, 1)
PRICES = ((622, 100), (1000, 330), (1500, 420), (None, 510))


def add_tariff(
    activity, prices=PRICES, surcharge=0, late_absences=True, valid_from=date(2026, 9, 1), valid_until=None
) -> Tariff:
    from portail.services import billing

    brackets = billing.make_brackets(list(prices))
    tariff = Tariff(
        activity_id=activity.id,
        valid_from=valid_from,
        valid_until=valid_until,
        brackets=brackets,
        late_surcharge_cents=surcharge,
        bill_late_absences=late_absences,
    )
    db.session.add(tariff)
    db.session.flush()
    return tariff


def priced(activity, **tariff) -> Activity:
    """The activity added, with a tariff (`add_tariff`'s options)."""
    db.session.add(activity)
    db.session.flush()
    add_tariff(activity, **tariff)
    return activity


def book(child, activity, days, state=BookingState.RESERVED) -> None:
    """A booking of the child on each day, in `state`."""
    for day in days:
        db.session.add(Booking(child_id=child.id, activity_id=activity.id, day=day, state=state))
    db.session.flush()


def make_request(family, child, activity, kind, days=(), state=None, at=None) -> Request:
    """A request for `days`, made at `at` (now if None); its lines in `state` (decided an hour after
    `at` unless None, the line's default)."""
    request = Request(family_id=family.id, child_id=child.id, activity_id=activity.id, kind=kind)
    if at is not None:
        request.created_at = at
    for day in days:
        line = RequestLine(day=day)
        if state is not None:
            line.state, line.decided_at = state, at + timedelta(hours=1)
        request.lines.append(line)
    db.session.add(request)
    db.session.flush()
    return request


def submit_request(family, user, child, activity, kind, days, now=NOW, zone="C", **options) -> Request:
    """The request that `user` makes through the booking transitions (`options`: `period`…)."""
    from portail import bookings

    submitted = bookings.submit(family.id, user, child, activity, kind, list(days), now, zone, **options)
    return db.session.get(Request, submitted.request_id)


def pending_request(
    activity, kind=RequestKind.RESERVATION, name="Léa", email="parent@example.fr", days=(THURSDAY,)
):
    """A request of a new family's parent (`name`, `email`) for its enrolled child, through the
    transitions, committed with its mails (for an absence the days are booked first):
    (request, child, parent)."""
    from portail.services.outbox import commit

    family, child = enrolled_child(activity, name)
    user = make_user(email=email, first_name=name)
    subscribe(user, family)
    if kind is RequestKind.ABSENCE:
        book(child, activity, days)
    request = submit_request(family, user, child, activity, kind, days)
    commit()
    return request, child, user


def run_month(month=OCTOBER, batch=None) -> BillingRun:
    """Bill the month now (the run committed first, as the job reads it)."""
    from portail.services import billing
    from portail.services.outbox import commit

    run = BillingRun(month=month)
    db.session.add(run)
    commit()
    return billing.run(run.id, batch=batch)


# --- files and forms -----------------------------------------------------------------------------


PDF = blank_pdf()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (64, 48), (20, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "AppareilSecret"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def cell_form(child, activity, day, action=None) -> dict:
    """The form of one planning cell (a click: `action` reserve, absence, withdraw…)."""
    form = {"enfant": child.id, "activite": activity.id, "jour": day.isoformat()}
    if action:
        form["action"] = action
    return form


def period_form(child, activity, first, last, weekdays=("1", "4"), kind="reservation") -> dict:
    """The period form: the `weekdays` (ISO numbers) from `first` to `last`, reservation or absence."""
    return {
        "enfant": str(child.id),
        "activite": str(activity.id),
        "du": first.isoformat(),
        "au": last.isoformat(),
        "jours": list(weekdays),
        "type": kind,
    }


# A valid sign-up form.
VALID = {
    "civility": "Mme",
    "last_name": "Durand",
    "first_name": "Alice",
    "email": "Alice.Durand@Example.fr",
    "phone": "06 12 34 56 78",
    "password": PASSWORD,
    "password_confirm": PASSWORD,
    "accept": "y",
}
