"""Activities kept by the town's service: an activity and its rules, its closing days, the enrolments
of a family's children; each change audited."""

from datetime import date

import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import french_date
from portail.models import Activity, ClosingDay, Enrolment, Family, User
from portail.services.audit import record
from portail.services.transactions import claim, save_form, twin


def all_activities() -> list[Activity]:
    """Every activity, by name."""
    return list(db.session.scalars(sa.select(Activity).order_by(Activity.name)))


def save_activity(activity: Activity | None, values: dict, agent: User) -> Activity:
    """Create an activity (`activity` None) or change one with `values` (its columns); audited.

    The same creation sent twice (a double click) is the first one's activity, not a second."""
    activity, written = save_form(agent, Activity, activity, values, same=("name", "start_date", "end_date"))
    if written:
        record(agent, "activity.saved", "activity", activity.id, activity.name)
    return activity


def closing_days(activity: Activity) -> list[ClosingDay]:
    """The closing days entered for an activity, by date."""
    return list(
        db.session.scalars(
            sa.select(ClosingDay).where(ClosingDay.activity_id == activity.id).order_by(ClosingDay.day)
        )
    )


def close_day(activity: Activity, day: date, reason: str, agent: User) -> None:
    """Close an activity on `day`; audited (the same day sent twice closes it once)."""
    claim(agent)  # (the same day sent twice: the second copy finds it closed)
    if twin(ClosingDay, activity_id=activity.id, day=day) is None:
        db.session.add(ClosingDay(activity_id=activity.id, day=day, reason=reason.strip()))
        record(agent, "activity.closed", "activity", activity.id, f"{french_date(day)} : {reason}")


def reopen_day(row: ClosingDay, agent: User) -> None:
    """Remove a closing day; audited."""
    claim(row)  # (removed once: a copy sent at the same moment then finds it gone)
    db.session.delete(row)
    record(agent, "activity.reopened", "activity", row.activity_id, french_date(row.day))


def enrolments_of(family: Family) -> list[Enrolment]:
    """The enrolments of a family's children, with their activity and child, by start date."""
    return list(
        db.session.scalars(
            sa.select(Enrolment)
            .where(Enrolment.child_id.in_([child.id for child in family.children]))
            .options(sa.orm.joinedload(Enrolment.activity), sa.orm.joinedload(Enrolment.child))
            .order_by(Enrolment.start_date)
        )
    )


def enrol(family: Family, child_ids: list[int], values: dict, agent: User) -> int:
    """Enrol children of the family with the same `values` (activity, dates, weekdays); audited.

    Returns how many enrolments were made (a child already enrolled so, e.g. the same form sent
    twice, is not enrolled again)."""
    claim(agent)  # (the same form sent twice: the second copy finds the enrolments)
    new = [child_id for child_id in child_ids if twin(Enrolment, child_id=child_id, **values) is None]
    for child_id in new:
        db.session.add(Enrolment(child_id=child_id, **values))
    if new:
        record(agent, "enrolment.created", "family", family.id, f"{len(new)} inscription(s)")
    return len(new)


def remove_enrolment(row: Enrolment, agent: User) -> None:
    """Remove an enrolment (its bookings stay, with their history); audited."""
    claim(row)  # (removed once: a copy sent at the same moment then finds it gone)
    db.session.delete(row)
    record(agent, "enrolment.deleted", "family", row.child.family_id, row.activity.name)
