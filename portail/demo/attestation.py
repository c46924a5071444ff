"""Demo attestation fiscale: the Martin family's invoices of a past year, paid that year, so that Claire
finds an attestation de frais de garde in Espace Facturation.

The two billed months of the demo are recent, and Tom (born in 2019) is under six on 1 January only
up to 2025: the year shown is the last finished one in which he still counts. Its invoices are those
the portal issued then (the tariffs of that time were the current ones): Tom's morning care and
holiday centre (childcare), his canteen (not childcare), and Léa's evening care (childcare, but Léa
is six or more: not on the attestation). The November invoice was paid in two parts.
"""

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from portail.bookings import rules as booking_rules
from portail.extensions import db
from portail.models import (
    Activity,
    Family,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    PaymentMethod,
    Tariff,
    User,
    utcnow,
)
from portail.services import billing
from portail.services.billing.invoicing import RESERVED_LABEL

# (month, [(child index, activity, days)]) of the year shown; child 0 is Léa, 1 is Tom.
BILLED_MONTHS = [
    (3, [(1, "Accueil du matin", 14), (1, "Restauration scolaire", 18), (0, "Accueil du soir", 12)]),
    (7, [(1, "Centre de loisirs des vacances", 9), (0, "Centre de loisirs des vacances", 9)]),
    (11, [(1, "Accueil du matin", 13), (1, "Restauration scolaire", 16), (0, "Accueil du soir", 10)]),
]


def year_shown(birth_date: date, today: date) -> int:
    """The last finished year in which a child born that day counts (under six on 1 January)."""
    return min(today.year - 1, birth_date.year + 6)


def load(families: dict[str, Family], agent: User, now: datetime | None = None) -> int:
    """The Martin family's invoices of the year shown, issued and paid then (after `billing.load`,
    which flags the childcare tariffs; the caller commits). The year."""
    now = now or utcnow()
    martin = families["MRTNA52846"]
    lea, tom = martin.children
    year = year_shown(tom.birth_date, billing.today_in_paris(now))
    tariffs = {
        tariff.activity.name: tariff
        for tariff in db.session.scalars(
            sa.select(Tariff).join(Activity).options(sa.orm.selectinload(Tariff.brackets))
        )
    }
    quotient = billing.family_quotient(martin.guardians, date(year, 1, 1))
    taken = set(
        db.session.scalars(
            sa.select(Invoice.month).where(
                Invoice.family_id == martin.id, Invoice.kind == InvoiceKind.INVOICE
            )
        )
    )
    wanted = [
        (date(year, month, 1), lines) for month, lines in BILLED_MONTHS if date(year, month, 1) not in taken
    ]
    numbers = billing.take_numbers(f"FA{year}", len(wanted))
    payer = martin.guardians[0]
    for (month, lines), number in zip(wanted, numbers, strict=True):
        issued = datetime.combine(
            billing.month_bounds(month)[1] + timedelta(days=1), time(9), tzinfo=booking_rules.PARIS
        )
        invoice = Invoice(
            number=number,
            kind=InvoiceKind.INVOICE,
            family_id=martin.id,
            month=month,
            issued_at=issued,
            due_date=issued.date() + timedelta(days=billing.DUE_DAYS),
            total_cents=0,
            family_name=martin.name,
            payer=f"{payer.first_name} {payer.last_name}",
            address="\n".join(
                part
                for part in (payer.address_line1, f"{payer.postcode or ''} {payer.city or ''}".strip())
                if part
            ),
            quotient=quotient,
        )
        for position, (index, activity, days) in enumerate(lines):
            child, tariff = (lea, tom)[index], tariffs[activity]
            price = billing.price_for(tariff, quotient)
            invoice.lines.append(
                InvoiceLine(
                    position=position,
                    child_name=f"{child.first_name} {child.last_name}",
                    child_id=child.id,
                    childcare=tariff.childcare,
                    activity_name=activity,
                    label=RESERVED_LABEL,
                    days=days,
                    unit_price_cents=price,
                    amount_cents=days * price,
                )
            )
        invoice.total_cents = sum(line.amount_cents for line in invoice.lines)
        db.session.add(invoice)
        db.session.flush()
        if month.month == 11:  # paid in two parts, both in December
            half = invoice.total_cents // 2
            parts = [(date(year, 12, 5), half), (date(year, 12, 20), invoice.total_cents - half)]
        else:
            parts = [(invoice.due_date - timedelta(days=10), invoice.total_cents)]
        for paid_on, cents in parts:
            billing.record_payment(invoice, paid_on, cents, PaymentMethod.CHEQUE, agent)
    db.session.flush()
    return year
