"""Service cancellations (a strike, an exceptional closure, a teacher absent): an agent cancels an
activity's days, and undoes it if the service runs after all.

Cancelling is one transaction: the cancellation (unique while in force), a closing day on each day
the activity would have been open (no request is taken on it), every day a child was to attend
"Annulé par la mairie" with the reason (`bookings.cancel_days`: pending requests decided, what each
day was kept), the audit row, one mail per parent account listing its children's cancelled days,
and a billing run for each past month already billed for a family concerned (its credit note).
Undoing it gives each day still cancelled by it back, removes its closing days, and mails and
re-bills the same way.

The capacity counters (ActivityDay) are left as they are: a cancelled day is closed, so no one can
take its places, and an undo finds the reserved children's places still counted.
"""

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from portail import bookings
from portail.bookings import rules as booking_rules
from portail.bookings.transitions import CANCELLABLE
from portail.extensions import db
from portail.formatting import french_date
from portail.models import (
    Activity,
    BillingRun,
    Booking,
    BookingState,
    Child,
    ClosingDay,
    ServiceCancellation,
    Subscription,
    User,
)
from portail.services import audit
from portail.services.billing import runs
from portail.services.outbox import queue_mails
from portail.services.transactions import claim
from portail.urls import public_url

# The reasons an agent chooses from; "Autre" needs a précision.
REASONS = ["Grève", "Fermeture exceptionnelle", "Enseignant absent", "Autre"]
# A cancellation is a strike day or a closure of some weeks, not a school year.
MAX_DAYS = 92
# The days a family is told about: those a child was to attend, or asked to (not an absence).
EXPECTED = (BookingState.RESERVED, BookingState.RESERVATION_REQUESTED)


class CancellationError(Exception):
    """A cancellation that cannot be saved, with what to correct (in French)."""


class Impact(NamedTuple):
    """What a cancellation would take: the open days it closes, the children's days, children, families."""

    open_days: list[date]
    days: int
    children: int
    families: int


class Outcome(NamedTuple):
    """A cancellation saved or undone (`done` False: a copy sent at the same moment did it), and the
    billing runs queued for the past months to credit, to hand to the worker after the commit."""

    cancellation: ServiceCancellation
    done: bool
    runs: list[BillingRun]


def reason_of(choice: str, detail: str | None) -> str:
    """The reason shown to families: the chosen one, with its précision ("Autre": the précision alone)."""
    detail = (detail or "").strip()
    if choice == "Autre":
        return detail
    return f"{choice} ({detail})" if detail else choice


def check_period(first: date, last: date) -> None:
    """A period an agent may cancel, else CancellationError."""
    if last < first:
        raise CancellationError("Le dernier jour doit être le même que le premier ou après.")
    if (last - first).days >= MAX_DAYS:
        raise CancellationError(f"Une annulation couvre au plus {MAX_DAYS} jours : faites-en plusieurs.")


NOTHING_TO_CANCEL = "L'activité n'ouvre aucun jour sur cette période (fermée, vacances ou jour férié) : il n'y a rien à annuler."


def impact(activity: Activity, first: date, last: date, zone: str) -> Impact:
    """What cancelling the activity from `first` to `last` would take (three queries)."""
    check_period(first, last)
    rows = db.session.execute(
        sa.select(Booking.child_id, Child.family_id)
        .join(Child, Child.id == Booking.child_id)
        .where(
            Booking.activity_id == activity.id,
            Booking.day.between(first, last),
            Booking.state.in_(CANCELLABLE),
        )
    ).all()
    open_days = _open_days(activity, first, last, zone)
    if not open_days:
        raise CancellationError(NOTHING_TO_CANCEL)
    return Impact(
        open_days,
        len(rows),
        len({child_id for child_id, _family in rows}),
        len({family_id for _child, family_id in rows}),
    )


def _open_days(activity: Activity, first: date, last: date, zone: str) -> list[date]:
    """The days the activity would be open from `first` to `last` (not closed by the calendar or by
    a closing day already entered)."""
    closed = dict(
        db.session.execute(
            sa.select(ClosingDay.day, ClosingDay.reason).where(
                sa.or_(ClosingDay.activity_id == activity.id, ClosingDay.activity_id.is_(None)),
                ClosingDay.day.between(first, last),
            )
        ).all()
    )
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [day for day in days if booking_rules.closure(activity, day, zone, closed) is None]


def cancel(
    activity: Activity, first: date, last: date, reason: str, agent: User, now: datetime, zone: str
) -> Outcome:
    """Cancel the activity's service from `first` to `last` (see the module); audited.

    The same cancellation sent twice (a double click, two tabs, at the same moment) is saved once:
    the copies take turns on the activity's row and the second finds the first's (`done` False).
    One overlapping another in force: CancellationError (undo the other first)."""
    check_period(first, last)
    reason = reason.strip()
    if not reason:
        raise CancellationError("Précisez le motif de l'annulation.")
    claim(activity)
    for other in db.session.scalars(
        sa.select(ServiceCancellation).where(
            ServiceCancellation.activity_id == activity.id,
            ServiceCancellation.undone_at.is_(None),
            ServiceCancellation.first_day <= last,
            ServiceCancellation.last_day >= first,
        )
    ):
        if (other.first_day, other.last_day) == (first, last):
            return Outcome(other, False, [])
        raise CancellationError(
            f"Une annulation est déjà en vigueur pour {activity.name} {period_text(other)} : "
            "rétablissez-la d'abord, ou choisissez d'autres jours."
        )
    open_days = _open_days(activity, first, last, zone)
    if not open_days:
        raise CancellationError(NOTHING_TO_CANCEL)
    cancellation = ServiceCancellation(
        activity_id=activity.id,
        first_day=first,
        last_day=last,
        reason=reason,
        created_by_id=agent.id,
        created_at=now,
    )
    db.session.add(cancellation)
    db.session.flush()
    closing = [
        {"activity_id": activity.id, "day": day, "reason": reason, "cancellation_id": cancellation.id}
        for day in open_days
    ]
    if closing:
        db.session.execute(sa.insert(ClosingDay.__table__), closing)
    taken = bookings.cancel_days(cancellation, agent, now)
    audit.record(
        agent,
        "cancellation.created",
        "activity",
        activity.id,
        f"{activity.name}, {period_text(cancellation)} : {reason} ({_counted(len(taken))})",
    )
    expected = [(day.child_id, day.day) for day in taken if day.was in EXPECTED]
    queued = runs.rebill({day.child_id for day in taken}, [day.day for day in taken], agent, now)
    _mail("service_cancelled", cancellation, activity, expected, credit=bool(queued))
    return Outcome(cancellation, True, queued)


def undo(cancellation: ServiceCancellation, agent: User, now: datetime) -> Outcome:
    """Undo a cancellation: its days still "Annulé par la mairie" back to what they were, its closing
    days removed, audited; the families whose children are expected again are mailed. Undone
    twice (a double click): the second finds it undone (`done` False)."""
    if cancellation.undone_at is not None:
        return Outcome(cancellation, False, [])
    claim(
        cancellation, undone_at=None
    )  # (a copy sent at the same moment: this one runs again, finds it undone)
    activity = db.session.get(Activity, cancellation.activity_id)
    restored = bookings.restore_days(cancellation)
    db.session.execute(sa.delete(ClosingDay).where(ClosingDay.cancellation_id == cancellation.id))
    cancellation.undone_at, cancellation.undone_by_id = now, agent.id
    audit.record(
        agent,
        "cancellation.undone",
        "activity",
        activity.id,
        f"{activity.name}, {period_text(cancellation)} : {cancellation.reason} ({_counted(len(restored))})",
    )
    expected = [(child_id, day) for child_id, day, state in restored if state is BookingState.RESERVED]
    queued = runs.rebill(
        {child_id for child_id, _d, _s in restored}, [d for _c, d, _s in restored], agent, now
    )
    _mail("service_restored", cancellation, activity, expected, credit=bool(queued))
    return Outcome(cancellation, True, queued)


def recent(limit: int = 50) -> list[ServiceCancellation]:
    """The cancellations, the latest days first, with their activity and agents (one query)."""
    return list(
        db.session.scalars(
            sa.select(ServiceCancellation)
            .options(
                sa.orm.joinedload(ServiceCancellation.activity),
                sa.orm.joinedload(ServiceCancellation.created_by),
                sa.orm.joinedload(ServiceCancellation.undone_by),
            )
            .order_by(ServiceCancellation.first_day.desc(), ServiceCancellation.id.desc())
            .limit(limit)
        )
    )


def period_text(cancellation: ServiceCancellation) -> str:
    """The cancellation's days in words (`period_words`)."""
    return period_words(cancellation.first_day, cancellation.last_day)


def period_words(first: date, last: date) -> str:
    """ "le lundi 7 décembre 2026" for a day, "du 7 au 11 décembre 2026", "du 30 novembre au 4 décembre
    2026" for a period."""
    if first == last:
        return f"le {french_date(first, weekday=True)}"
    if (first.year, first.month) == (last.year, last.month):
        return f"du {first.day}{'er' if first.day == 1 else ''} au {french_date(last)}"
    return f"du {french_date(first, year=first.year != last.year)} au {french_date(last)}"


def _counted(days: int) -> str:
    return f"{days} jour{'s' if days > 1 else ''} d'enfant{'s' if days > 1 else ''}"


def _mail(
    template: str,
    cancellation: ServiceCancellation,
    activity: Activity,
    days: list[tuple[int, date]],
    credit: bool,
) -> None:
    """One mail per parent account (active subscription, activated account) of the families of
    these children's days, listing its children's days (three queries)."""
    if not days:
        return
    by_child: dict[int, list[date]] = defaultdict(list)
    for child_id, day in days:
        by_child[child_id].append(day)
    children = db.session.execute(
        sa.select(Child.id, Child.family_id, Child.first_name, Child.last_name)
        .where(Child.id.in_(list(by_child)))
        .order_by(Child.first_name, Child.id)
    ).all()
    by_family: dict[int, list[dict]] = defaultdict(list)
    for child_id, family_id, first_name, last_name in children:
        by_family[family_id].append(
            {
                "name": f"{first_name} {last_name}",
                "days": [day.isoformat() for day in sorted(by_child[child_id])],
            }
        )
    accounts = db.session.execute(
        sa.select(Subscription.family_id, User.email, User.first_name)
        .join(User, User.id == Subscription.user_id)
        .where(
            Subscription.family_id.in_(list(by_family)),
            Subscription.ended_at.is_(None),
            User.activated_at.is_not(None),
        )
        .order_by(Subscription.family_id)
    ).all()
    mails: dict[str, dict] = {}
    for family_id, email, first_name in accounts:
        context = mails.setdefault(
            email,
            {
                "first_name": first_name,
                "activity": activity.name,
                "site": activity.site,
                "reason": cancellation.reason,
                "period": period_text(cancellation),
                "children": [],
                "credit": credit,
                "link": public_url("family.planning_page", family_id=family_id),
            },
        )
        context["children"].extend(by_family[family_id])
    queue_mails(template, list(mails.items()))
