"""Billing (PRODUCT §9): tariffs by quotient familial, the monthly billing run, payments, states.

Money is in integer cents. A billing run computes each family's lines for a month from its
bookings, in batches of families (a constant number of queries per batch, whatever the number of
days), and compares them with the invoice in force for that month:
- no invoice and something to bill → an invoice;
- the same lines → nothing (running a month twice changes nothing);
- other lines → a credit note cancelling the invoice in force, and a new invoice if anything is
  left to bill (an issued invoice is never edited).
Numbers are taken from a counter per series (FA2026, AV2026) in the transaction that issues, so a
rolled-back batch leaves no gap; a partial unique index keeps one invoice in force per family and
month even when two runs overlap (the loser retries its batch and finds nothing left to do).
"""

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from portail.extensions import db
from portail.formatting import month_label
from portail.models import (
    Activity,
    BillingRun,
    Booking,
    BookingState,
    Child,
    Family,
    Guardian,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    LineState,
    Payment,
    PaymentMethod,
    Request,
    RequestKind,
    RequestLine,
    RunState,
    Subscription,
    Tariff,
    TariffBracket,
    User,
    utcnow,
)
from portail.services import booking_rules
from portail.services.outbox import queue_mails
from portail.services.transactions import claim

log = logging.getLogger(__name__)

BATCH = 500
DUE_DAYS = 30
RESERVED_LABEL, LATE_ABSENCE_LABEL, SURCHARGE_LABEL = (
    "Jours réservés",
    "Absences hors délai",
    "Majoration réservation hors délai",
)
LABEL_ORDER = {RESERVED_LABEL: 0, LATE_ABSENCE_LABEL: 1, SURCHARGE_LABEL: 2}
METHOD_LABELS = {
    PaymentMethod.CARD: "Carte",
    PaymentMethod.CHEQUE: "Chèque",
    PaymentMethod.CASH: "Espèces",
    PaymentMethod.DIRECT_DEBIT: "Prélèvement",
}


class BillingError(ValueError):
    """A French message for the agent."""


class ConcurrentRun(Exception):
    """Another run billed the same families meanwhile: the batch is started again."""


# --- money and dates -------------------------------------------------------------------------


def euros(cents: int) -> str:
    """1 234,56 € (French format, narrow no-break space between thousands)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}".replace(",", "\u202f") + f",{part:02d}\u00a0€"


def parse_euros(text: str) -> int:
    """'3,30', '3.30', '3' or '1 234,5 €' → cents; ValueError for anything else."""
    cleaned = (
        (text or "")
        .replace("€", "")
        .replace("\u202f", "")
        .replace("\u00a0", "")
        .replace(" ", "")
        .replace(",", ".")
        .strip()
    )
    if not cleaned or cleaned.count(".") > 1 or not cleaned.replace(".", "").isdigit():
        raise ValueError(text)
    whole, _, part = cleaned.partition(".")
    if len(part) > 2:
        raise ValueError(text)
    return int(whole or "0") * 100 + int((part + "00")[:2])


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def previous_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def today_in_paris(now: datetime) -> date:
    return now.astimezone(booking_rules.PARIS).date()


# --- tariffs ---------------------------------------------------------------------------------


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


# --- computing a family's lines ----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Line:
    child_name: str
    activity_name: str
    label: str
    days: int
    unit_price_cents: int

    @property
    def amount_cents(self) -> int:
        return self.days * self.unit_price_cents


def _sort_key(line: Line):
    return (line.child_name, line.activity_name, LABEL_ORDER.get(line.label, 9), line.unit_price_cents)


_BILLED_STATES = [BookingState.RESERVED, BookingState.ABSENT, BookingState.ABSENCE_REQUESTED]


def compute(
    family_ids: list[int], month: date, tariffs: dict[int, list[Tariff]], activities: dict[int, Activity]
) -> tuple[dict[int, list[Line]], dict, int]:
    """Each family's lines for the month, the quotient applied, and the count of booked days without tariff.

    Four queries for the whole batch (bookings, accepted requests, children, responsables).
    """
    first, last = month_bounds(month)
    low, high = family_ids[0], family_ids[-1]
    wanted = set(family_ids)
    connection = db.session.connection()
    children = {
        child_id: (family_id, f"{first_name} {last_name}")
        for child_id, family_id, first_name, last_name in connection.execute(
            sa.select(Child.id, Child.family_id, Child.first_name, Child.last_name).where(
                Child.family_id.between(low, high)
            )
        )
        if family_id in wanted
    }
    guardians = defaultdict(list)
    for guardian in connection.execute(
        sa.select(
            Guardian.family_id, Guardian.position, Guardian.quotient, Guardian.quotient_valid_until
        ).where(Guardian.family_id.between(low, high))
    ):
        guardians[guardian.family_id].append(guardian)
    quotients = {family_id: family_quotient(guardians.get(family_id, []), first) for family_id in family_ids}
    asked_at: dict[tuple, datetime] = {}
    for child_id, activity_id, kind, day, created_at in connection.execute(
        sa.select(Request.child_id, Request.activity_id, Request.kind, RequestLine.day, Request.created_at)
        .join(RequestLine, RequestLine.request_id == Request.id)
        .where(
            Request.family_id.between(low, high),
            RequestLine.day.between(first, last),
            RequestLine.state == LineState.ACCEPTED,
        )
    ):
        key = (child_id, activity_id, day, kind)
        if key not in asked_at or asked_at[key] < created_at:
            asked_at[key] = created_at  # the request that set the day's current state is the latest accepted
    counts: dict[int, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
    unpriced = 0
    names = {activity_id: activity.name for activity_id, activity in activities.items()}
    tariff_of: dict[tuple, Tariff | None] = {}  # (activity, day) → tariff: a month has few
    price_of: dict[tuple, int] = {}  # (tariff, quotient) → price
    for child_id, activity_id, day, state in connection.execute(
        sa.select(Booking.child_id, Booking.activity_id, Booking.day, Booking.state)
        .join(Child, Child.id == Booking.child_id)
        .where(
            Child.family_id.between(low, high),
            Booking.day.between(first, last),
            Booking.state.in_(_BILLED_STATES),
        )
    ):
        if child_id not in children:
            continue
        family_id, child_name = children[child_id]
        key = (activity_id, day)
        if key not in tariff_of:
            tariff_of[key] = tariff_on(tariffs.get(activity_id, []), day)
        tariff = tariff_of[key]
        if tariff is None:
            unpriced += 1
            continue
        quotient = quotients[family_id]
        if (tariff.id, quotient) not in price_of:
            price_of[(tariff.id, quotient)] = price_for(tariff, quotient)
        price, name, bucket = price_of[(tariff.id, quotient)], names[activity_id], counts[family_id]
        if state is BookingState.ABSENT:
            asked = asked_at.get((child_id, activity_id, day, RequestKind.ABSENCE))
            if (
                tariff.bill_late_absences
                and asked is not None
                and asked > booking_rules.absence_deadline(activities[activity_id], day)
            ):
                bucket[(child_name, name, LATE_ABSENCE_LABEL, price)] += 1
            continue
        bucket[(child_name, name, RESERVED_LABEL, price)] += 1
        asked = asked_at.get((child_id, activity_id, day, RequestKind.RESERVATION))
        if (
            tariff.late_surcharge_cents
            and asked is not None
            and asked > booking_rules.booking_deadline(activities[activity_id], day)
        ):
            bucket[(child_name, name, SURCHARGE_LABEL, tariff.late_surcharge_cents)] += 1
    lines = {
        family_id: sorted(
            (
                Line(child, activity, label, days, price)
                for (child, activity, label, price), days in counts[family_id].items()
            ),
            key=_sort_key,
        )
        for family_id in family_ids
    }
    return lines, quotients, unpriced


# --- issuing ----------------------------------------------------------------------------------


def take_numbers(series: str, count: int) -> list[str]:
    """`count` consecutive numbers of a series, e.g. FA2026-000042 (the counter row stays locked until commit)."""
    insert = (sqlite_insert if db.session.get_bind().dialect.name == "sqlite" else pg_insert)(InvoiceCounter)
    statement = (
        insert.values(series=series, last=count)
        .on_conflict_do_update(
            index_elements=[InvoiceCounter.series], set_={"last": InvoiceCounter.last + count}
        )
        .returning(InvoiceCounter.last)
    )
    end = db.session.execute(statement).scalar_one()
    return [f"{series}-{number:06d}" for number in range(end - count + 1, end + 1)]


def bill_families(
    family_ids: list[int], month: date, now: datetime, tariffs, activities
) -> tuple[int, int, int]:
    """Bill one batch of families (sorted ids) in the current transaction; return (invoices, credit notes, unpriced days)."""
    if not family_ids:
        return 0, 0, 0
    first, _last = month_bounds(month)
    computed, quotients, unpriced = compute(family_ids, first, tariffs, activities)
    in_force = {
        invoice.family_id: invoice
        for invoice in db.session.scalars(
            sa.select(Invoice)
            .where(
                Invoice.family_id.in_(family_ids),
                Invoice.month == first,
                Invoice.kind == InvoiceKind.INVOICE,
                Invoice.credited_by_id.is_(None),
            )
            .options(sa.orm.selectinload(Invoice.lines))
        )
    }
    to_credit, to_issue = [], []
    for family_id in family_ids:
        lines, current = computed[family_id], in_force.get(family_id)
        if (
            current is not None
            and [
                Line(x.child_name, x.activity_name, x.label, x.days, x.unit_price_cents)
                for x in current.lines
            ]
            == lines
        ):
            continue  # already billed exactly so: nothing to do
        if current is not None:
            to_credit.append(current)
        if lines:
            to_issue.append(family_id)
    if not to_credit and not to_issue:
        return 0, 0, unpriced
    today = today_in_paris(now)
    year = today.year
    identities = _identities(to_issue + [invoice.family_id for invoice in to_credit])
    credit_numbers = take_numbers(f"AV{year}", len(to_credit)) if to_credit else []
    invoice_numbers = take_numbers(f"FA{year}", len(to_issue)) if to_issue else []
    rows, line_rows = [], {}
    for invoice, number in zip(to_credit, credit_numbers, strict=True):
        rows.append(
            _invoice_row(
                number,
                InvoiceKind.CREDIT_NOTE,
                invoice.family_id,
                first,
                now,
                today,
                -invoice.total_cents,
                identities,
                invoice.quotient,
                invoice.id,
            )
        )
        line_rows[number] = [
            (x.child_name, x.activity_name, x.label, -x.days, x.unit_price_cents) for x in invoice.lines
        ]
    for family_id, number in zip(to_issue, invoice_numbers, strict=True):
        lines = computed[family_id]
        rows.append(
            _invoice_row(
                number,
                InvoiceKind.INVOICE,
                family_id,
                first,
                now,
                today,
                sum(x.amount_cents for x in lines),
                identities,
                quotients[family_id],
                None,
            )
        )
        line_rows[number] = [
            (x.child_name, x.activity_name, x.label, x.days, x.unit_price_cents) for x in lines
        ]
    # Credit notes first, then cancel what they correct (only if still in force: a concurrent run may
    # have done it, and then this batch starts again), then the new invoices (one in force per month).
    ids = _insert([row for row in rows if row["kind"] is InvoiceKind.CREDIT_NOTE])
    if to_credit:
        credits = {invoice.id: ids[number] for invoice, number in zip(to_credit, credit_numbers, strict=True)}
        cancelled = db.session.execute(
            sa.update(Invoice.__table__)
            .where(Invoice.id.in_(list(credits)), Invoice.credited_by_id.is_(None))
            .values(credited_by_id=sa.case(credits, value=Invoice.id))
        )
        if cancelled.rowcount != len(credits):
            raise ConcurrentRun("an invoice was cancelled by another run")
        db.session.expire_all()  # the cancelled invoices now name their credit note
    ids |= _insert([row for row in rows if row["kind"] is InvoiceKind.INVOICE])
    db.session.execute(
        InvoiceLine.__table__.insert(),
        [
            {
                "invoice_id": ids[number],
                "position": position,
                "child_name": child,
                "activity_name": activity,
                "label": label,
                "days": days,
                "unit_price_cents": price,
                "amount_cents": days * price,
            }
            for number, lines in line_rows.items()
            for position, (child, activity, label, days, price) in enumerate(lines)
        ],
    )
    _notify(
        [(row["family_id"], row["number"], row["kind"], row["total_cents"], row["due_date"]) for row in rows],
        first,
    )
    return len(to_issue), len(to_credit), unpriced


def _insert(rows: list[dict]) -> dict[str, int]:
    """Insert invoice rows in one statement; their ids by number."""
    if not rows:
        return {}
    db.session.execute(Invoice.__table__.insert(), rows)
    return dict(
        db.session.execute(
            sa.select(Invoice.number, Invoice.id).where(Invoice.number.in_([row["number"] for row in rows]))
        ).all()
    )


def _invoice_row(
    number, kind, family_id, month, now, today, total, identities, quotient, corrects_id
) -> dict:
    name, payer, address = identities.get(family_id, ("", "", ""))
    return {
        "number": number,
        "kind": kind,
        "family_id": family_id,
        "month": month,
        "issued_at": now,
        "due_date": today + timedelta(days=DUE_DAYS),
        "total_cents": total,
        "family_name": name,
        "payer": payer,
        "address": address,
        "quotient": quotient,
        "corrects_id": corrects_id,
    }


def _identities(family_ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """Family name, payer (first responsable) and postal address, as printed on the invoice (one query)."""
    result = {}
    rows = db.session.execute(
        sa.select(
            Family.id,
            Family.name,
            Guardian.first_name,
            Guardian.last_name,
            Guardian.address_line1,
            Guardian.address_line2,
            Guardian.postcode,
            Guardian.city,
        )
        .outerjoin(Guardian, sa.and_(Guardian.family_id == Family.id, Guardian.position == 1))
        .where(Family.id.in_(family_ids))
    )
    for family_id, name, first_name, last_name, line1, line2, postcode, city in rows:
        payer = f"{first_name or ''} {last_name or ''}".strip()
        address = "\n".join(part for part in (line1, line2, f"{postcode or ''} {city or ''}".strip()) if part)
        result[family_id] = (name, payer, address)
    return result


def _notify(issued: list[tuple], month: date) -> None:
    """One mail per parent account of the families billed in this batch, listing its new documents."""
    families = {family_id for family_id, *_rest in issued}
    accounts = db.session.execute(
        sa.select(Subscription.family_id, User.email, User.first_name)
        .join(User, User.id == Subscription.user_id)
        .where(
            Subscription.family_id.in_(families),
            Subscription.ended_at.is_(None),
            User.activated_at.is_not(None),
        )
    ).all()
    by_family = defaultdict(list)
    for family_id, number, kind, total, due in issued:
        by_family[family_id].append(
            {
                "number": number,
                "credit_note": kind is InvoiceKind.CREDIT_NOTE,
                "amount": euros(total),
                "due": due.isoformat(),
            }
        )
    mails: dict[str, dict] = {}
    base = current_app.config["PUBLIC_URL"]
    for family_id, email, first_name in accounts:
        context = mails.setdefault(
            email,
            {
                "first_name": first_name,
                "month": month_label(month),
                "documents": [],
                "link": f"{base}/facturation/",
            },
        )
        context["documents"].extend(by_family[family_id])
    queue_mails("invoice_issued", list(mails.items()))


# --- the run ----------------------------------------------------------------------------------


def start(month: date, agent: User) -> tuple[BillingRun, bool]:
    """Queue the billing of a month; the run already queued or running for that month, if any
    (then False: it must not be handed to the worker twice)."""
    first = month.replace(day=1)
    if first >= today_in_paris(utcnow()).replace(day=1):
        raise BillingError("Seul un mois terminé peut être facturé.")
    claim(agent)  # an agent's starts take turns (a double click): the second finds the first's run
    current = db.session.scalar(
        sa.select(BillingRun)
        .where(BillingRun.month == first, BillingRun.state.in_([RunState.QUEUED, RunState.RUNNING]))
        .order_by(BillingRun.id.desc())
    )
    if current is not None:
        return current, False
    run = BillingRun(month=first, started_by_id=agent.id, state=RunState.QUEUED)
    db.session.add(run)
    db.session.flush()
    return run, True


def families_to_bill(month: date) -> list[int]:
    """Families with billable days in the month, or an invoice in force for it (which may need a credit note)."""
    first, last = month_bounds(month)
    booked = (
        sa.select(Child.family_id)
        .join(Booking, Booking.child_id == Child.id)
        .where(Booking.day.between(first, last), Booking.state.in_(_BILLED_STATES))
    )
    invoiced = sa.select(Invoice.family_id).where(
        Invoice.month == first, Invoice.kind == InvoiceKind.INVOICE, Invoice.credited_by_id.is_(None)
    )
    return sorted(db.session.scalars(sa.union(booked, invoiced)).all())


def run(run_id: int, batch: int | None = None) -> BillingRun:
    """The job: bill the month family batch by family batch, committing the progress after each."""
    from portail.services.outbox import commit, rollback

    batch = batch or current_app.config.get("BILLING_BATCH", BATCH)
    billing_run = db.session.get(BillingRun, run_id)
    if billing_run is None or billing_run.state is RunState.DONE:
        return billing_run
    month = billing_run.month
    try:
        family_ids = families_to_bill(month)
        billing_run.state, billing_run.families_total, billing_run.families_done = (
            RunState.RUNNING,
            len(family_ids),
            0,
        )
        billing_run.invoices = billing_run.credit_notes = billing_run.unpriced_days = 0
        commit()
        first, last = month_bounds(month)
        for start_at in range(0, len(family_ids), batch):
            chunk = family_ids[start_at : start_at + batch]
            for attempt in range(10):
                tariffs = tariffs_for(first, last)
                activities = {a.id: a for a in db.session.scalars(sa.select(Activity))}
                try:
                    invoices, credits, unpriced = bill_families(chunk, month, utcnow(), tariffs, activities)
                    db.session.execute(
                        sa.update(BillingRun.__table__)
                        .where(BillingRun.id == run_id)
                        .values(
                            families_done=BillingRun.families_done + len(chunk),
                            invoices=BillingRun.invoices + invoices,
                            credit_notes=BillingRun.credit_notes + credits,
                            unpriced_days=BillingRun.unpriced_days + unpriced,
                        )
                    )
                    commit()
                    break
                except (
                    IntegrityError,
                    OperationalError,
                    ConcurrentRun,
                ) as error:  # another run billed these families meanwhile, or a lock
                    rollback()
                    if attempt == 9:
                        raise
                    log.info("billing batch retried (%s)", error.__class__.__name__)
                    time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)
        billing_run = db.session.get(BillingRun, run_id)
        billing_run.state, billing_run.finished_at = RunState.DONE, utcnow()
        commit()
    except Exception as error:
        rollback()
        billing_run = db.session.get(BillingRun, run_id)
        billing_run.state, billing_run.error, billing_run.finished_at = (
            RunState.FAILED,
            f"{error.__class__.__name__}: {error}"[:500],
            utcnow(),
        )
        commit()
        raise
    return billing_run


# --- states, balances, payments ----------------------------------------------------------------


def paid_cents(invoices: list[Invoice]) -> dict[int, int]:
    """Amount paid on each invoice (one query)."""
    if not invoices:
        return {}
    rows = db.session.execute(
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents))
        .where(Payment.invoice_id.in_([i.id for i in invoices]))
        .group_by(Payment.invoice_id)
    )
    return {invoice.id: 0 for invoice in invoices} | dict(rows.all())


def state_of(invoice: Invoice, paid: int, today: date, direct_debit: bool = False) -> str:
    """À payer, Payée, Prélevée, En retard; Avoir for a credit note, Annulée for a cancelled invoice."""
    if invoice.kind is InvoiceKind.CREDIT_NOTE:
        return "Avoir"
    if invoice.credited_by_id is not None:
        return "Annulée"
    if paid >= invoice.total_cents:
        return "Prélevée" if direct_debit else "Payée"
    if today > invoice.due_date:
        return "En retard"
    return "À payer"


def with_states(invoices: list[Invoice], now: datetime) -> list[tuple[Invoice, int, str]]:
    """Each invoice with the amount paid on it and its state (two queries for them all)."""
    paid, debited, today = paid_cents(invoices), direct_debited(invoices), today_in_paris(now)
    return [
        (invoice, paid[invoice.id], state_of(invoice, paid[invoice.id], today, invoice.id in debited))
        for invoice in invoices
    ]


def direct_debited(invoices: list[Invoice]) -> set[int]:
    """Invoices settled by direct debit (their payments are all prélèvements)."""
    if not invoices:
        return set()
    rows = db.session.execute(
        sa.select(Payment.invoice_id)
        .where(Payment.invoice_id.in_([i.id for i in invoices]))
        .group_by(Payment.invoice_id)
        .having(
            sa.func.min(Payment.method) == sa.func.max(Payment.method),
            sa.func.min(Payment.method) == PaymentMethod.DIRECT_DEBIT.name,
        )
    )
    return set(rows.scalars())


def balances(family_ids: list[int]) -> dict[int, int]:
    """What each family owes: its invoices and credit notes, minus its payments (negative: in its favour). Two queries."""
    if not family_ids:
        return {}
    billed = dict(
        db.session.execute(
            sa.select(Invoice.family_id, sa.func.sum(Invoice.total_cents))
            .where(Invoice.family_id.in_(family_ids))
            .group_by(Invoice.family_id)
        ).all()
    )
    paid = dict(
        db.session.execute(
            sa.select(Invoice.family_id, sa.func.sum(Payment.amount_cents))
            .join(Invoice)
            .where(Invoice.family_id.in_(family_ids))
            .group_by(Invoice.family_id)
        ).all()
    )
    return {family_id: (billed.get(family_id) or 0) - (paid.get(family_id) or 0) for family_id in family_ids}


def overdue_count(today: date) -> int:
    """Invoices in force past their due date and not fully paid (one query)."""
    paid = (
        sa.select(Payment.invoice_id, sa.func.sum(Payment.amount_cents).label("paid"))
        .group_by(Payment.invoice_id)
        .subquery()
    )
    return db.session.scalar(
        sa.select(sa.func.count(Invoice.id))
        .outerjoin(paid, paid.c.invoice_id == Invoice.id)
        .where(
            Invoice.kind == InvoiceKind.INVOICE,
            Invoice.credited_by_id.is_(None),
            Invoice.due_date < today,
            Invoice.total_cents > sa.func.coalesce(paid.c.paid, 0),
        )
    )


def balance_cents(family_id: int) -> int:
    return balances([family_id])[family_id]


def record_payment(
    invoice: Invoice,
    paid_on: date,
    amount_cents: int,
    method: PaymentMethod,
    agent: User,
    key: str | None = None,
) -> Payment:
    """Record a payment of an invoice, once per form `key` (not flushed: a new payment has no id yet)."""
    if invoice.kind is not InvoiceKind.INVOICE or invoice.credited_by_id is not None:
        raise BillingError(
            "Un paiement s'enregistre sur une facture en vigueur, pas sur un avoir ni une facture annulée."
        )
    if amount_cents <= 0:
        raise BillingError("Le montant doit être supérieur à zéro.")
    # A copy of the same submission (a double click, a resent page) carries the same key: it is the
    # payment already recorded. Copies sent at the same moment both find nothing here; the key's
    # unique constraint then stops the second, and its view runs again and finds the first's.
    if key is not None:
        same = db.session.scalar(sa.select(Payment).where(Payment.idempotency_key == key))
        if same is not None:
            if (same.invoice_id, same.paid_on, same.amount_cents, same.method) != (
                invoice.id,
                paid_on,
                amount_cents,
                method,
            ):
                raise BillingError(
                    f"Le paiement n'a pas été enregistré : ce formulaire a déjà servi pour un paiement de "
                    f"{euros(same.amount_cents)}. Vérifiez les paiements ci-dessus, puis cliquez à nouveau "
                    "sur « Enregistrer le paiement » pour en enregistrer un autre."
                )
            return same
    payment = Payment(
        invoice_id=invoice.id,
        paid_on=paid_on,
        amount_cents=amount_cents,
        method=method,
        recorded_by_id=agent.id,
        idempotency_key=key,
    )
    db.session.add(payment)
    return payment
