"""Tariffs by quotient familial: their brackets, the one in force on a day, the price for a quotient;
entering and removing them in the back office."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.models import Activity, AuditEvent, Guardian, RequestKind, Tariff, TariffBracket, User
from portail.services.audit import record
from portail.services.billing.money import BillingError
from portail.services.transactions import TWIN_WITHIN, claim, twin


def price_for(tariff: Tariff, quotient: int | None) -> int:
    """The price of the bracket holding the quotient; the highest bracket without a valid quotient."""
    brackets = tariff.brackets
    if quotient is not None:
        for bracket in brackets:
            if bracket.quotient_min <= quotient and (
                bracket.quotient_max is None or quotient <= bracket.quotient_max
            ):
                return bracket.price_cents
    return max(brackets, key=lambda bracket: bracket.quotient_min).price_cents


def quote(tariffs: list[Tariff], day: date, quotient: int | None) -> tuple[Tariff | None, int]:
    """The tariff in force on the day among an activity's (None: none) and the day's price for a
    family of this quotient: what billing charges for a day reserved, and what the planning's
    confirmation says before the parent sends it."""
    tariff = tariff_on(tariffs, day)
    return tariff, (price_for(tariff, quotient) if tariff is not None else 0)


def family_quotes(
    family_id: int, activity_id: int, days: list[date]
) -> dict[date, tuple[Tariff | None, int, int | None]]:
    """Each day's tariff, price for the family and the quotient applied (None: none valid, the
    highest bracket), as billing will charge a day reserved (`quote`, with the quotient valid on the
    first of each month): two queries whatever the number of days."""
    if not days:
        return {}
    guardians = db.session.execute(
        sa.select(Guardian.quotient, Guardian.quotient_valid_until).where(Guardian.family_id == family_id)
    ).all()
    tariffs = (
        db.session.scalars(
            sa.select(Tariff)
            .where(
                Tariff.activity_id == activity_id,
                Tariff.valid_from <= max(days),
                sa.or_(Tariff.valid_until.is_(None), Tariff.valid_until >= min(days)),
            )
            .options(sa.orm.joinedload(Tariff.brackets))
            .order_by(Tariff.valid_from)
        )
        .unique()
        .all()
    )
    quotes = {}
    for day in days:
        quotient = family_quotient(guardians, day.replace(day=1))
        quotes[day] = (*quote(tariffs, day, quotient), quotient)
    return quotes


@dataclass(frozen=True)
class LateEntry:
    """What billing will charge for a day the service entered after its deadline (billing's rules):
    a reservation is billed its price plus the tariff's surcharge; an absence stays billed at the
    day's price when the tariff bills late absences. `tariff` None: no tariff for that day."""

    kind: RequestKind
    tariff: Tariff | None
    price_cents: int

    @property
    def billed(self) -> bool:
        """Whether the day is billed at all (an absence: only if the tariff bills late absences)."""
        if self.tariff is None:
            return False
        return self.kind is RequestKind.RESERVATION or self.tariff.bill_late_absences

    @property
    def surcharge_cents(self) -> int:
        return self.tariff.late_surcharge_cents if self.tariff and self.kind is RequestKind.RESERVATION else 0


def late_entry(family_id: int, activity: Activity, kind: RequestKind, day: date, now) -> LateEntry | None:
    """The charge of a day entered by the service at `now`, if that is after the day's deadline for
    its kind (None: in time, billed as usual)."""
    deadline = (
        booking_rules.booking_deadline if kind is RequestKind.RESERVATION else booking_rules.absence_deadline
    )
    if now <= deadline(activity, day):
        return None
    tariff, price, _quotient = family_quotes(family_id, activity.id, [day])[day]
    return LateEntry(kind, tariff, price)


def late_surcharges(activities: list[Activity], today: date) -> list[tuple[str, int]]:
    """(activity name, surcharge) of the tariffs in force today that surcharge a late reservation."""
    in_force = tariffs_for(today, today)
    return [
        (activity.name, tariff.late_surcharge_cents)
        for activity in activities
        if (tariff := tariff_on(in_force.get(activity.id, []), today)) and tariff.late_surcharge_cents
    ]


def family_quotient(guardians: list, month: date) -> int | None:
    """The lowest quotient of the responsables still valid on the first day of the month, if any."""
    valid = [
        g.quotient
        for g in guardians
        if g.quotient is not None and (g.quotient_valid_until is None or g.quotient_valid_until >= month)
    ]
    return min(valid) if valid else None


def check_brackets(rows: list[tuple[int | None, int]]) -> list[tuple[int, int | None, int]]:
    """(upper bound or None for the last, price) rows → (min, max, price) brackets; BillingError if incoherent."""
    if not rows:
        raise BillingError("Saisissez au moins une tranche.")
    brackets, low = [], 0
    for index, (high, price) in enumerate(rows):
        last = index == len(rows) - 1
        if high is None and not last:
            raise BillingError(f"Tranche {index + 1} : seule la dernière tranche peut être sans plafond.")
        if high is not None and high < low:
            raise BillingError(f"Tranche {index + 1} : le plafond doit être au moins {low}.")
        brackets.append((low, None if last else high, price))
        low = (high or 0) + 1
    return brackets


def make_brackets(rows: list[tuple[int | None, int]]) -> list[TariffBracket]:
    """The brackets of a tariff from (upper bound or None, price) rows; BillingError if incoherent."""
    return [
        TariffBracket(quotient_min=low, quotient_max=high, price_cents=price)
        for low, high, price in check_brackets(rows)
    ]


def tariffs_for(first: date, last: date) -> dict[int, list[Tariff]]:
    """The tariffs valid during the period, by activity, brackets loaded (two queries)."""
    found = db.session.scalars(
        sa.select(Tariff)
        .where(Tariff.valid_from <= last, sa.or_(Tariff.valid_until.is_(None), Tariff.valid_until >= first))
        .options(sa.orm.selectinload(Tariff.brackets))
        .order_by(Tariff.valid_from)
    ).all()
    by_activity: dict[int, list[Tariff]] = defaultdict(list)
    for tariff in found:
        by_activity[tariff.activity_id].append(tariff)
    return by_activity


def tariff_on(tariffs: list[Tariff], day: date) -> Tariff | None:
    """The tariff in force that day (the latest starting one when periods overlap)."""
    chosen = None
    for tariff in tariffs:
        if tariff.valid_from <= day and (tariff.valid_until is None or day <= tariff.valid_until):
            chosen = tariff
    return chosen


def all_tariffs() -> list[Tariff]:
    """Every tariff with its activity and brackets, by activity name then newest first (two queries)."""
    return db.session.scalars(
        sa.select(Tariff)
        .join(Activity)
        .options(sa.orm.selectinload(Tariff.brackets), sa.orm.contains_eager(Tariff.activity))
        .order_by(Activity.name, Tariff.valid_from.desc())
    ).all()


def activity_choices() -> list[tuple[int, str]]:
    """(id, name) of the activities a tariff can be entered for, by name."""
    return [(a.id, a.name) for a in db.session.scalars(sa.select(Activity).order_by(Activity.name))]


def create_tariff(
    agent: User,
    rows: list[tuple[int | None, int]],
    *,
    activity_id: int,
    valid_from: date,
    valid_until: date | None,
    late_surcharge_cents: int,
    bill_late_absences: bool,
    bill_unexcused_absences: bool = True,
    unbooked_price_cents: int | None = None,
    unbooked_surcharge_cents: int = 0,
    sick_days_billed: int = 1,
    sick_certificate_days: int = 3,
    childcare: bool = False,
) -> Tariff:
    """A new tariff with its brackets, audited; the one just created if this is the same form sent
    twice; BillingError if the brackets are incoherent."""
    brackets = make_brackets(rows)
    values = dict(
        activity_id=activity_id,
        valid_from=valid_from,
        valid_until=valid_until,
        late_surcharge_cents=late_surcharge_cents,
        bill_late_absences=bill_late_absences,
        bill_unexcused_absences=bill_unexcused_absences,
        unbooked_price_cents=unbooked_price_cents,
        unbooked_surcharge_cents=unbooked_surcharge_cents,
        sick_days_billed=sick_days_billed,
        sick_certificate_days=sick_certificate_days,
        childcare=childcare,
    )
    claim(agent)  # (the same form sent twice: the second copy finds the first's tariff)
    same = twin(Tariff, within=TWIN_WITHIN, **values)
    if same is not None:
        return same
    tariff = Tariff(**values, brackets=brackets)
    db.session.add(tariff)
    db.session.flush()
    record(agent, "tariff.created", "tariff", tariff.id, f"activité {activity_id} à partir du {valid_from}")
    return tariff


def delete_tariff(tariff_id: int, agent: User) -> bool:
    """Remove a tariff entered by mistake, audited (issued invoices keep their prices: a new run of a
    month billed with it gives a credit note); False if there is no such tariff and none was removed."""
    tariff = db.session.get(Tariff, tariff_id)
    if tariff is None:  # (a double click: the first copy removed it)
        return (
            twin(AuditEvent, action="tariff.deleted", target_type="tariff", target_id=tariff_id) is not None
        )
    claim(tariff)  # (removed once: a copy sent at the same moment then finds it gone)
    record(
        agent,
        "tariff.deleted",
        "tariff",
        tariff.id,
        f"{tariff.activity.name} à partir du {tariff.valid_from}",
    )
    db.session.delete(tariff)
    return True
