"""Registers (Pointage): who the service expects on a day of an activity, who was there, and the
register's closing, which makes its marks what billing uses.

A register is read in a constant number of queries, whatever its size. A mark is one upsert that keeps
the latest tap: an animator's tablet that lost the network sends its queued marks later with the time
they were tapped, so an older mark never overwrites a newer one, and the same mark sent twice changes
nothing. A closed register is read-only for animators; agents and administrators may still correct it
or reopen it (audited).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from portail.extensions import db
from portail.formatting import PARIS, short_date, today_in_paris
from portail.models import (
    EXCUSE_REASONS,
    Activity,
    Attendance,
    AuditEvent,
    AuthorizedContact,
    BillingRun,
    Booking,
    BookingState,
    Child,
    Diet,
    Enrolment,
    Guardian,
    Presence,
    RegisterClosing,
    Role,
    SickDeclaration,
    User,
)
from portail.services import audit
from portail.services.billing import runs
from portail.services.transactions import upsert

# The bookings a register shows: the children expected (RESERVED), and apart those the family said
# would not come (a sickness, an absence) or whose day the town cancelled.
EXPECTED = BookingState.RESERVED
SHOWN_STATES = (
    BookingState.RESERVED,
    BookingState.SICK,
    BookingState.ABSENT,
    BookingState.ABSENCE_REQUESTED,
    BookingState.CANCELLED,
)
# A register of more children than this is shown one class at a time (ALL: every child at once).
GROUP_ABOVE = 40
ALL, NO_CLASS = "tous", "Sans classe"
# How far back a queued mark may say it was tapped (a tablet's clock, a mark left offline overnight).
OLDEST_TAP = timedelta(days=2)


class RegisterError(ValueError):
    """A mark, an addition or a closing the register refuses, with its French message."""


@dataclass
class Contact:
    name: str
    relation: str
    phone: str
    can_pick_up: bool


@dataclass
class Closing:
    closed_at: datetime
    by: str


@dataclass
class Row:
    """One child on the register."""

    child_id: int
    first_name: str
    last_name: str
    school_class: str | None
    age: int
    photo: bool
    allergies: str | None
    pai: bool
    health_notes: str | None
    booking: BookingState | None  # None: present without a booking (added on the register)
    diet: str | None = None  # the meal (its label; None: standard)
    presence: Presence | None = None
    reason: str | None = None
    sick_declared: bool = False

    @property
    def expected(self) -> bool:
        return self.booking is EXPECTED

    @property
    def on_list(self) -> bool:
        """Among the children expected (booked, or added present), not among the absences foreseen."""
        return self.expected or self.booking is None

    @property
    def alerts(self) -> list[str]:
        found = []
        if self.pai:
            found.append("PAI")
        if self.allergies:
            found.append(f"Allergies : {self.allergies}")
        if self.health_notes:
            found.append(self.health_notes)
        return found


@dataclass
class Register:
    activity: Activity
    day: date
    rows: list[Row]  # (of the class shown, or of the child asked for after a tap)
    closing: Closing | None
    counts: dict[str, int]  # of the whole register
    classes: dict[str, int]  # the children of each class, when shown class by class
    group: str | None  # the class shown (ALL: every child)

    @property
    def expected(self) -> list[Row]:
        return [row for row in self.rows if row.on_list]

    @property
    def not_coming(self) -> list[Row]:
        return [row for row in self.rows if not row.on_list]


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def activities_on(day: date) -> list[Activity]:
    """The activities open that weekday in their date range, by site and name (one query; closing days
    and holidays are told on the register itself)."""
    found = db.session.scalars(
        sa.select(Activity)
        .where(Activity.start_date <= day, Activity.end_date >= day)
        .order_by(Activity.site, Activity.name)
    ).all()
    return [activity for activity in found if str(day.isoweekday()) in activity.weekdays]


@dataclass
class Figures:
    expected: int = 0
    marked: int = 0
    closed: bool = False


def figures(activities: list[Activity], day: date) -> dict[int, Figures]:
    """Each activity's children expected and marked that day, and whether its register is closed
    (three queries)."""
    ids = [activity.id for activity in activities]
    found = {activity_id: Figures() for activity_id in ids}
    if not ids:
        return found
    connection = db.session.connection()
    for activity_id, count in connection.execute(
        sa.select(Booking.activity_id, sa.func.count())
        .where(Booking.activity_id.in_(ids), Booking.day == day, Booking.state == EXPECTED)
        .group_by(Booking.activity_id)
    ):
        found[activity_id].expected = count
    for activity_id, count in connection.execute(
        sa.select(Attendance.activity_id, sa.func.count())
        .where(Attendance.activity_id.in_(ids), Attendance.day == day)
        .group_by(Attendance.activity_id)
    ):
        found[activity_id].marked = count
    for (activity_id,) in connection.execute(
        sa.select(RegisterClosing.activity_id).where(
            RegisterClosing.activity_id.in_(ids), RegisterClosing.day == day
        )
    ):
        found[activity_id].closed = True
    return found


# The register's statements, built once (a statement built per request costs more than its query).
_ACTIVITY, _DAY = sa.bindparam("activity"), sa.bindparam("day", type_=sa.Date)
_BOOKING = sa.and_(
    Booking.child_id == Child.id,
    Booking.activity_id == _ACTIVITY,
    Booking.day == _DAY,
    Booking.state.in_(SHOWN_STATES),
)
_MARK = sa.and_(Attendance.child_id == Child.id, Attendance.activity_id == _ACTIVITY, Attendance.day == _DAY)
_ON_REGISTER = sa.or_(Booking.id.is_not(None), Attendance.id.is_not(None))
# Its figures by class, state and mark.
FIGURES = (
    sa.select(Child.school_class, Booking.state, Attendance.presence, sa.func.count())
    .select_from(Child)
    .outerjoin(Booking, _BOOKING)
    .outerjoin(Attendance, _MARK)
    .where(_ON_REGISTER)
    .group_by(Child.school_class, Booking.state, Attendance.presence)
)
# Its rows (all; of one class; of the class-less; of one child).
ROWS = (
    sa.select(
        Child.id,
        Child.first_name,
        Child.last_name,
        Child.school_class,
        Child.birth_date,
        Child.photo,
        Child.allergies,
        Child.pai,
        Child.health_notes,
        Child.diet,
        Child.diet_other,
        Booking.state,
        Attendance.presence,
        Attendance.reason,
        SickDeclaration.id.label("sick"),
    )
    .select_from(Child)
    .outerjoin(Booking, _BOOKING)
    .outerjoin(Attendance, _MARK)
    .outerjoin(SickDeclaration, sa.and_(SickDeclaration.child_id == Child.id, SickDeclaration.day == _DAY))
    .where(_ON_REGISTER)
    .order_by(Child.last_name, Child.first_name)
)
ROWS_OF_CLASS = ROWS.where(Child.school_class == sa.bindparam("school_class"))
ROWS_WITHOUT_CLASS = ROWS.where(Child.school_class.is_(None))
ROWS_OF_CHILD = ROWS.where(Child.id == sa.bindparam("child"))
CLOSING = (
    sa.select(RegisterClosing.closed_at, User.first_name, User.last_name)
    .outerjoin(User, User.id == RegisterClosing.closed_by_id)
    .where(RegisterClosing.activity_id == _ACTIVITY, RegisterClosing.day == _DAY)
)


def read(activity: Activity, day: date, only: int | None = None, group: str | None = None) -> Register:
    """The register of an activity's day: its figures and classes (one grouped query), the rows of
    one class, of one child (`only`, after a tap; 0: none) or of all (one query), and its closing:
    three queries, whatever the number of children.

    A register of more than GROUP_ABOVE children shows one class at a time (`group`; the first by
    default; ALL for every child): 300 rows are too many to scroll on a phone and to build at once."""
    connection = db.session.connection()
    params = {"activity": activity.id, "day": day}
    counts = dict.fromkeys(("attendus", "presents", "absents", "non_pointes"), 0)
    classes: dict[str, int] = {}
    for school_class, state, presence, number in connection.execute(FIGURES, params):
        if state not in (None, EXPECTED):
            continue  # an absence foreseen: listed apart, not counted
        name = school_class or NO_CLASS
        classes[name] = classes.get(name, 0) + number
        counts["attendus"] += number if state is EXPECTED else 0
        column = (
            "presents" if presence is Presence.PRESENT else "non_pointes" if presence is None else "absents"
        )
        counts[column] += number
    grouped = sum(classes.values()) > GROUP_ABOVE and len(classes) > 1
    if grouped and group != ALL and group not in classes:
        group = sorted(classes)[0]
    statement = ROWS
    if only is not None:
        statement, params = ROWS_OF_CHILD, params | {"child": only}
    elif grouped and group == NO_CLASS:
        statement = ROWS_WITHOUT_CLASS
    elif grouped and group != ALL:
        statement, params = ROWS_OF_CLASS, params | {"school_class": group}
    rows = [
        Row(
            child_id=child.id,
            first_name=child.first_name,
            last_name=child.last_name,
            school_class=child.school_class,
            age=age_on(child.birth_date, day),
            photo=bool(child.photo),
            allergies=child.allergies,
            pai=child.pai,
            health_notes=child.health_notes,
            booking=child.state,
            diet=(child.diet_other or child.diet.label)
            if child.diet is Diet.OTHER
            else child.diet and child.diet.label,
            presence=child.presence,
            reason=child.reason,
            sick_declared=child.sick is not None,
        )
        for child in (connection.execute(statement, params) if only != 0 else ())
    ]
    closed = connection.execute(CLOSING, {"activity": activity.id, "day": day}).first()
    closing = None
    if closed is not None:
        closing = Closing(closed.closed_at, f"{closed.first_name or ''} {closed.last_name or ''}".strip())
    return Register(
        activity, day, rows, closing, counts, dict(sorted(classes.items())) if grouped else {}, group
    )


def contacts(child_id: int) -> list[Contact]:
    """The child's responsables with a phone, then the people allowed to collect them (two queries)."""
    connection = db.session.connection()
    found = [
        Contact(f"{first_name} {last_name}", "Responsable", phone, True)
        for first_name, last_name, phone in connection.execute(
            sa.select(
                Guardian.first_name,
                Guardian.last_name,
                sa.func.coalesce(Guardian.phone, Guardian.phone_home, Guardian.phone_work),
            )
            .join(Child, Child.family_id == Guardian.family_id)
            .where(Child.id == child_id)
            .order_by(Guardian.position)
        )
        if phone
    ]
    found += [
        Contact(f"{first_name} {last_name}", relation, phone, can_pick_up)
        for first_name, last_name, relation, phone, can_pick_up in connection.execute(
            sa.select(
                AuthorizedContact.first_name,
                AuthorizedContact.last_name,
                AuthorizedContact.relationship_label,
                AuthorizedContact.phone,
                AuthorizedContact.can_pick_up,
            )
            .where(AuthorizedContact.child_id == child_id)
            .order_by(AuthorizedContact.id)
        )
    ]
    return found


def on_register(activity: Activity, day: date, child_id: int) -> bool:
    """Whether the child is on that register (booked that day, or marked)."""
    return bool(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Child)
            .where(
                Child.id == child_id,
                sa.or_(
                    sa.exists().where(
                        Booking.child_id == child_id,
                        Booking.activity_id == activity.id,
                        Booking.day == day,
                        Booking.state.in_(SHOWN_STATES),
                    ),
                    sa.exists().where(
                        Attendance.child_id == child_id,
                        Attendance.activity_id == activity.id,
                        Attendance.day == day,
                    ),
                ),
            )
        )
    )


SEEN_TODAY = (
    sa.select(AuditEvent.id)
    .where(
        AuditEvent.actor_id == sa.bindparam("actor"),
        AuditEvent.action == "register.viewed",
        AuditEvent.target_id == sa.bindparam("activity"),
        AuditEvent.created_at >= sa.bindparam("since", type_=AuditEvent.created_at.type),
        AuditEvent.detail == sa.bindparam("detail"),
    )
    .limit(1)
)


def audit_view(agent: User, register: Register, now: datetime) -> bool:
    """A register shows health alerts: its reading is recorded, once a day per person and register
    (an animator opens it again and again during the day). Whether it was recorded now."""
    detail = f"{register.activity.name}, {short_date(register.day)}"
    since = datetime.combine(today_in_paris(now), time(0), tzinfo=PARIS)
    seen = db.session.execute(
        SEEN_TODAY, {"actor": agent.id, "activity": register.activity.id, "since": since, "detail": detail}
    ).first()
    if seen is not None:
        return False
    audit.record(agent, "register.viewed", "activity", register.activity.id, detail)
    return True


def may_edit(user: User, closing: "Closing | RegisterClosing | None", day: date, now: datetime) -> str | None:
    """Why `user` may not mark this register now (None: they may)."""
    today = today_in_paris(now)
    if day > today:
        return "Le pointage d'un jour à venir n'est pas possible."
    if user.role is Role.ANIMATOR and day < today - timedelta(days=1):
        return "Ce registre est trop ancien : seul un gestionnaire peut le corriger."
    if closing is not None and user.role is Role.ANIMATOR:
        return "Ce registre est clôturé : seul un gestionnaire peut le modifier."
    return None


def tapped_at(value: str | None, now: datetime) -> datetime:
    """When the animator tapped, from the page's clock (milliseconds since the epoch), kept within the
    last two days and not after `now`; `now` when not given or unreadable."""
    try:
        moment = datetime.fromtimestamp(int(value) / 1000, tz=now.tzinfo)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    return min(max(moment, now - OLDEST_TAP), now)


def mark(
    activity: Activity,
    day: date,
    child_id: int,
    presence: Presence,
    reason: str | None,
    user: User,
    now: datetime,
    tapped: datetime | None = None,
) -> list[BillingRun]:
    """Record a child's presence or absence; the latest tap wins, a repeated one changes nothing.

    The child must be on the register (booked that day, or already added). Returns the billing runs
    queued when a closed register of a month billed already is corrected."""
    closing = db.session.get(RegisterClosing, (activity.id, day))
    if (refusal := may_edit(user, closing, day, now)) is not None:
        raise RegisterError(refusal)
    if not on_register(activity, day, child_id):
        raise LookupError("child not on this register")
    write_mark(activity.id, day, child_id, presence, reason, user, tapped or now, now)
    # (a closed register corrected by an agent: what its month billed may change)
    return runs.rebill({child_id}, [day], user, now) if closing is not None else []


def write_mark(
    activity_id: int,
    day: date,
    child_id: int,
    presence: Presence,
    reason: str | None,
    user: User,
    tapped: datetime,
    now: datetime,
) -> None:
    """The one place a mark is written: an upsert keeping the latest tap (atomic on both databases)."""
    if presence is Presence.EXCUSED:
        if reason not in EXCUSE_REASONS:
            raise RegisterError("Choisissez le motif de l'absence justifiée.")
    else:
        reason = None
    insert = upsert(Attendance).values(
        child_id=child_id,
        activity_id=activity_id,
        day=day,
        presence=presence,
        reason=reason,
        marked_at=tapped,
        marked_by_id=user.id,
        recorded_at=now,
    )
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[Attendance.child_id, Attendance.activity_id, Attendance.day],
            set_={
                "presence": insert.excluded.presence,
                "reason": insert.excluded.reason,
                "marked_at": insert.excluded.marked_at,
                "marked_by_id": insert.excluded.marked_by_id,
                "recorded_at": insert.excluded.recorded_at,
            },
            where=Attendance.marked_at <= insert.excluded.marked_at,
        )
    )


def addable(activity: Activity, day: date, query: str, limit: int = 20) -> list[Child]:
    """Children enrolled in the activity that day and not on its register, whose name matches."""
    words = [word for word in query.split() if word][:3]
    if not words:
        return []
    statement = (
        sa.select(Child)
        .join(Enrolment, Enrolment.child_id == Child.id)
        .where(
            Enrolment.activity_id == activity.id,
            Enrolment.start_date <= day,
            Enrolment.end_date >= day,
            ~sa.exists().where(
                Booking.child_id == Child.id,
                Booking.activity_id == activity.id,
                Booking.day == day,
                Booking.state.in_(SHOWN_STATES),
            ),
            ~sa.exists().where(
                Attendance.child_id == Child.id, Attendance.activity_id == activity.id, Attendance.day == day
            ),
            sa.or_(Enrolment.weekdays.is_(None), Enrolment.weekdays.contains(str(day.isoweekday()))),
        )
        .order_by(Child.last_name, Child.first_name)
        .limit(limit)
    )
    for word in words:
        pattern = f"%{word.lower()}%"
        statement = statement.where(
            sa.or_(
                sa.func.lower(Child.first_name).like(pattern), sa.func.lower(Child.last_name).like(pattern)
            )
        )
    return db.session.scalars(statement.distinct()).all()


def _enrolled_on(child_id: int, activity_id: int, day: date, weekday: str) -> bool:
    return bool(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Enrolment)
            .where(
                Enrolment.child_id == child_id,
                Enrolment.activity_id == activity_id,
                Enrolment.start_date <= day,
                Enrolment.end_date >= day,
                sa.or_(Enrolment.weekdays.is_(None), Enrolment.weekdays.contains(weekday)),
            )
        )
    )


def add_present(activity: Activity, day: date, child_id: int, user: User, now: datetime) -> Child:
    """A child enrolled in the activity who is there without a booking: marked present (billed as a
    presence without booking, per the tariff, once the register is closed); audited."""
    closing = db.session.get(RegisterClosing, (activity.id, day))
    if (refusal := may_edit(user, closing, day, now)) is not None:
        raise RegisterError(refusal)
    child = db.session.get(Child, child_id)
    if child is None or not _enrolled_on(child_id, activity.id, day, str(day.isoweekday())):
        raise LookupError("child not enrolled in this activity that day")
    if on_register(activity, day, child_id):  # (a double click, another tablet: added already)
        raise RegisterError(f"{child.full_name} est déjà sur le registre.")
    write_mark(activity.id, day, child_id, Presence.PRESENT, None, user, now, now)
    audit.record(
        user,
        "register.added",
        "activity",
        activity.id,
        f"{child.full_name}, {activity.name}, {short_date(day)}",
    )
    return child


def close(activity: Activity, day: date, user: User, now: datetime) -> tuple[int, list[BillingRun]]:
    """Close the day's register: the children expected and not marked are marked absent without
    excuse (what billing will use), the closing is recorded and audited. Returns how many were
    marked so, and the billing runs queued if the day's month was billed already (to hand to the
    worker once committed). Closed already (a double click, another tablet): RegisterError."""
    if day > today_in_paris(now):
        raise RegisterError("Un registre ne peut être clôturé qu'à partir de son jour.")
    if db.session.get(RegisterClosing, (activity.id, day)) is not None:
        raise RegisterError("Ce registre est déjà clôturé.")
    register = read(activity, day, group=ALL)
    unmarked = [row for row in register.rows if row.expected and row.presence is None]
    for row in unmarked:
        write_mark(activity.id, day, row.child_id, Presence.UNEXCUSED, None, user, now, now)
    db.session.add(RegisterClosing(activity_id=activity.id, day=day, closed_at=now, closed_by_id=user.id))
    db.session.flush()  # (two closings at once: the second's primary key conflicts, and it is told)
    counts = read(activity, day, only=0).counts
    audit.record(
        user,
        "register.closed",
        "activity",
        activity.id,
        f"{activity.name}, {short_date(day)} : {counts['presents']} présent(s), {counts['absents']} absent(s)",
    )
    return len(unmarked), runs.rebill({row.child_id for row in register.rows}, [day], user, now)


def may_reopen(user: User) -> bool:
    """Whether `user` may reopen a closed register (agents and administrators, not animators)."""
    return user.role is not Role.ANIMATOR


def reopen(activity: Activity, day: date, user: User, now: datetime) -> list[BillingRun]:
    """An agent reopens a closed register (an animator may not); audited. Billing goes back to the
    day's bookings: the runs queued if its month was billed already."""
    if not may_reopen(user):
        raise RegisterError("Seul un gestionnaire peut rouvrir un registre clôturé.")
    closing = db.session.get(RegisterClosing, (activity.id, day))
    if closing is None:
        raise RegisterError("Ce registre n'est pas clôturé.")
    db.session.delete(closing)
    audit.record(user, "register.reopened", "activity", activity.id, f"{activity.name}, {short_date(day)}")
    return runs.rebill(_children_of(activity, day), [day], user, now)


def _children_of(activity: Activity, day: date) -> set[int]:
    return {row.child_id for row in read(activity, day, group=ALL).rows}
