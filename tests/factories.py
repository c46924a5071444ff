"""Test factories: plain callables that add rows and flush."""

from datetime import date

from portail.extensions import db
from portail.models import Child, Family, Guardian, Role, Subscription, User, utcnow
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


def make_activity(**changes):
    """An activity open every weekday of a year around today (public holidays too), deadlines
    two days before at 10:00: tests do not depend on today's date."""
    from datetime import time, timedelta

    from portail.models import Activity, DeadlineKind, OpenPeriod, ValidationMode

    start = utcnow().date() - timedelta(days=30)
    values = dict(
        name="Restauration scolaire",
        weekdays="12345",
        start_date=start,
        end_date=start + timedelta(days=400),
        capacity=120,
        validation_mode=ValidationMode.MANUAL,
        open_period=OpenPeriod.ALL,
        closed_on_public_holidays=False,
        booking_deadline_kind=DeadlineKind.DAYS_BEFORE,
        booking_deadline_days=2,
        booking_deadline_time=time(10, 0),
        booking_deadline_working_days=True,
        absence_deadline_kind=DeadlineKind.DAYS_BEFORE,
        absence_deadline_days=2,
        absence_deadline_time=time(10, 0),
        absence_deadline_working_days=True,
    )
    values.update(changes)
    activity = Activity(**values)
    db.session.add(activity)
    db.session.flush()
    return activity


def enrol(child: Child, activity) -> None:
    """Enrol a child in an activity for the whole of it."""
    from portail.models import Enrolment

    db.session.add(
        Enrolment(
            child_id=child.id,
            activity_id=activity.id,
            start_date=activity.start_date,
            end_date=activity.end_date,
        )
    )
    db.session.flush()
