"""The booking rules: what a parent (or the service itself, `by_town`) may do on one child, activity and
day, and if nothing, why.

The planning cells, the period form, and every transition (`bookings.transitions`: a family's request,
its withdrawal, the agent's decision, a day entered by the service) ask `evaluate()`; nothing else
decides. Deadlines are computed in Europe/Paris and compared with the current instant to the second.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

import holidays
from vacances_scolaires_france import SchoolHolidayDates, UnsupportedYearException

from portail.formatting import PARIS, WEEKDAYS, french_instant
from portail.models import Activity, BookingState, DeadlineKind, OpenPeriod, ValidationMode

# The ISO weekdays as the forms offer them: ("1", "Lundi") … ("7", "Dimanche").
WEEKDAY_CHOICES = [(str(number), name.capitalize()) for number, name in enumerate(WEEKDAYS, start=1)]

RESERVE = "reserve"
ABSENCE = "absence"
WITHDRAW = "withdraw"
DECIDE = "decide"  # the service's decision on a family's pending request
JOIN = "join"  # a full day's waiting list
CONFIRM = "confirm"  # the place the waiting list offers
DECLINE = "decline"  # …or give it up


@lru_cache(maxsize=32)
def public_holidays(year: int) -> dict[date, str]:
    """French (metropolitan) public holidays of a year, with their French names."""
    return dict(holidays.France(years=year, language="fr"))


@lru_cache(maxsize=1)
def _school_calendar() -> SchoolHolidayDates:
    return SchoolHolidayDates()


def school_holiday(day: date, zone: str) -> str | None:
    """The name of the school holidays covering `day` in `zone` (A, B or C), if any."""
    try:
        row = _school_calendar().data.get(day)
    except UnsupportedYearException:
        return None
    if row and row.get(f"vacances_zone_{zone.lower()}"):
        return row["nom_vacances"]
    return None


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a public holiday."""
    return day.isoweekday() <= 5 and day not in public_holidays(day.year)


@lru_cache(maxsize=65536)  # a pure function of its arguments, asked for every cell of every planning
def deadline(
    day: date, kind: DeadlineKind, days: int, at: time, working_days: bool, weekday: int | None
) -> datetime:
    """The last instant (Paris time, aware) to request a change for `day`."""
    if kind is DeadlineKind.PREVIOUS_WEEK:
        monday = day - timedelta(days=day.isoweekday() - 1)
        target = monday - timedelta(days=7) + timedelta(days=(weekday or 4) - 1)
    elif working_days:
        target, left = day, days
        while left > 0:
            target -= timedelta(days=1)
            if is_working_day(target):
                left -= 1
    else:
        target = day - timedelta(days=days)
    return datetime.combine(target, at, tzinfo=PARIS)


def booking_deadline(activity: "Activity | Schedule", day: date) -> datetime:
    return _deadline_of(activity, "booking", day)


def absence_deadline(activity: "Activity | Schedule", day: date) -> datetime:
    return _deadline_of(activity, "absence", day)


def _deadline_of(activity: "Activity | Schedule", which: str, day: date) -> datetime:
    """The `which` ("booking", "absence") deadline of a day, from the activity's five settings of it."""
    settings = ("kind", "days", "time", "working_days", "weekday")
    return deadline(day, *(getattr(activity, f"{which}_deadline_{setting}") for setting in settings))


def closure(
    activity: "Activity | Schedule", day: date, zone: str, closing_days: dict[date, str] | None = None
) -> str | None:
    """Why the activity is closed that day ("Fermé — jour férié (Noël)"), or None when open."""
    if not activity.start_date <= day <= activity.end_date:
        return "Fermé — en dehors de la période de l'activité"
    if str(day.isoweekday()) not in activity.weekdays:
        return f"Fermé le {WEEKDAYS[day.weekday()]}"
    if activity.closed_on_public_holidays and day in public_holidays(day.year):
        return f"Fermé — jour férié ({public_holidays(day.year)[day]})"
    school = school_holiday(day, zone)
    if activity.open_period is OpenPeriod.SCHOOL_DAYS and school:
        return f"Fermé — {school}"
    if activity.open_period is OpenPeriod.HOLIDAYS and not school:
        return "Fermé — ouvert seulement pendant les vacances scolaires"
    if closing_days and day in closing_days:
        return f"Fermé — {closing_days[day]}"
    return None


def enrolled(enrolments, day: date) -> bool:
    """Whether one of the child's enrolments in the activity covers `day`."""
    return any(
        e.start_date <= day <= e.end_date and (not e.weekdays or str(day.isoweekday()) in e.weekdays)
        for e in enrolments
    )


class Schedule(NamedTuple):
    """What the rules read of an activity: a hashable snapshot, so that the rules of a day can be
    memoised (the planning asks them for every activity and day it shows)."""

    start_date: date
    end_date: date
    weekdays: str
    open_period: OpenPeriod
    closed_on_public_holidays: bool
    booking_deadline_kind: DeadlineKind
    booking_deadline_days: int
    booking_deadline_time: time
    booking_deadline_working_days: bool
    booking_deadline_weekday: int | None
    absence_deadline_kind: DeadlineKind
    absence_deadline_days: int
    absence_deadline_time: time
    absence_deadline_working_days: bool
    absence_deadline_weekday: int | None

    @classmethod
    def of(cls, activity: Activity) -> "Schedule":
        return cls(*(getattr(activity, name) for name in cls._fields))


@dataclass(frozen=True)
class DayRules:
    """What the rules say about an activity on a day, whoever the child."""

    closed: str | None
    booking: datetime
    absence: datetime

    @classmethod
    def of(
        cls, activity: Activity, day: date, zone: str, closing_days: dict[date, str] | None = None
    ) -> "DayRules":
        return day_rules(Schedule.of(activity), day, zone, closing_days.get(day) if closing_days else None)


@lru_cache(maxsize=65536)  # a pure function of its arguments
def day_rules(schedule: Schedule, day: date, zone: str, closing: str | None) -> DayRules:
    """The rules of a day for an activity's schedule; `closing` is the reason of a closure entered by staff."""
    closed = closure(schedule, day, zone, {day: closing} if closing else None)
    return DayRules(closed, booking_deadline(schedule, day), absence_deadline(schedule, day))


@dataclass
class Verdict:
    """What can be done on a cell, or why nothing (else) can."""

    actions: set[str] = field(default_factory=set)
    reason: str | None = None
    deadline: datetime | None = None

    @property
    def actionable(self) -> bool:
        return bool(self.actions)


# Days no one changes through a request: a sickness the family declared, a service the town cancelled
# (undone as a whole in Annulations).
_SETTLED = {
    BookingState.SICK: "Enfant malade : absence déclarée",
    BookingState.CANCELLED: "Annulé par la mairie",
}


def _for_town(state: BookingState | None) -> Verdict:
    """What the service may do on an open day of an enrolled child, whatever the deadlines: a family's
    pending request is decided (in Demandes), not entered over; a reserved day can be marked absent,
    any other day reserved (the capacity is taken atomically when the day is written)."""
    if state in (BookingState.RESERVATION_REQUESTED, BookingState.ABSENCE_REQUESTED):
        return Verdict(
            {DECIDE},
            reason="Une demande de la famille est en attente pour ce jour : traitez-la dans Demandes",
        )
    if state is BookingState.RESERVED:
        return Verdict({ABSENCE})
    if state in _SETTLED:
        return Verdict(reason=_SETTLED[state])
    if state in (BookingState.WAITING, BookingState.OFFERED):
        return Verdict(reason=_IN_LINE)
    return Verdict({RESERVE})


_IN_LINE = "L'enfant est sur la liste d'attente de ce jour : gérez-la dans Listes d'attente"


def evaluate(
    activity: Activity,
    day: date,
    now: datetime,
    *,
    is_enrolled: bool,
    state: BookingState | None,
    zone: str,
    closing_days: dict[date, str] | None = None,
    booked: int = 0,
    day_rules: "DayRules | None" = None,
    by_town: bool = False,
    waiting: int = 0,
) -> Verdict:
    """The rules for one child, activity and day, given the current instant `now` (aware).

    `day_rules` may carry what does not depend on the child (closure, deadlines), computed once.
    `by_town`: what the service may do itself (decide a pending request, enter a day for a phone call
    or a child present): no deadline applies, the enrolment and the opening do.
    `waiting`: how many children wait for a place that day (an activity's list may have a maximum).
    """
    if by_town and state is BookingState.OFFERED and activity.validation_mode is ValidationMode.MANUAL:
        # (a place held for the first in line of an activity validated by hand: the agent decides)
        return Verdict({DECIDE})
    if by_town and state is BookingState.ABSENCE_REQUESTED:
        # (an absence asked can always be granted, even on a day closed since: it only frees a place)
        return _for_town(state)
    if not is_enrolled:
        if by_town:
            return Verdict(reason="L'enfant n'est pas inscrit à cette activité ce jour-là")
        return Verdict(reason="Non inscrit à cette activité ce jour-là")
    rules = day_rules or DayRules.of(activity, day, zone, closing_days)
    if rules.closed:
        return Verdict(reason=rules.closed)
    if by_town:
        return _for_town(state)
    if state in (BookingState.RESERVATION_REQUESTED, BookingState.ABSENCE_REQUESTED):
        limit = rules.booking if state is BookingState.RESERVATION_REQUESTED else rules.absence
        if now < limit:
            return Verdict({WITHDRAW}, deadline=limit)
        return Verdict(
            reason=f"Demande en cours de traitement (délai dépassé depuis le {french_instant(limit)})",
            deadline=limit,
        )
    if state is BookingState.RESERVED:
        limit = rules.absence
        if now < limit:
            return Verdict({ABSENCE}, deadline=limit)
        return Verdict(reason=f"Délai dépassé depuis le {french_instant(limit)}", deadline=limit)
    if state is BookingState.ABSENT:
        return Verdict(reason="Absence enregistrée")
    if state in _SETTLED:
        return Verdict(reason=_SETTLED[state])
    limit = rules.booking
    if state is BookingState.WAITING:
        if now < limit:
            return Verdict({WITHDRAW}, deadline=limit)
        return Verdict(reason=f"Liste d'attente close depuis le {french_instant(limit)}", deadline=limit)
    if state is BookingState.OFFERED:
        # (until the offer's own end, which the transitions check: never past the booking deadline)
        if activity.validation_mode is ValidationMode.MANUAL:
            return Verdict({DECLINE}, reason=OFFER_TO_TOWN, deadline=limit)
        return Verdict({CONFIRM, DECLINE}, deadline=limit)
    if now >= limit:
        return Verdict(reason=f"Délai dépassé depuis le {french_instant(limit)}", deadline=limit)
    if activity.capacity is not None and booked >= activity.capacity:
        if activity.waiting_list and (
            activity.waiting_list_max is None or waiting < activity.waiting_list_max
        ):
            return Verdict({JOIN}, reason="Complet", deadline=limit)
        if activity.waiting_list:
            return Verdict(reason="Complet (liste d'attente pleine)", deadline=limit)
        return Verdict(reason="Complet", deadline=limit)
    return Verdict({RESERVE}, deadline=limit)


# An activity validated by hand: the place freed for the first in line waits for the agent's decision.
OFFER_TO_TOWN = "Une place s'est libérée : votre demande est transmise au service Enfance"
