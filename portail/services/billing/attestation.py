"""The attestation fiscale of childcare ("attestation de frais de garde"): for a calendar year, what a
family paid during that year for the childcare of each of its children under six.

The rules (art. 200 quater B du CGI; BOI-IR-RICI-300-10 § 30):
- a child counts for the income of year Y if under six on 1 January of Y, i.e. born on or after
  1 January of Y-6 (a child who turns six during Y counts for the whole of Y);
- only what was paid during Y counts (a payment's `paid_on`), whatever the month billed;
- only childcare counts: the lines of a tariff flagged "frais de garde" for the days the child was
  kept (the billing run snapshots the child and the flag on each line, `invoicing.CHILDCARE_LABELS`);
  meals (the canteen), absences billed, surcharges and sick days are not childcare.

How a payment is shared: it pays the lines of the invoice it was recorded on, in proportion to their
amounts (a partial payment pays a share of each line). The amount paid so far on an invoice, capped at
its total (an overpayment is a credit, not childcare), is split over its children's childcare lines
and the rest by the largest remainder, so the parts always add up to the cents paid and a fully paid
invoice gives each child exactly his lines; a year counts what that split grew by during the year.

Credit notes and cancelled invoices: payments are only ever recorded on invoices. A credit note
carries none and counts for nothing. A payment recorded on an invoice later cancelled stays what the
family paid, for that invoice's days: it counts, prorated over the cancelled invoice's lines (the
replacing invoice counts only the payments recorded on it, so nothing counts twice). Invoice lines are
never negative (days and prices are not); a negative line would lower its child's part (never below
zero), and an invoice whose total is not positive counts for nothing.

Whatever the number of families, one query; the PDF's families add one (`families_of`).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from itertools import groupby

import sqlalchemy as sa

from portail.extensions import db
from portail.models import Child, Family, Guardian, Invoice, InvoiceKind, InvoiceLine, Payment

REST = 0  # the share of an invoice that is not an eligible child's childcare (no child has id 0)
# Payments before the portal's first invoices do not exist; a floor keeps the date range bounded.
FIRST_YEAR = 2000


@dataclass(frozen=True)
class ChildAmount:
    child_id: int
    name: str
    birth_date: date
    cents: int


@dataclass(frozen=True)
class Attestation:
    family_id: int
    year: int
    children: tuple[ChildAmount, ...]

    @property
    def total_cents(self) -> int:
        return sum(child.cents for child in self.children)


@dataclass(frozen=True)
class Holder:
    """The family as the attestation names it: its name, its responsables, its address."""

    name: str
    responsables: tuple[str, ...]
    address: tuple[str, ...]


def born_since(year: int) -> date:
    """The earliest birth date of a child who counts for the income of `year` (under six on 1 January)."""
    return date(year - 6, 1, 1)


def split(paid: int, weights: dict[int, int]) -> dict[int, int]:
    """`paid` cents shared in proportion to the weights, by the largest remainder (ties: the smaller
    key first): the parts add up to `paid` exactly."""
    total = sum(weights.values())
    parts, remainders = {}, []
    for key in sorted(weights):
        whole, remainder = divmod(paid * weights[key], total)
        parts[key] = whole
        remainders.append((-remainder, key))
    for _remainder, key in sorted(remainders)[: paid - sum(parts.values())]:
        parts[key] += 1
    return parts


def amounts(
    first_year: int, last_year: int, family_ids: list[int] | None = None
) -> dict[tuple[int, int], Attestation]:
    """The attestations of the years first_year..last_year with an amount, by (family, year), for these
    families (None: every family). One query: each payment with each child's childcare on its invoice."""
    first, last = date(first_year, 1, 1), date(last_year, 12, 31)
    conditions = [
        Invoice.kind == InvoiceKind.INVOICE,
        Invoice.total_cents > 0,
        Invoice.id.in_(sa.select(Payment.invoice_id).where(Payment.paid_on.between(first, last))),
    ]
    if family_ids is not None:
        conditions.append(Invoice.family_id.in_(family_ids))
    childcare = (
        sa.select(
            InvoiceLine.invoice_id,
            InvoiceLine.child_id,
            sa.func.sum(InvoiceLine.amount_cents).label("cents"),
        )
        .where(
            InvoiceLine.invoice_id.in_(sa.select(Invoice.id).where(*conditions)),
            InvoiceLine.childcare,
            InvoiceLine.child_id.is_not(None),
        )
        .group_by(InvoiceLine.invoice_id, InvoiceLine.child_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(
            Payment.id,
            Payment.invoice_id,
            Payment.paid_on,
            Payment.amount_cents,
            Invoice.family_id,
            Invoice.total_cents,
            childcare.c.child_id,
            childcare.c.cents,
            Child.first_name,
            Child.last_name,
            Child.birth_date,
        )
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .join(childcare, childcare.c.invoice_id == Payment.invoice_id)
        .join(Child, Child.id == childcare.c.child_id)
        .where(Payment.paid_on <= last)
        .order_by(Payment.invoice_id, Payment.paid_on, Payment.id, childcare.c.child_id)
    ).all()
    children: dict[int, tuple[str, date]] = {}
    found: dict[tuple[int, int], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    state: dict[int, tuple[int, dict[int, int]]] = {}  # invoice → (capped amount paid so far, its split)
    for _payment, group in groupby(rows, key=lambda row: row.id):
        group = list(group)
        invoice_id, paid_on, cents, family_id, total = group[0][1:6]
        weights = {row.child_id: max(int(row.cents), 0) for row in group}
        for row in group:
            children[row.child_id] = (f"{row.first_name} {row.last_name}", row.birth_date)
        before, shares_before = state.get(invoice_id, (0, {}))
        after = min(before + cents, total)
        if after == before:
            continue
        shares = split(after, weights | {REST: max(total - sum(weights.values()), 0)})
        state[invoice_id] = (after, shares)
        if paid_on < first:
            continue
        for child_id in weights:
            if children[child_id][1] >= born_since(paid_on.year):
                found[(family_id, paid_on.year)][child_id] += shares[child_id] - shares_before.get(
                    child_id, 0
                )
    result = {}
    for (family_id, year), by_child in found.items():
        listed = tuple(
            ChildAmount(child_id, *children[child_id], cents)
            for child_id, cents in sorted(by_child.items(), key=lambda item: children[item[0]][1])
            if cents > 0
        )
        if listed:
            result[(family_id, year)] = Attestation(family_id, year, listed)
    return result


def for_family(family_id: int, year: int) -> Attestation | None:
    """A family's attestation of a year, None if it paid no childcare that year for a child under six."""
    return amounts(year, year, [family_id]).get((family_id, year))


def for_year(year: int) -> list[Attestation]:
    """Every family's attestation of a year with an amount, by family id (one query, however many)."""
    return [attestation for _key, attestation in sorted(amounts(year, year).items())]


def years_by_family(family_ids: list[int], before: int) -> dict[int, list[Attestation]]:
    """Each family's attestations of the years before `before` (the current year, not finished), newest
    first (one query)."""
    by_family: dict[int, list[Attestation]] = {family_id: [] for family_id in family_ids}
    if not family_ids:
        return by_family
    found = amounts(FIRST_YEAR, before - 1, family_ids)
    for (family_id, _year), attestation in sorted(found.items(), key=lambda item: -item[0][1]):
        by_family[family_id].append(attestation)
    return by_family


def families_of(family_ids: list[int]) -> dict[int, Holder]:
    """The family's name, its responsables and the first responsable's address, as the attestation
    prints them (one query)."""
    rows = db.session.execute(
        sa.select(Family.id, Family.name, Guardian)
        .outerjoin(Guardian, Guardian.family_id == Family.id)
        .where(Family.id.in_(family_ids))
        .order_by(Family.id, Guardian.position)
    ).all()
    names: dict[int, str] = {}
    responsables: dict[int, list[str]] = defaultdict(list)
    addresses: dict[int, tuple[str, ...]] = {}
    for family_id, name, guardian in rows:
        names[family_id] = name
        if guardian is None:
            continue
        civility = f"{guardian.civility.value} " if guardian.civility else ""
        responsables[family_id].append(f"{civility}{guardian.first_name} {guardian.last_name}")
        if family_id not in addresses:
            place = f"{guardian.postcode or ''} {guardian.city or ''}".strip()
            addresses[family_id] = tuple(
                part for part in (guardian.address_line1, guardian.address_line2, place) if part
            )
    return {
        family_id: Holder(name, tuple(responsables[family_id]), addresses.get(family_id, ()))
        for family_id, name in names.items()
    }
