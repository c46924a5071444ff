"""The planning of a family: every cell (child × activity × day) of a period, in a constant number of queries."""

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from portail.bookings import facts as booking_facts
from portail.bookings import rules as booking_rules
from portail.bookings.facts import Facts, Span
from portail.extensions import db
from portail.models import (
    Activity,
    BookingState,
    Child,
    LineState,
    RequestKind,
    RequestLine,
)

# The phone's default is the agenda: seven days from the day asked (today at first), one line per
# child × activity; the desktop's is the month.
VIEWS = {"agenda": "Agenda", "mois": "Mois", "semaine": "7 jours", "semaine5": "5 jours"}
AGENDA_DAYS = 7
# The children's colours are the CSS classes .child-0 … .child-5 (static/css/portail.css, chosen for
# contrast with white initials, which are always shown too); a child's index wraps round this count.
CHILD_COLOURS = 6
STATE_ICONS = {
    None: "○",
    BookingState.RESERVATION_REQUESTED: "◔",
    BookingState.ABSENCE_REQUESTED: "◑",
    BookingState.RESERVED: "●",
    BookingState.REFUSED: "✕",
    BookingState.ABSENT: "–",
    BookingState.SICK: "✚",
    BookingState.CANCELLED: "⊘",
    BookingState.WAITING: "◷",
    BookingState.OFFERED: "★",
}


def period_of(view: str, anchor: date) -> tuple[date, date]:
    """First and last day shown by a view around `anchor`."""
    if view == "mois":
        first = anchor.replace(day=1)
        return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])
    if view == "agenda":
        return anchor, anchor + timedelta(days=AGENDA_DAYS - 1)
    if view == "semaine5" and anchor.weekday() >= 5:
        anchor += timedelta(days=7 - anchor.weekday())  # at the weekend, the coming school week
    monday = anchor - timedelta(days=anchor.weekday())
    return monday, monday + timedelta(days=6 if view == "semaine" else 4)


def neighbours(view: str, anchor: date) -> tuple[date, date]:
    """The anchors of the previous and next periods."""
    if view == "mois":
        first = anchor.replace(day=1)
        previous = (first - timedelta(days=1)).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return previous, following
    return anchor - timedelta(days=7), anchor + timedelta(days=7)


def without_idle_weekend(by_day: dict[date, list["Cell"]]) -> dict[date, list["Cell"]]:
    """A week without its Saturday and Sunday when no activity shows a cell on them."""
    if any(cells for day, cells in by_day.items() if day.weekday() >= 5):
        return by_day
    return {day: cells for day, cells in by_day.items() if day.weekday() < 5}


@dataclass(frozen=True)
class Who:
    """What a cell shows of a child (read once from the ORM object: cells are many)."""

    id: int
    first_name: str
    full_name: str
    initials: str

    @classmethod
    def of(cls, child: Child) -> "Who":
        return cls(
            child.id, child.first_name, child.full_name, f"{child.first_name[:1]}{child.last_name[:1]}"
        )


@dataclass(frozen=True)
class What:
    """What a cell shows of an activity."""

    id: int
    name: str


@dataclass
class Cell:
    child: Who
    activity: What
    day: date
    state: BookingState | None
    reason: str | None  # refusal reason of the booking
    verdict: booking_rules.Verdict
    place: booking_facts.Place | None = None  # on the day's waiting list: the rank, the offer's end

    @property
    def dom_id(self) -> str:
        return f"cell-{self.child.id}-{self.activity.id}-{self.day.isoformat()}"


_NO_BOOKING = (None, None, None)  # a day without booking: no state, reason or place in line


def cells(
    children: list[Child],
    start: date,
    end: date,
    now: datetime,
    zone: str,
    activity_ids: set[int] | None = None,
    child_ids: set[int] | None = None,
    *,
    all_activities: bool = True,
) -> tuple[list[booking_facts.ActivityValues], dict]:
    """The activities the children are enrolled in over the period (or only the shown ones, without
    `all_activities`), and the cells by day of the shown children (`child_ids`, all by default) and
    shown activities (`activity_ids`).

    Four queries whatever the number of children, activities or days; the loop reads plain values.
    """
    if not children:
        return [], {}
    db.session.flush()  # Core statements do not autoflush: see the changes of this transaction
    connection = db.session.connection()
    period = {"start": start, "end": end}
    rows = connection.execute(
        booking_facts.ENROLMENTS_AND_ACTIVITIES, {"ids": [child.id for child in children], **period}
    ).all()
    enrolments = [row[:5] for row in rows]
    activities = _activities(rows, None if all_activities else activity_ids)
    shown = [a for a in activities.values() if activity_ids is None or a.id in activity_ids]
    children = [child for child in children if child_ids is None or child.id in child_ids]
    # Each child × activity: None when enrolled on every day of the period (the usual case: nothing to
    # check day by day), else its enrolments' (first, last, weekdays) to check for each day.
    by_pair: dict[tuple[int, int], list | None] = {}
    for child_id, activity_id, first, last, weekdays in enrolments:
        pair = (child_id, activity_id)
        if first <= start and end <= last and not weekdays:
            by_pair[pair] = None
        elif by_pair.get(pair, []) is not None:
            by_pair[pair] = [*by_pair.get(pair, []), (first, last, weekdays)]
    # (a day on a waiting list comes with the child's place there: its rank, the offer's end)
    bookings = {
        (child_id, activity_id, day): (state, reason, rank and booking_facts.Place(rank, until))
        for child_id, activity_id, day, state, reason, rank, until in connection.execute(
            booking_facts.BOOKINGS,
            {"ids": [child.id for child in children], "activities": [a.id for a in shown], **period},
        )
    }
    limited = [a.id for a in shown if a.capacity is not None]  # only they can be full
    booked, waiting = {}, {}
    for activity_id, day, count, in_line in (
        connection.execute(booking_facts.COUNTERS, {"ids": limited, **period}).all() if limited else ()
    ):
        booked[(activity_id, day)], waiting[(activity_id, day)] = count, in_line
    closed = defaultdict(dict)
    for activity_id, day, reason in connection.execute(booking_facts.CLOSINGS, period).all():
        for each in [activity_id] if activity_id else activities:
            closed[each][day] = reason
    whos = [Who.of(child) for child in children]
    whats = [
        (
            activity,
            What(activity.id, activity.name),
            activity.weekdays,
            activity.start_date,
            activity.end_date,
            booking_rules.Schedule.of(activity),
            closed.get(activity.id, {}),
        )
        for activity in shown
    ]
    result: dict[date, list[Cell]] = {}
    day = start
    while day <= end:
        row: list[Cell] = []
        result[day] = row
        weekday = str(day.isoweekday())
        for activity, what, weekdays, first, last, schedule, closings in whats:
            if weekday not in weekdays or not first <= day <= last:
                continue  # a day the activity never opens: nothing to show
            rules = booking_rules.day_rules(schedule, day, zone, closings.get(day))
            show_closed = worth_showing(rules.closed, day, closings)
            verdicts: dict = {}  # the verdict depends on the state, not on the child: one per state, shared (never changed)
            for who in whos:
                periods = by_pair.get((who.id, what.id), [])
                if periods is not None and not any(
                    s <= day <= e and (not w or weekday in w) for s, e, w in periods
                ):
                    continue
                state, reason, place = bookings.get((who.id, what.id, day), _NO_BOOKING)
                if state is None and not show_closed:
                    continue
                verdict = verdicts.get(state)
                if verdict is None:
                    verdict = verdicts[state] = _verdict(
                        activity,
                        day,
                        now,
                        zone,
                        rules,
                        state,
                        booked.get((what.id, day), 0),
                        waiting.get((what.id, day), 0),
                    )
                row.append(Cell(who, what, day, state, reason, verdict, place))
        day += timedelta(days=1)
    order = {who.id: index for index, who in enumerate(whos)}
    for row in result.values():
        row.sort(key=lambda cell: (order[cell.child.id], cell.activity.name))
    return list(activities.values()), result


def _activities(rows, only: set[int] | None) -> dict[int, booking_facts.ActivityValues]:
    """The activities of the enrolments read with their columns (`only` those ids, if given), by id and
    sorted by name."""
    found: dict[int, booking_facts.ActivityValues] = {}
    for row in rows:
        activity_id = row[1]
        if activity_id not in found and (only is None or activity_id in only):
            found[activity_id] = booking_facts.ActivityValues._make(row[5:])
    return dict(sorted(found.items(), key=lambda item: item[1].name))


def worth_showing(reason: str | None, day: date, closing_days: dict | None) -> bool:
    """Open days, and the exceptional closures (public holiday, closure by the town), are shown;
    the days an activity never opens (other weekdays, school holidays for the canteen) are not."""
    return (
        reason is None
        or reason.startswith("Fermé — jour férié")
        or bool(closing_days and day in closing_days)
    )


def cell_of(
    child: Child,
    activity: Activity,
    day: date,
    facts: Facts,
    reason: str | None,
    now: datetime,
    zone: str,
) -> Cell | None:
    """One cell from the facts of its day, as `cells` shows it; None where the planning shows no cell
    (a day the activity never opens, the child not enrolled, a closed day without booking)."""
    if str(day.isoweekday()) not in activity.weekdays or not activity.start_date <= day <= activity.end_date:
        return None
    if not booking_rules.enrolled(facts.enrolments, day):
        return None
    rules = booking_rules.day_rules(booking_rules.Schedule.of(activity), day, zone, facts.closed.get(day))
    state = facts.states.get(day)
    if state is None and not worth_showing(rules.closed, day, facts.closed):
        return None
    verdict = _verdict(
        activity, day, now, zone, rules, state, facts.booked.get(day, 0), facts.waiting.get(day, 0)
    )
    place = facts.queue.get(day)
    return Cell(Who.of(child), What(activity.id, activity.name), day, state, reason, verdict, place)


def _verdict(
    activity: Activity,
    day: date,
    now: datetime,
    zone: str,
    rules: booking_rules.DayRules,
    state: BookingState | None,
    booked: int,
    waiting: int = 0,
) -> booking_rules.Verdict:
    """The rules' verdict on a cell the planning shows (its child is enrolled that day)."""
    return booking_rules.evaluate(
        activity,
        day,
        now,
        is_enrolled=True,
        state=state,
        zone=zone,
        booked=booked,
        day_rules=rules,
        waiting=waiting,
    )


def cell_after(
    child: Child,
    activity: Activity,
    day: date,
    state: BookingState,
    reason: str | None,
    now: datetime,
    zone: str,
) -> Cell | None:
    """The cell of a day just requested, from its new state (`bookings.submit` tells it): no query.

    The day was open (a request was accepted on it) and a reservation refused at once was refused
    because the day is full: nothing else the rules read can have changed.
    """
    full = state is BookingState.REFUSED and activity.capacity is not None
    facts = Facts([Span(day, day, None)], {day: state}, {day: activity.capacity} if full else {}, {})
    return cell_of(child, activity, day, facts, reason, now, zone)


def request_state(lines: list[RequestLine]) -> str:
    """The state of a request, derived from its lines."""
    states = {line.state for line in lines}
    if states == {LineState.WITHDRAWN}:
        return "Annulée"
    states.discard(LineState.WITHDRAWN)
    if states == {LineState.PENDING}:
        return "Reçue"
    if states == {LineState.WAITING}:
        return "Liste d'attente"
    if LineState.WAITING in states:  # (some days decided or asked, the others in line)
        accepted = "Partiellement acceptée" if LineState.ACCEPTED in states else "En cours"
        return f"{accepted} · liste d'attente"
    if LineState.PENDING in states:
        return "En cours"
    if states == {LineState.ACCEPTED}:
        return "Acceptée"
    if states == {LineState.REFUSED}:
        return "Refusée"
    return "Partiellement acceptée"


KIND_LABELS = {RequestKind.RESERVATION: "Réservation", RequestKind.ABSENCE: "Absence"}
