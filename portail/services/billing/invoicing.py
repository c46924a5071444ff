"""Invoicing a batch of families for a month: their lines from the bookings (and, for a day whose
register is closed, from what the register says happened), the comparison with the invoice in force,
gap-free numbers, the invoices and credit notes issued, and the parents' mail.

What a day bills, each line naming its rule:
- reserved (or an absence still asked): "Jours réservés", plus the late-booking surcharge per tariff;
  once the day's register is closed: present → the same; absent without excuse (or not marked) →
  "Absences injustifiées" if the tariff bills them; absent with an excuse given to the animator → free;
- present on a closed register without a booking → "Présences sans réservation" (the tariff's price
  for them, else the day's) and its surcharge;
- absent, asked after the absence deadline → "Absences hors délai" if the tariff bills them;
- declared sick by the family → the sick-day rule (services.sickness): the carence and the days
  without a certificate sent in time are billed, the others free;
- cancelled by the town (a strike, a closure), refused, or nothing → never billed.

A batch takes a constant number of queries, whatever the number of days. Lines equal to the invoice
in force → nothing; other lines → a credit note cancelling it, and a new invoice if anything is left
to bill (an issued invoice is never edited). Numbers come from a counter per series (FA2026, AV2026)
in the transaction that issues, so a rolled-back batch leaves no gap.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.formatting import PARIS, euros, month_label, today_in_paris
from portail.models import (
    Activity,
    Attendance,
    Booking,
    BookingState,
    Child,
    Document,
    DocumentState,
    Family,
    Guardian,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    LineState,
    Presence,
    RegisterClosing,
    Request,
    RequestKind,
    RequestLine,
    SickDeclaration,
    Subscription,
    Tariff,
    User,
)
from portail.services.billing import sepa
from portail.services.billing import sick_days as sickness
from portail.services.billing.money import month_bounds
from portail.services.billing.tariffs import family_quotient, quote
from portail.services.dossier import mask_iban
from portail.services.outbox import queue_mails
from portail.services.transactions import upsert
from portail.urls import public_url

DUE_DAYS = 30
RESERVED_LABEL, LATE_ABSENCE_LABEL, SURCHARGE_LABEL = (
    "Jours réservés",
    "Absences hors délai",
    "Majoration réservation hors délai",
)
UNEXCUSED_LABEL, UNBOOKED_LABEL, UNBOOKED_SURCHARGE_LABEL = (
    "Absences injustifiées",
    "Présences sans réservation",
    "Majoration présence sans réservation",
)
LABEL_ORDER = {
    label: position
    for position, label in enumerate(
        [
            RESERVED_LABEL,
            LATE_ABSENCE_LABEL,
            SURCHARGE_LABEL,
            UNBOOKED_LABEL,
            UNBOOKED_SURCHARGE_LABEL,
            UNEXCUSED_LABEL,
            sickness.CARENCE,
            sickness.UNCERTIFIED,
        ]
    )
}
# The lines of a childcare tariff that count in the attestation fiscale: the days the child was kept.
# Absences billed, surcharges and sick days are penalties, not childcare (art. 200 quater B du CGI:
# "pénalités pour absence" and "suppléments exceptionnels" are excluded).
CHILDCARE_LABELS = {RESERVED_LABEL, UNBOOKED_LABEL}


class ConcurrentRun(Exception):
    """Another run billed the same families meanwhile: the batch is started again."""


# --- computing a family's lines ----------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Line:
    child_name: str
    activity_name: str
    label: str
    days: int
    unit_price_cents: int
    # Kept with the line, not part of what the invoice says (an invoice issued before they existed
    # is equal to the same lines computed now): the child, and whether it counts as childcare.
    child_id: int | None = field(default=None, compare=False)
    childcare: bool = field(default=False, compare=False)

    @property
    def amount_cents(self) -> int:
        return self.days * self.unit_price_cents


def _sort_key(line: Line):
    return (line.child_name, line.activity_name, LABEL_ORDER.get(line.label, 9), line.unit_price_cents)


_BILLED_STATES = [
    BookingState.RESERVED,
    BookingState.ABSENT,
    BookingState.ABSENCE_REQUESTED,
    BookingState.SICK,
]
# How far before the month a sickness's declared days are read (its carence may have begun then).
SICKNESS_LOOKBACK = timedelta(days=31)


def compute(
    family_ids: list[int], month: date, tariffs: dict[int, list[Tariff]], activities: dict[int, Activity]
) -> tuple[dict[int, list[Line]], dict, int]:
    """Each family's lines for the month, the quotient applied, and the count of booked days without tariff.

    Seven queries for the whole batch (bookings, accepted requests, children, responsables, closed
    registers, their marks, sick declarations).
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
    closed = set(
        connection.execute(
            sa.select(RegisterClosing.activity_id, RegisterClosing.day).where(
                RegisterClosing.day.between(first, last)
            )
        ).all()
    )
    marks: dict[tuple, Presence] = {}
    if closed:
        for child_id, activity_id, day, presence in connection.execute(
            sa.select(Attendance.child_id, Attendance.activity_id, Attendance.day, Attendance.presence)
            .join(Child, Child.id == Attendance.child_id)
            .where(
                Child.family_id.between(low, high),
                Attendance.day.between(first, last),
                # (a day the town cancelled is never billed, whatever its register says)
                ~sa.exists().where(
                    Booking.child_id == Attendance.child_id,
                    Booking.activity_id == Attendance.activity_id,
                    Booking.day == Attendance.day,
                    Booking.state == BookingState.CANCELLED,
                ),
            )
        ):
            if (activity_id, day) in closed and child_id in children:
                marks[(child_id, activity_id, day)] = presence
    declared: dict[int, dict[date, date | None]] = defaultdict(dict)  # child → sick day → certificate sent
    for child_id, day, sent in connection.execute(
        sa.select(SickDeclaration.child_id, SickDeclaration.day, Document.uploaded_at)
        .outerjoin(
            # (a certificate the service refused does not count)
            Document,
            sa.and_(Document.id == SickDeclaration.document_id, Document.state != DocumentState.REFUSED),
        )
        .where(
            SickDeclaration.family_id.between(low, high),
            SickDeclaration.day.between(first - SICKNESS_LOOKBACK, last),
        )
    ):
        if child_id in children:
            declared[child_id][day] = sent.astimezone(PARIS).date() if sent else None
    sick_rules: dict[tuple, dict[date, str]] = {}  # (child, carence, certificate delay) → day → rule
    counts: dict[int, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
    unpriced = 0
    names = {activity_id: activity.name for activity_id, activity in activities.items()}
    quoted: dict[tuple, tuple[Tariff | None, int]] = {}  # (activity, day, quotient): a month has few

    def priced(activity_id: int, day: date, family_id: int) -> tuple[Tariff | None, int]:
        """The tariff of the activity's day (None: none in force) and its price for the family."""
        key = (activity_id, day, quotients[family_id])
        if key not in quoted:
            quoted[key] = quote(tariffs.get(activity_id, []), day, quotients[family_id])
        return quoted[key]

    booked_days: set[tuple] = set()
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
        tariff, price = priced(activity_id, day, family_id)
        if tariff is None:
            unpriced += 1
            continue
        name, bucket = names[activity_id], counts[family_id]
        mark = marks.get((child_id, activity_id, day))
        if state is BookingState.SICK:
            rule_key = (child_id, tariff.sick_days_billed, tariff.sick_certificate_days)
            if rule_key not in sick_rules:
                sick_rules[rule_key] = sickness.sick_days(
                    declared.get(child_id, {}), tariff.sick_days_billed, tariff.sick_certificate_days
                )
            rule = sick_rules[rule_key].get(day, sickness.UNCERTIFIED)
            if sickness.BILLED[rule]:
                bucket[(child_name, name, rule, price, child_id, False)] += 1
            continue
        if state is BookingState.ABSENT and mark is Presence.PRESENT:
            continue  # came after all: billed below as a presence without booking
        booked_days.add((child_id, activity_id, day))
        if (activity_id, day) in closed and mark is not Presence.PRESENT and state is not BookingState.ABSENT:
            # the register says the child did not come
            if mark is None or mark is Presence.UNEXCUSED:
                if tariff.bill_unexcused_absences:
                    bucket[(child_name, name, UNEXCUSED_LABEL, price, child_id, False)] += 1
            continue
        if state is BookingState.ABSENT:
            asked = asked_at.get((child_id, activity_id, day, RequestKind.ABSENCE))
            if (
                tariff.bill_late_absences
                and asked is not None
                and asked > booking_rules.absence_deadline(activities[activity_id], day)
            ):
                bucket[(child_name, name, LATE_ABSENCE_LABEL, price, child_id, False)] += 1
            continue
        bucket[(child_name, name, RESERVED_LABEL, price, child_id, tariff.childcare)] += 1
        asked = asked_at.get((child_id, activity_id, day, RequestKind.RESERVATION))
        if (
            tariff.late_surcharge_cents
            and asked is not None
            and asked > booking_rules.booking_deadline(activities[activity_id], day)
        ):
            bucket[(child_name, name, SURCHARGE_LABEL, tariff.late_surcharge_cents, child_id, False)] += 1
    for (child_id, activity_id, day), presence in marks.items():
        if presence is not Presence.PRESENT or (child_id, activity_id, day) in booked_days:
            continue
        family_id, child_name = children[child_id]
        tariff, price = priced(activity_id, day, family_id)
        if tariff is None:
            unpriced += 1
            continue
        bucket, name = counts[family_id], names[activity_id]
        if tariff.unbooked_price_cents is not None:
            price = tariff.unbooked_price_cents
        bucket[(child_name, name, UNBOOKED_LABEL, price, child_id, tariff.childcare)] += 1
        if tariff.unbooked_surcharge_cents:
            bucket[
                (child_name, name, UNBOOKED_SURCHARGE_LABEL, tariff.unbooked_surcharge_cents, child_id, False)
            ] += 1
    lines = {
        family_id: sorted(
            (
                Line(child, activity, label, days, price, child_id, childcare and label in CHILDCARE_LABELS)
                for (child, activity, label, price, child_id, childcare), days in counts[family_id].items()
            ),
            key=_sort_key,
        )
        for family_id in family_ids
    }
    return lines, quotients, unpriced


# --- issuing ----------------------------------------------------------------------------------


def take_numbers(series: str, count: int) -> list[str]:
    """`count` consecutive numbers of a series, e.g. FA2026-000042 (the counter row stays locked until commit)."""
    insert = upsert(InvoiceCounter)
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
            (x.child_name, x.activity_name, x.label, -x.days, x.unit_price_cents, x.child_id, x.childcare)
            for x in invoice.lines
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
            (x.child_name, x.activity_name, x.label, x.days, x.unit_price_cents, x.child_id, x.childcare)
            for x in lines
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
                "child_id": child_id,
                "childcare": childcare,
            }
            for number, lines in line_rows.items()
            for position, (child, activity, label, days, price, child_id, childcare) in enumerate(lines)
        ],
    )
    _notify(
        [
            (
                row["family_id"],
                row["number"],
                row["kind"],
                row["total_cents"],
                row["due_date"],
                row["issued_at"],
            )
            for row in rows
        ],
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
    mandates, notice = sepa.mandates_in_force(list(families)), sepa.notice_days()
    for family_id, number, kind, total, due, issued_at in issued:
        document = {
            "number": number,
            "credit_note": kind is InvoiceKind.CREDIT_NOTE,
            "amount": euros(total),
            "due": due.isoformat(),
        }
        if kind is InvoiceKind.INVOICE and (mandate := mandates.get(family_id)) is not None:
            # The pre-notification of the direct debit: amount, date, account and mandate.
            document["debit"] = {
                "on": sepa.announced_on(today_in_paris(issued_at), due, mandate, notice).isoformat(),
                "iban": mask_iban(mandate.iban),
                "reference": mandate.reference,
            }
        by_family[family_id].append(document)
    mails: dict[str, dict] = {}
    link = public_url("billing.home")
    for family_id, email, first_name in accounts:
        context = mails.setdefault(
            email,
            {
                "first_name": first_name,
                "month": month_label(month),
                "documents": [],
                "link": link,
            },
        )
        context["documents"].extend(by_family[family_id])
    queue_mails("invoice_issued", list(mails.items()))


def families_to_bill(month: date) -> list[int]:
    """Families with billable days in the month, or an invoice in force for it (which may need a credit note)."""
    first, last = month_bounds(month)
    booked = (
        sa.select(Child.family_id)
        .join(Booking, Booking.child_id == Child.id)
        .where(Booking.day.between(first, last), Booking.state.in_(_BILLED_STATES))
    )
    present = (
        sa.select(Child.family_id)
        .join(Attendance, Attendance.child_id == Child.id)
        .join(
            RegisterClosing,
            sa.and_(
                RegisterClosing.activity_id == Attendance.activity_id, RegisterClosing.day == Attendance.day
            ),
        )
        .where(Attendance.day.between(first, last), Attendance.presence == Presence.PRESENT)
    )
    invoiced = sa.select(Invoice.family_id).where(
        Invoice.month == first, Invoice.kind == InvoiceKind.INVOICE, Invoice.credited_by_id.is_(None)
    )
    return sorted(db.session.scalars(sa.union(booked, present, invoiced)).all())
